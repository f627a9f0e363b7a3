"""Structures no 3D model can embed meaningfully, whatever the model.

A NaN coordinate, a cell that spans no volume or two atoms on top of each other give either
an error deep inside a model or, worse, a finite vector that means nothing; finite but
unphysical sizes (an atom 1e7 Å away, one atom in a 0.3 Å cell) make a model's neighbour
search try to allocate memory for billions of cells or images. The embedding job asks
:func:`geometry_problem` before any 3D adapter sees a structure, so every adapter masks the
same structures for the same reasons. The bounds are far outside every structure of the
default study's datasets (QM9, CoRE MOF 2019, the packaged PDB chains).
:func:`structure_problem` holds the limits a model sets (partly periodic cells, size) and
:func:`boxed` the box for periodic-only models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: atoms (or an atom and a periodic image, its own included) closer than this, Å
MIN_DISTANCE = 0.1
#: an atom closer than this to its own periodic image (the shortest lattice translation), Å:
#: the same element at under 0.5 Å, shorter than any bond (H2: 0.74 Å)
MIN_IMAGE_DISTANCE = 0.5
#: fully periodic cells with less volume per atom than this, Å^3, are denser than any solid
#: (diamond: 5.7); they put thousands of images within a model's cutoff
MIN_VOLUME_PER_ATOM = 1.0
#: ... or with more than this, Å^3 (a 100 Å cube for each atom), hold vacuum, not a solid
MAX_VOLUME_PER_ATOM = 1e6
#: a Cartesian coordinate beyond ± this, Å: float32 (what models compute in) no longer
#: resolves a bond there (its spacing is 1e-3 Å at 1e4 Å, 1 Å at 1e7 Å)
MAX_COORDINATE = 1e4
#: a periodic lattice vector, or the extent of a non-periodic structure along x, y or z,
#: longer than this, Å: a neighbour search's cell grid grows as (length / cutoff)^3
MAX_LENGTH = 1e3
#: smallest volume of the periodic directions' cell (area for a slab, length for a wire)
MIN_CELL_MEASURE = 1e-6
#: atomic numbers of the elements
ELEMENTS = range(1, 119)
#: up to this many atoms the periodic check compares all pairs (N² / 2 minimum images)
SMALL_CELL_ATOMS = 512


def geometry_problem(atoms: Any, atom_indices: Sequence[int] | None = None) -> str | None:
    """Why ``atoms`` is not a physical structure, or None: a non-finite position or cell, a
    coordinate beyond :data:`MAX_COORDINATE`, an atomic number that is no element, a cell
    :func:`cell_problem` refuses, a non-periodic structure longer than :data:`MAX_LENGTH`
    along an axis, or two atoms closer than :data:`MIN_DISTANCE` Å (periodic images
    included).

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
    far = np.abs(positions).max(axis=1) > MAX_COORDINATE
    if far.any():
        k = int(np.flatnonzero(far)[0])
        value = positions[k, int(np.argmax(np.abs(positions[k])))]
        return (f"atom {index[k]} has a coordinate of {value:.3g} Å ({int(far.sum())} of "
                f"{len(positions)} atoms beyond ±{MAX_COORDINATE:g} Å: not a physical "
                "position)")
    unknown = sorted({int(z) for z in np.asarray(atoms.numbers)} - set(ELEMENTS))
    if unknown:
        return f"atomic number(s) {unknown} are not elements"
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    if not np.isfinite(cell).all():
        return "non-finite cell"
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any():
        problem = cell_problem(cell, pbc, len(positions))
        if problem:
            return problem
    else:
        extent = positions.max(axis=0) - positions.min(axis=0)
        if extent.max() > MAX_LENGTH:
            axis = int(np.argmax(extent))
            return (f"the atoms span {extent[axis]:.3g} Å along {'xyz'[axis]} (more than "
                    f"{MAX_LENGTH:g} Å: a stray atom?)")
    pair = closest_pair(atoms) if pbc.any() else closest_pair_molecule(positions)
    if pair is not None:
        i, j, distance = pair
        return (f"atoms {index[i]} and {index[j]} are {distance:.3f} Å apart (closer than "
                f"{MIN_DISTANCE} Å)")
    return None


def cell_problem(cell: np.ndarray, pbc: np.ndarray, n_atoms: int | None = None) -> str | None:
    """What is wrong with the periodic part of a cell, or None: a periodic lattice vector
    (nearly) zero or longer than :data:`MAX_LENGTH`; periodic vectors spanning (nearly) no
    volume (sqrt(det(V Vᵀ)) over the periodic rows V); a fully periodic cell whose volume
    per atom (of ``n_atoms``) lies outside [:data:`MIN_VOLUME_PER_ATOM`,
    :data:`MAX_VOLUME_PER_ATOM`]; or a lattice translation shorter than
    :data:`MIN_IMAGE_DISTANCE` (each atom that close to its own image)."""
    axes = np.flatnonzero(pbc)
    vectors = cell[axes]
    lengths = np.linalg.norm(vectors, axis=1)
    short = np.flatnonzero(lengths < MIN_DISTANCE)
    if len(short):
        axis = int(axes[short[0]])
        return (f"periodic lattice vector {'abc'[axis]} has length {lengths[short[0]]:.3g} Å "
                "(a singular cell)")
    long = np.flatnonzero(lengths > MAX_LENGTH)
    if len(long):
        axis = int(axes[long[0]])
        return (f"periodic lattice vector {'abc'[axis]} has length {lengths[long[0]]:.3g} Å "
                f"(longer than {MAX_LENGTH:g} Å)")
    measure = float(np.sqrt(max(np.linalg.det(vectors @ vectors.T), 0.0)))
    if measure < MIN_CELL_MEASURE:
        unit = {1: "length Å", 2: "area Å^2", 3: "volume Å^3"}[len(axes)]
        return f"singular cell ({unit.split()[0]} {measure:.3g} {unit.split()[1]})"
    if len(axes) == 3 and n_atoms:
        per_atom = measure / n_atoms
        if per_atom < MIN_VOLUME_PER_ATOM:
            return (f"volume per atom {per_atom:.3g} Å^3 (below {MIN_VOLUME_PER_ATOM:g} Å^3: "
                    "denser than any solid)")
        if per_atom > MAX_VOLUME_PER_ATOM:
            return (f"volume per atom {per_atom:.3g} Å^3 (above {MAX_VOLUME_PER_ATOM:g} Å^3: "
                    "vacuum, not a solid)")
    shortest = shortest_translation(cell, pbc)
    if shortest < MIN_IMAGE_DISTANCE:
        return (f"each atom is {shortest:.3g} Å from its own periodic image (the shortest "
                f"lattice translation; closer than {MIN_IMAGE_DISTANCE} Å)")
    return None


def shortest_translation(cell: np.ndarray, pbc: np.ndarray) -> float:
    """Length of the shortest nonzero lattice translation along the periodic directions: the
    shortest vector of the Minkowski-reduced basis (which holds the lattice's successive
    minima in three dimensions and fewer), so a skewed cell's short diagonal is found too."""
    from ase.geometry import minkowski_reduce

    reduced, _ = minkowski_reduce(cell, pbc=pbc)
    return float(np.linalg.norm(reduced[np.asarray(pbc, dtype=bool)], axis=1).min())


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
