"""Structures no 3D model can embed are masked, with their reason, before any model sees them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from hypothesis import given, settings
from hypothesis import strategies as st

import matteralign.embed as embed
import matteralign.models.geometry as geometry
from matteralign.datasets.store import write_structures
from matteralign.io import read_embeddings
from matteralign.models import ModelAdapter, get_model, registered_models
from matteralign.models.geometry import MIN_DISTANCE, geometry_problem
from matteralign.records import Record

ATOMS_MODELS = sorted(name for name, cls in registered_models().items()
                      if cls.modality == "atoms")


def _si() -> Atoms:
    return bulk("Si", "diamond", a=5.43)


def bad_structures() -> dict[str, tuple[Atoms, str]]:
    """Name -> (structure, what its reason must say)."""
    nan_position = molecule("H2O")
    nan_position.positions[1, 2] = np.nan
    inf_position = _si()
    inf_position.positions[0, 0] = np.inf
    inf_cell = _si()
    inf_cell.cell[1, 1] = np.inf
    singular = _si()
    singular.set_cell([[2.0, 0, 0], [4.0, 0, 0], [0, 0, 3.0]])  # a ∥ b: zero volume
    zero_vector = _si()
    zero_vector.set_cell([[0, 0, 0], [0, 2.7, 2.7], [2.7, 0, 2.7]])
    flat_slab = Atoms("H2", positions=[[0, 0, 0], [1, 1, 0]], pbc=[True, True, False],
                      cell=[[3, 0, 0], [6, 0, 0], [0, 0, 0]])  # a ∥ b: no area
    same_site = _si()
    same_site.positions[1] = same_site.positions[0]
    image_overlap = _si()
    image_overlap.positions[1] = image_overlap.positions[0] + image_overlap.cell[2] + 0.03
    molecule_overlap = molecule("CH4")
    molecule_overlap.positions[2] = molecule_overlap.positions[1] + [0.05, 0, 0]
    dummy = Atoms("X2", positions=[[0, 0, 0], [0, 0, 1.5]])
    stray_atom = molecule("H2O")
    stray_atom.positions[1] = [1e7, 0, 0]
    stray_crystal_atom = _si()
    stray_crystal_atom.positions[1] += [0, 0, -2e4]
    return {
        "nan-position": (nan_position, "non-finite position of atom 1"),
        "inf-position": (inf_position, "non-finite position of atom 0"),
        "inf-cell": (inf_cell, "non-finite cell"),
        "singular-cell": (singular, "singular cell (volume 0"),
        "zero-lattice-vector": (zero_vector, "lattice vector a has length 0"),
        "flat-slab": (flat_slab, "singular cell (area 0"),
        "same-site-crystal": (same_site, "atoms 0 and 1 are 0.000 Å apart"),
        "image-overlap": (image_overlap, "atoms 0 and 1 are 0.052 Å apart"),
        "molecule-overlap": (molecule_overlap, "atoms 1 and 2 are 0.050 Å apart"),
        "dummy-atoms": (dummy, "atomic number(s) [0] are not elements"),
        # finite but unphysical sizes, which send a neighbour search after huge allocations
        "stray-atom": (stray_atom, "atom 1 has a coordinate of 1e+07 Å"),
        "stray-crystal-atom": (stray_crystal_atom, "atom 1 has a coordinate of -2e+04 Å"),
        "long-molecule": (Atoms("H2", positions=[[0, 0, 0], [0, 1500, 0]]),
                          "the atoms span 1.5e+03 Å along y"),
        "tiny-cell": (Atoms("Cu", cell=[0.3] * 3, pbc=True), "volume per atom 0.027 Å^3"),
        "vacuum-cell": (Atoms("H", cell=[150] * 3, pbc=True), "volume per atom 3.37e+06 Å^3"),
        "long-cell": (Atoms("H2", positions=[[0, 0, 0], [0, 0, 1]], cell=[2000, 10, 10],
                            pbc=True), "lattice vector a has length 2e+03 Å"),
        "thin-cell": (Atoms("Cu", cell=[0.3, 10, 10], pbc=True),
                      "each atom is 0.3 Å from its own periodic image"),
        # no lattice vector is short, but b - a is 0.447 Å
        "skewed-thin-cell": (Atoms("Cu", cell=[[3, 0, 0], [2.8, 0.4, 0], [0, 0, 3]], pbc=True),
                             "each atom is 0.447 Å from its own periodic image"),
    }


BAD = bad_structures()


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_geometry_is_named(name):
    atoms, expected = BAD[name]
    assert expected in (geometry_problem(atoms) or "")


def test_physical_structures_pass():
    slab = fcc111("Cu", (2, 2, 3), vacuum=6.0)
    slab.pbc = [True, True, False]
    skewed = Atoms("Cu", positions=[[0, 0, 0]], cell=[[2.5, 0, 0], [2.4, 0.8, 0], [0, 0, 2.5]],
                   pbc=True)
    wire = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[0, 0, 2.0], pbc=[0, 0, 1])
    # near the size bounds, still physical: diamond (5.7 Å^3 per atom), a molecule in a 60 Å
    # box, a 900 Å long chain far from the origin, a crystal atom far outside its cell
    boxed_h2 = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]], cell=[60] * 3, pbc=True)
    chain = Atoms("C2", positions=[[9000, 0, 0], [9900, 0, 0]])
    unwrapped = _si()
    unwrapped.positions[0] += 1000 * unwrapped.cell[0]
    for atoms in [molecule("C6H6"), molecule("CH3CH2OH"), _si(), _si().repeat((3, 3, 3)),
                  bulk("NaCl", "rocksalt", a=5.64), bulk("Cu", "fcc", a=3.61), slab, skewed,
                  wire, Atoms("H", positions=[[0, 0, 0]]), bulk("C", "diamond", a=3.567),
                  boxed_h2, chain, unwrapped]:
        assert geometry_problem(atoms) is None, atoms


def brute_force_closest(atoms: Atoms, reach: int = 3) -> float:
    """Smallest distance between two atoms or an atom and another's (or its own) image, over
    every lattice translation n·cell with |n_k| <= ``reach``: the definition itself."""
    positions, cell = atoms.positions, atoms.cell.array
    best = np.inf
    shifts = np.array(list(itertools.product(range(-reach, reach + 1), repeat=3))) @ cell
    for i in range(len(atoms)):
        for j in range(i, len(atoms)):
            d = np.linalg.norm(positions[j] - positions[i] + shifts, axis=1)
            if i == j:
                d = d[d > 0]
            best = min(best, d.min())
    return best


@settings(deadline=None, max_examples=60)
@given(lengths=st.tuples(*[st.floats(1.2, 4.0)] * 3),
       angles=st.tuples(*[st.floats(55.0, 125.0)] * 3),
       n=st.integers(2, 6), seed=st.integers(0, 2**16), gap=st.floats(0.0, 0.2))
def test_periodic_overlap_check_matches_the_definition(lengths, angles, n, seed, gap):
    """Both the all-pairs minimum image and the neighbour-list path agree with a brute-force
    search over lattice translations, with a pair planted ``gap`` Å apart across the cell
    boundary."""
    from ase.geometry import cellpar_to_cell

    cell = cellpar_to_cell([*lengths, *angles])
    if abs(np.linalg.det(cell)) < 0.5:
        return  # a nearly flat cell: not what this property is about
    rng = np.random.default_rng(seed)
    fractional = rng.random((n, 3))
    atoms = Atoms("H" * n, scaled_positions=fractional, cell=cell, pbc=True)
    direction = rng.normal(size=3)
    atoms.positions[1] = atoms.positions[0] + cell[0] + gap * direction / np.linalg.norm(direction)
    # fractional differences lie within (-2, 2): translations up to this reach cover every
    # image closer than MIN_DISTANCE
    widths = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)
    reference = brute_force_closest(atoms, reach=int(np.ceil(2 + MIN_DISTANCE / widths.min())))
    expect_close = reference < MIN_DISTANCE
    fast = geometry.closest_pair(atoms)
    assert (fast is not None) == expect_close, (reference, fast)
    if fast is not None:
        assert fast[2] == pytest.approx(reference, abs=1e-9)
    original = geometry.SMALL_CELL_ATOMS
    try:
        geometry.SMALL_CELL_ATOMS = 0  # force ASE's neighbour list
        listed = geometry.closest_pair(atoms)
    finally:
        geometry.SMALL_CELL_ATOMS = original
    assert (listed is not None) == expect_close, (reference, listed)
    if listed is not None:
        assert listed[2] == pytest.approx(reference, abs=1e-9)


def test_molecule_overlap_matches_all_pairs():
    rng = np.random.default_rng(3)
    for _ in range(50):
        positions = rng.random((40, 3)) * 2.0  # dense: some pairs under 0.1 Å
        pairs = [(i, j) for i in range(40) for j in range(i + 1, 40)]
        distances = [np.linalg.norm(positions[i] - positions[j]) for i, j in pairs]
        found = geometry.closest_pair_molecule(positions)
        if min(distances) < MIN_DISTANCE:
            assert found is not None and found[:2] == pairs[int(np.argmin(distances))]
            assert found[2] == pytest.approx(min(distances))
        else:
            assert found is None


@pytest.mark.parametrize("model", ATOMS_MODELS)
def test_every_3d_model_masks_bad_geometry_before_its_own_check(model):
    """For every registered 3D adapter the embedding job names the geometric problem, and the
    adapter's own check never sees such a structure."""
    adapter = get_model(model, weights="random-init")
    seen = []

    def check(record):
        seen.append(record.id)
        return None

    adapter.check = check  # type: ignore[method-assign]
    records = [Record(id=name, atoms=atoms) for name, (atoms, _) in BAD.items()]
    records.append(Record(id="Si", atoms=_si()))
    reasons = embed.input_problems(adapter, records)
    for record, reason in zip(records[:-1], reasons[:-1], strict=True):
        assert BAD[record.id][1] in reason, (model, record.id, reason)
    assert reasons[-1] == "" and seen == ["Si"]


