"""Dataset interface and registry.

A dataset is one file in this package that subclasses :class:`Dataset` and decorates it with
:func:`register_dataset`. Datasets are listed without importing their heavy dependencies, so
everything expensive happens inside :meth:`Dataset.load`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from matteralign.errors import InputError, MatterAlignError
from matteralign.records import Record
from matteralign.registry import Registry


class DatasetUnavailable(MatterAlignError, RuntimeError):
    """The data of a dataset cannot be found on this machine (with the fix in the message)."""


class Dataset(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    kind: ClassVar[str]  # "molecules" | "crystals" | "proteins"
    source: ClassVar[str]  # where the data comes from (package, version, licence)
    modalities: ClassVar[tuple[str, ...]]  # inputs this dataset provides to models
    properties: ClassVar[dict[str, str]] = {}  # name -> unit and level of theory
    standin: ClassVar[bool] = False  # True for offline stand-ins of a paper dataset
    #: the property models' predicted energies are compared with (eV, total or atomization:
    #: a per-element linear correction absorbs the difference), None where there is none
    reference_energy: ClassVar[str | None] = None

    def __init__(self, **options: object) -> None:
        self.options = options

    @abstractmethod
    def size(self) -> int:
        """Number of structures available (before any size filter)."""

    def filtered_size(self) -> int:
        """Structures that pass this dataset's own filters (e.g. ``max_atoms``), counted
        without loading them: the largest ``n`` that :meth:`load` can return. The config
        check compares ``n`` with it before any job runs."""
        return self.size()

    @abstractmethod
    def load(self, n: int, seed: int) -> list[Record]:
        """Return ``n`` structures chosen deterministically from ``seed``.

        Raise :class:`DatasetUnavailable` when the data is missing, and ``ValueError`` when
        fewer than ``n`` structures pass the dataset's filters.
        """

    def available(self) -> tuple[bool, str]:
        """Whether the data is on this machine, and where it is (or what is missing)."""
        try:
            return True, f"{self.size()} structures"
        except DatasetUnavailable as err:
            return False, str(err)


def subsample(total: int, n: int, seed: int) -> np.ndarray:
    """A seeded permutation of ``range(total)``: take its prefix for a deterministic subset.

    Returning the whole permutation (not only n indices) lets size-filtered datasets walk on
    until ``n`` structures pass, while staying deterministic.
    """
    if n > total:
        raise InputError(f"asked for n={n} structures but the dataset has only {total}")
    return np.random.default_rng(seed).permutation(total)


REGISTRY: Registry[Dataset] = Registry("dataset", "matteralign.datasets",
                                       skip={"base", "store", "prepare"})
register_dataset = REGISTRY.register
registered_datasets = REGISTRY.all


def get_dataset(name: str, **options: object) -> Dataset:
    return REGISTRY.get(name)(**options)


DatasetFactory = Callable[..., Dataset]
