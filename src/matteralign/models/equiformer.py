"""EquiformerV2 (fairchem-core 1.x, its own environment): equivariant graph attention; no
weights offline, so its real backbone runs at random init or from a fairchem 1.x checkpoint
or backbone state_dict (plain tensors only). The embedding is the l=0 channel of the
backbone's ``node_embedding``; molecules go in a vacuum box. Details: docs/models.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.atoms import AtomsAdapter, outside
from matteralign.models.base import register_model
from matteralign.models.geometry import boxed
from matteralign.models.torch_utils import frozen, load_exact_state, per_atom
from matteralign.models.weights import RANDOM_INIT
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
class EquiformerV2(AtomsAdapter):
    name = "equiformer-v2-31m"
    family = "equiformer"
    architecture = ("EquiformerV2 (fairchem-core 1.10): 8 equivariant graph-attention layers, "
                    "lmax 4, mmax 2, 128 sphere channels, 8 heads, 12 A radius, 20 neighbours")
    layer = "backbone node_embedding after the last block and norm, l=0 channel (128-d/atom)"
    weights_name = RANDOM_INIT
    license = "MIT (fairchem-core code); eqV2 OMat24 weights CC BY 4.0"
    key_packages = ("fairchem-core", "torch-scatter", "torch-geometric", "e3nn", "torch")
    requires_module = "fairchem"
    batch_size = 8
    produces_energy = False
    batch_invariant = False  # at most 20 neighbours: see docs/models.md
    hub_id: ClassVar[str] = "fairchem 1.x model zoo: eqV2 31M (OC20 All+MD) / eqV2 S (OMat24)"
    weights_source = "https://huggingface.co/fairchem (fairchem 1.x checkpoints)"
    config: ClassVar[dict[str, Any]] = EQV2_31M

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None,
                 config_overrides: dict[str, Any] | None = None) -> None:
        """``config_overrides``: backbone hyperparameters of the random-init model (tests
        build a small instance of the same class this way)."""
        super().__init__(weights=weights, device=device, max_atoms=max_atoms)
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
        if self.is_random_init:
            backbone = self._build({**self.config, **self.config_overrides})
        else:
            backbone = self._from_file(Path(str(self.weights)))
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

    def check_atoms(self, atoms: Any) -> str | None:
        limit = int(self._config.get("max_num_elements", self.config["max_num_elements"]))
        high = outside(atoms, range(1, limit + 1))
        if high:
            return f"element(s) Z={high} outside EquiformerV2's element embedding (Z 1-{limit})"
        return None

    def atom_features(self, records: Sequence[Record]) -> tuple[list[np.ndarray], None]:
        import torch
        from fairchem.core.preprocessing import AtomsToGraphs
        from torch_geometric.data import Batch

        convert = AtomsToGraphs(r_edges=False, r_pbc=True, r_energy=False, r_forces=False)
        graphs = [convert.convert(boxed(record.atoms)) for record in records]
        batch = Batch.from_data_list(graphs).to(torch.device(self.device))
        with torch.no_grad():
            out = self._backbone(batch)
        invariant = out["node_embedding"].embedding[:, 0, :]
        return per_atom(invariant, [len(record.atoms) for record in records]), None