class _Raising(ModelAdapter):
    name, family, modality = "raising-test", "none", "atoms"
    architecture = layer = weights_name = "none"

    def _load(self) -> None:
        pass

    def embed_batch(self, records):
        raise AssertionError("not called")

    def check(self, record):
        if record.id == "boom":
            raise RuntimeError("element table lookup failed")
        return super().check(record)


class _Smiles(_Raising):
    modality = "smiles"


def test_a_raising_check_masks_only_its_structure():
    records = [Record(id="ok", atoms=_si()), Record(id="boom", atoms=_si()),
               Record(id="none", text="no structure")]
    assert embed.input_problems(_Raising(), records) == [
        "", "check failed: RuntimeError: element table lookup failed",
        "no atoms input for this structure"]


def test_other_modalities_skip_the_geometry_check():
    nan_atoms = BAD["nan-position"][0]
    records = [Record(id="m", atoms=nan_atoms, smiles="O")]
    assert embed.input_problems(_Smiles(), records) == [""]


def test_embedding_job_masks_bad_geometry(tmp_path):
    """composition, a 3D model that would happily embed any of them, masks every bad
    structure with its reason and embeds the rest."""
    records = [Record(id=name, atoms=atoms, text=name) for name, (atoms, _) in BAD.items()]
    records += [Record(id="Si", atoms=_si()), Record(id="C6H6", atoms=molecule("C6H6"))]
    structures = tmp_path / "structures.h5"
    write_structures(structures, records, {"dataset": "toy"})
    out = embed.embed_dataset("composition", structures, tmp_path / "c.h5", progress=False)
    back = read_embeddings(tmp_path / "c.h5")
    for i, record_id in enumerate(back.ids):
        if record_id in BAD:
            assert not back.valid[i] and BAD[record_id][1] in back.errors[i], record_id
        else:
            assert back.valid[i] and back.errors[i] == ""
    assert out.attrs["n_valid"] == 2


