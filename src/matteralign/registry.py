"""Name -> class registries for datasets and models: adding one is adding one module.

The package's modules are imported on first lookup (cheap: heavy imports live inside the
classes' methods), so every decorated class is known without a hand-kept list.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

from matteralign.errors import UnknownNameError


class _Named(Protocol):
    name: str


T = TypeVar("T", bound=_Named)


class Registry(Generic[T]):
    def __init__(self, kind: str, package: str, skip: Iterable[str] = ()) -> None:
        self.kind = kind
        self.package = package
        self.skip = set(skip)
        self._classes: dict[str, type[T]] = {}
        self._discovered = False

    def register(self, cls: type[T]) -> type[T]:
        if cls.name in self._classes and self._classes[cls.name] is not cls:
            raise ValueError(f"{self.kind} name {cls.name!r} registered twice")
        self._classes[cls.name] = cls
        return cls

    def discover(self) -> None:
        if self._discovered:
            return
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name not in self.skip and not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")
        self._discovered = True

    def all(self) -> dict[str, type[T]]:
        self.discover()
        return dict(self._classes)

    def get(self, name: str) -> type[T]:
        classes = self.all()
        if name not in classes:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; registered: {', '.join(sorted(classes))}"
            )
        return classes[name]
