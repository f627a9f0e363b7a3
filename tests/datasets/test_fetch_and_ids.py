"""`matteralign data fetch` offline, `matteralign datasets`, and prepare's ids.txt."""

from __future__ import annotations

from pathlib import Path

import pytest

from matteralign import cli
from matteralign.datasets.prepare import prepare_dataset, read_ids
from matteralign.datasets.store import read_structure_attrs, read_structures


@pytest.mark.parametrize("name", ["omat24", "salex", "omol25", "rcsb-pdb"])
def test_fetch_fails_at_once_offline(name: str, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "_unreachable_host", lambda url, timeout=3.0: url.split("/")[2])
    assert cli.main(["data", "fetch", name]) == 2
    err = capsys.readouterr().err
    assert "no network connection" in err and "https://" in err
    assert f"datasets.{name}.options.path" in err


def test_fetch_of_packaged_data_is_a_no_op(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["data", "fetch", "pdb-packaged"]) == 0
    assert "nothing to fetch" in capsys.readouterr().out
    assert cli.main(["data", "fetch", "omat24-like"]) == 0
    assert "generated locally" in capsys.readouterr().out
    assert cli.main(["data", "fetch", "nope"]) == 2


def test_datasets_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["datasets"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert "stand-in" in lines["omat24-like"] and "real" in lines["omat24"]
    assert "no local path given" in lines["omat24"]
    assert "atoms,sequence,text" in lines["pdb-packaged"]


def test_prepare_writes_ids(tmp_path: Path) -> None:
    out = tmp_path / "pdb-packaged" / "structures.h5"
    out.parent.mkdir()
    digest = prepare_dataset("pdb-packaged", 6, 0, out)
    ids, header = read_ids(out.parent / "ids.txt")
    assert ids == [r.id for r in read_structures(out)]
    assert header == {"dataset": "pdb-packaged", "n": "6", "seed": "0",
                      "dataset_sha256": digest}
    assert read_structure_attrs(out)["dataset_sha256"] == digest
