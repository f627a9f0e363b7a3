"""Structures no 3D model can embed meaningfully, whatever the model.

A NaN coordinate, a cell that spans no volume or two atoms on top of each other give either
an error deep inside a model or, worse, a finite vector that means nothing. The embedding
job asks :func:`geometry_problem` before any 3D adapter sees a structure, so every adapter
masks the same structures for the same reasons. :func:`structure_problem` holds the limits
a model sets (partly periodic cells, size) and :func:`boxed` the box for periodic-only models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: atoms (or an atom and a periodic image, its own included) closer than this, Å
MIN_DISTANCE = 0.1
#: smallest volume of the periodic directions' cell (area for a slab, length for a wire)
MIN_CELL_MEASURE = 1e-6
#: atomic numbers of the elements
ELEMENTS = range(1, 119)
#: up to this many atoms the periodic check compares all pairs (N² / 2 minimum images)
SMALL_CELL_ATOMS = 512


def geometry_problem(atoms: Any, atom_indices: Sequence[int] | None = None) -> str | None:
    """Why ``atoms`` is not a physical structure, or None: a non-finite position or cell, an
    atomic number that is no element, a periodic direction with a lattice vector shorter than
    :data:`MIN_DISTANCE` or a degenerate cell (measure below :data:`MIN_CELL_MEASURE`), or
    two atoms closer than :data:`MIN_DISTANCE` Å (periodic images included).

    ``atom_indices`` limits the check to the atoms a model reads (reasons still name atoms
    by their index in ``atoms``)."""
    index = np.arange(len(atoms))
    if atom_indices is not None:
        index = np.asarray(atom_indices, dtype=np.int64)
        atoms = atoms[index]
    positions = np.asarray(atoms.positions, dtype=np.float64)
    if len(positions) == 0:
        return None
    finite = np.isfinite(positions).all(axis=1)
    if not finite.all():
        bad = index[~finite]
        return f"non-finite position of atom {bad[0]} ({len(bad)} of {len(positions)} atoms)"
    unknown = sorted({int(z) for z in np.asarray(atoms.numbers)} - set(ELEMENTS))
    if unknown:
        return f"atomic number(s) {unknown} are not elements"
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    if not np.isfinite(cell).all():
        return "non-finite cell"
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any():
        problem = cell_problem(cell, pbc)
        if problem:
            return problem
    pair = closest_pair(atoms) if pbc.any() else closest_pair_molecule(positions)
    if pair is not None:
        i, j, distance = pair
        return (f"atoms {index[i]} and {index[j]} are {distance:.3f} Å apart (closer than "
                f"{MIN_DISTANCE} Å)")
    return None


def cell_problem(cell: np.ndarray, pbc: np.ndarray) -> str | None:
    """A periodic direction whose lattice vector is (nearly) zero, or periodic lattice vectors
    spanning (nearly) no volume: sqrt(det(V Vᵀ)) over the periodic rows V of the cell."""
    axes = np.flatnonzero(pbc)
    vectors = cell[axes]
    lengths = np.linalg.norm(vectors, axis=1)
    short = np.flatnonzero(lengths < MIN_DISTANCE)
    if len(short):
        axis = int(axes[short[0]])
        return (f"periodic lattice vector {'abc'[axis]} has length {lengths[short[0]]:.3g} Å "
                "(a singular cell)")
    measure = float(np.sqrt(max(np.linalg.det(vectors @ vectors.T), 0.0)))
    if measure < MIN_CELL_MEASURE:
        unit = {1: "length Å", 2: "area Å^2", 3: "volume Å^3"}[len(axes)]
        return f"singular cell ({unit.split()[0]} {measure:.3g} {unit.split()[1]})"
    return None


def closest_pair_molecule(positions: np.ndarray) -> tuple[int, int, float] | None:
    """The closest pair of atoms under :data:`MIN_DISTANCE` (no periodic images), or None."""
    from scipy.spatial import cKDTree

    pairs = cKDTree(positions).query_pairs(MIN_DISTANCE, output_type="ndarray")
    if len(pairs) == 0:
        return None
    distances = np.linalg.norm(positions[pairs[:, 0]] - positions[pairs[:, 1]], axis=1)
    k = int(np.argmin(distances))
    return int(pairs[k, 0]), int(pairs[k, 1]), float(distances[k])


def closest_pair(atoms: Any) -> tuple[int, int, float] | None:
    """The closest pair of atoms under :data:`MIN_DISTANCE` in a (partly) periodic structure,
    periodic images included, or None: the minimum image of every pair for a small fully
    periodic cell, else ASE's cell-aware neighbour list."""
    positions = np.asarray(atoms.positions, dtype=np.float64)
    if bool(np.all(atoms.pbc)) and len(positions) <= SMALL_CELL_ATOMS:
        cell = np.asarray(atoms.cell.array, dtype=np.float64)
        inverse = np.linalg.inv(cell)
        # distance between lattice planes of each axis: 1 / |reciprocal vector|
        widths = 1.0 / np.linalg.norm(inverse, axis=0)
        if widths.min() > 2 * MIN_DISTANCE:
            return _closest_minimum_image(positions @ inverse, cell)
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, MIN_DISTANCE, self_interaction=False)
    if len(d) == 0:
        return None
    k = int(np.argmin(d))
    return int(min(i[k], j[k])), int(max(i[k], j[k])), float(d[k])


def _closest_minimum_image(fractional: np.ndarray,
                           cell: np.ndarray) -> tuple[int, int, float] | None:
    """Closest pair under :data:`MIN_DISTANCE` by the minimum image of each pair's fractional
    difference, rounded per axis. Exact for a cutoff below half of every plane spacing: a
    pair closer than that differs by less than half a cell along every axis."""
    i, j = np.triu_indices(len(fractional), k=1)
    delta = fractional[j] - fractional[i]
    delta -= np.round(delta)
    distances = np.linalg.norm(delta @ cell, axis=1)
    close = np.flatnonzero(distances < MIN_DISTANCE)
    if len(close) == 0:
        return None
    k = close[np.argmin(distances[close])]
    return int(i[k]), int(j[k]), float(distances[k])


def structure_problem(atoms: Any, max_atoms: int | None = None,
                      partly_periodic_ok: bool = False) -> str | None:
    """The checks every 3D adapter shares (after its own element checks): no partly periodic
    cell unless the model takes them, and at most ``max_atoms`` atoms."""
    pbc = atoms.pbc
    if not partly_periodic_ok and pbc.any() and not pbc.all():
        return "partly periodic structure"
    if max_atoms is not None and len(atoms) > max_atoms:
        return f"{len(atoms)} atoms > max_atoms={max_atoms}"
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