def _protein_chain(hydrogen_gap: float, backbone_gap: float) -> Atoms:
    """Two glycines (N, CA, C, O, H each), the two hydrogens ``hydrogen_gap`` Å apart and the
    second N ``backbone_gap`` Å from the first CA."""
    names = ["N", "CA", "C", "O", "H"] * 2
    positions = np.array([[0, 0, 0], [1.46, 0, 0], [2.0, 1.4, 0], [1.4, 2.4, 0], [-0.5, -0.8, 0],
                          [3.3, 1.5, 0], [4.1, 2.7, 0], [5.5, 2.3, 0], [6.0, 1.2, 0],
                          [-0.5 + hydrogen_gap, -0.8, 0]], dtype=float)
    positions[5] = positions[1] + [backbone_gap, 0, 0] if backbone_gap < 1 else positions[5]
    atoms = Atoms(["N", "C", "C", "O", "H"] * 2, positions=positions)
    atoms.new_array("atom_name", np.array(names))
    atoms.new_array("residue_index", np.repeat([0, 1], 5).astype(np.int32))
    return atoms


def test_proteinmpnn_is_checked_on_the_backbone_it_reads():
    """Overlapping hydrogens of a deposited model never reach ProteinMPNN (it reads N, CA,
    C, O) and do not mask the chain for it, while every other 3D model masks it; an
    overlapping backbone masks it for ProteinMPNN too."""
    mpnn = get_model("proteinmpnn-v48-020", weights="random-init")
    mpnn.check = lambda record: None  # type: ignore[method-assign]
    composition = get_model("composition")
    bad_hydrogens = Record("h", atoms=_protein_chain(hydrogen_gap=0.01, backbone_gap=2.0))
    bad_backbone = Record("b", atoms=_protein_chain(hydrogen_gap=1.0, backbone_gap=0.02))
    assert geometry_problem(bad_hydrogens.atoms)  # the atoms as deposited are not physical
    assert embed.input_problems(mpnn, [bad_hydrogens]) == [""]
    assert "closer than" in embed.input_problems(composition, [bad_hydrogens])[0]
    assert "atoms 1 and 5 are 0.020 Å apart" in embed.input_problems(mpnn, [bad_backbone])[0]
