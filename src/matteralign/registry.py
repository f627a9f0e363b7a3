"""Name -> class registries for datasets and models: adding one is adding one module.

The package's modules are imported on first lookup (cheap: heavy imports live inside the
classes' methods), so every decorated class is known without a hand-kept list.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
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
        #: functions giving the class of a name outside the table that follows a naming
        #: pattern (a study's own trained models), or None (see register_family)
        self.families: list[Callable[[str], type[T] | None]] = []
        self._classes: dict[str, type[T]] = {}
        self._made: dict[str, type[T]] = {}  # classes of the family, made on first lookup
        self._discovered = False

    def register_family(self, family: Callable[[str], type[T] | None]
                        ) -> Callable[[str], type[T] | None]:
        """Register a pattern family (a decorator, like :meth:`register`)."""
        self.families.append(family)
        return family

    def family(self, name: str) -> type[T] | None:
        """The class a family gives ``name``, or None."""
        self.discover()
        return next((cls for f in self.families if (cls := f(name)) is not None), None)

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
        """Every registered class by name; a name of the ``family`` pattern is in the returned
        mapping (``in``, lookup) but never listed."""
        self.discover()
        return _Table(self._classes, self)

    def get(self, name: str) -> type[T]:
        self.discover()
        classes = self._classes
        if name not in classes and self.families:
            if name not in self._made:
                found = self.family(name)
                if found is not None:
                    self._made[name] = found
            if name in self._made:
                return self._made[name]
        if name not in classes:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; registered: {', '.join(sorted(classes))}"
            )
        return classes[name]


class _Table(dict):  # type: ignore[type-arg]
    """A registry's classes by name; a missing name is looked up in the registry's family."""

    def __init__(self, classes: dict[str, type[T]], registry: Registry[T]) -> None:
        super().__init__(classes)
        self.registry = registry

    def __contains__(self, name: object) -> bool:
        if dict.__contains__(self, name):
            return True
        return isinstance(name, str) and self.registry.family(name) is not None

    def __missing__(self, name: str) -> type[T]:
        cls = self.registry.get(name)
        self[name] = cls
        return cls
