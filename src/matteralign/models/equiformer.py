"""EquiformerV2 (Liao, Wood, Das & Smidt 2024, ICLR, arXiv:2306.12059): an equivariant graph
attention transformer on eSCN's SO(2) convolutions, the architecture of the OC20 and OMat24
"eqV2" potentials. It lives in fairchem-core 1.x only (2.x removed it), in its own family
environment (workflow/envs/equiformer.yaml: fairchem-core 1.10.0 beside a torch-scatter
compiled for torch 2.13).

Here with the hyperparameters of fairchem's EquiformerV2 31M configuration
(``configs/s2ef/all_md/equiformer_v2/equiformer_v2_N@8_L@4_M@2_31M.yml``, as recalled: 8
layers, lmax 4, mmax 2, 128 sphere channels, 8 attention heads, 12 A radius, 20 neighbours,
512 Gaussian distance bases; not checked against a released checkpoint, which brings its own
configuration). No weights can be had offline (fairchem downloads them), so

- ``weights=PATH``: a fairchem 1.x checkpoint or a backbone ``state_dict``, read with
  ``torch.load(weights_only=True)`` (plain tensors and dicts only: nothing is unpickled). A
  checkpoint's ``config["model"]`` hyperparameters replace the defaults; its backbone weights
  are the keys under ``backbone.`` (fairchem's hydra models) or, for the older
  ``EquiformerV2_OC20`` layout, the keys the backbone has (its energy/force blocks are
  dropped); a leading ``module.`` is removed. Anything else is refused with the keys named.
- otherwise (the default while no checkpoint is configured): random init, labelled
  ``random-init``.

Graphs: fairchem's own on-the-fly periodic neighbour search (``otf_graph``, ``use_pbc``);
molecules go in a vacuum box (``base.boxed``: 20 A between images, beyond the 12 A radius),
since fairchem 1.x cannot mix periodic and non-periodic structures in one batch.
EquiformerV2 keeps at most ``max_neighbors`` (20) neighbours per atom, the nearest ones:
where the cap falls inside a shell of equidistant atoms (common in crystals: within 12 A
there are hundreds), which of them are kept depends on the order the neighbour search meets
them, so such structures can shift with batching or atom order. This is the model's own
behaviour (its released checkpoints were trained with it), not the adapter's; the tests
check the invariances on an instance without truncation.

Last hidden layer: the backbone's ``node_embedding`` (an SO3_Embedding after the last block
and the final norm, [atoms, (lmax+1)^2, 128]); its invariant l=0 channel ``[:, 0, :]``
(128-d per atom) is the embedding: what the energy head reads. No energy is reported (the
heads are not built). License: MIT (fairchem-core code); eqV2 OMat24 weights CC BY 4.0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.base import (
    RANDOM_INIT,
    EmbedOutput,
    ModelAdapter,
    boxed,
    frozen,
    load_exact_state,
    mean_pool,
    register_model,
    structure_problem,
)
from matteralign.records import Record

#: fairchem 1.x configs/s2ef/all_md/equiformer_v2/equiformer_v2_N@8_L@4_M@2_31M.yml (model)
EQV2_31M: dict[str, Any] = {
    "use_pbc": True, "otf_graph": True, "max_neighbors": 20, "max_radius": 12.0,
    "max_num_elements": 90, "num_layers": 8, "sphere_channels": 128,
    "attn_hidden_channels": 64, "num_heads": 8, "attn_alpha_channels": 64,
    "attn_value_channels": 16, "ffn_hidden_channels": 128, "norm_type": "layer_norm_sh",
    "lmax_list": [4], "mmax_list": [2], "grid_resolution": 18, "num_sphere_samples": 128,
    "edge_channels": 128, "use_atom_edge_embedding": True,
    "share_atom_edge_embedding": False, "distance_function": "gaussian",
    "num_distance_basis": 512, "attn_activation": "silu", "use_s2_act_attn": False,
    "use_attn_renorm": True, "ffn_activation": "silu", "use_gate_act": False,
    "use_grid_mlp": True, "use_sep_s2_act": True, "alpha_drop": 0.1, "drop_path_rate": 0.1,
    "proj_drop": 0.0, "weight_init": "uniform",
}
#: checkpoint config keys that are not backbone arguments
NOT_BACKBONE = ("name", "regress_forces", "direct_forces", "backbone", "heads")


@register_model
class EquiformerV2(ModelAdapter):
    name = "equiformer-v2-31m"
    family = "equiformer"
    modality = "atoms"
    architecture = ("EquiformerV2 (fairchem-core 1.10): 8 equivariant graph-attention layers, "
                    "lmax 4, mmax 2, 128 sphere channels, 8 heads, 12 A radius, 20 neighbours")
    layer = "backbone node_embedding after the last block and norm, l=0 channel (128-d/atom)"
    pooling = "mean over atoms"
    weights_name = RANDOM_INIT
    license = "MIT (fairchem-core code); eqV2 OMat24 weights CC BY 4.0"
    key_packages = ("fairchem-core", "torch-scatter", "torch-geometric", "e3nn", "torch")
    requires_module = "fairchem"
    batch_size = 8
    produces_energy = False
    seed: ClassVar[int] = 0
    hub_id: ClassVar[str] = "fairchem 1.x model zoo: eqV2 31M (OC20 All+MD) / eqV2 S (OMat24)"
    weights_source = "https://huggingface.co/fairchem (fairchem 1.x checkpoints)"
    config: ClassVar[dict[str, Any]] = EQV2_31M

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None,
                 config_overrides: dict[str, Any] | None = None) -> None:
        """``config_overrides``: backbone hyperparameters of the random-init model (tests
        build a small instance of the same class this way)."""
        super().__init__(weights=weights, device=device)
        self.max_atoms = max_atoms
        self.config_overrides = dict(config_overrides or {})
        self._backbone: Any = None
        self._config: dict[str, Any] = {}

    def _build(self, config: dict[str, Any]) -> Any:
        from fairchem.core.models.equiformer_v2.equiformer_v2 import EquiformerV2Backbone

        self._config = {**config, "use_pbc": True, "otf_graph": True}
        return EquiformerV2Backbone(regress_forces=False, **self._config)

    def _load(self) -> None:
        import torch

        torch.manual_seed(self.seed)
        if not self.weights or self.weights == RANDOM_INIT:
            backbone = self._build({**self.config, **self.config_overrides})
        else:
            backbone = self._from_file(Path(self.weights))
        self._backbone = frozen(backbone, self.device)

    def _from_file(self, path: Path) -> Any:
        import torch

        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(f"{path}: not loadable with weights_only=True "
                             f"({str(error).splitlines()[0][:200]})") from None
        state = checkpoint.get("state_dict", checkpoint)
        model_config = (checkpoint.get("config") or {}).get("model") or {}
        if "backbone" in model_config:  # hydra layout: the backbone has its own section
            model_config = model_config["backbone"]
        config = {**self.config, **{k: v for k, v in model_config.items()
                                    if k not in NOT_BACKBONE}}
        backbone = self._build(config)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        if any(k.startswith("backbone.") for k in state):
            state = {k.removeprefix("backbone."): v for k, v in state.items()
                     if k.startswith("backbone.")}
        else:  # EquiformerV2_OC20 layout: backbone modules at the top, heads beside them
            own = set(backbone.state_dict())
            state = {k: v for k, v in state.items() if k in own}
        load_exact_state(backbone, state, path, "an EquiformerV2 backbone of this configuration")
        return backbone

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        atoms = record.atoms
        assert atoms is not None
        limit = int(self._config.get("max_num_elements", self.config["max_num_elements"]))
        high = sorted({int(z) for z in atoms.numbers if z > limit or z < 1})
        if high:
            return f"element(s) Z={high} outside EquiformerV2's element embedding (Z 1-{limit})"
        return structure_problem(atoms, self.max_atoms)

    def atom_features(self, records: Sequence[Record]) -> list[np.ndarray]:
        import torch
        from fairchem.core.preprocessing import AtomsToGraphs
        from torch_geometric.data import Batch

        convert = AtomsToGraphs(r_edges=False, r_pbc=True, r_energy=False, r_forces=False)
        graphs = [convert.convert(boxed(record.atoms)) for record in records]
        batch = Batch.from_data_list(graphs).to(torch.device(self.device))
        with torch.no_grad():
            out = self._backbone(batch)
        invariant = out["node_embedding"].embedding[:, 0, :].double().cpu()
        counts = [len(record.atoms) for record in records]
        if invariant.shape[0] != sum(counts):
            raise RuntimeError(f"{invariant.shape[0]} node features for {sum(counts)} atoms")
        return [f.numpy() for f in torch.split(invariant, counts)]

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        return EmbedOutput(mean_pool(self.atom_features(records)))
