"""Every problem a user can fix is one MatterAlignError, told in one line by the CLI."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from matteralign.analysis import AlignmentError
from matteralign.config import ConfigError
from matteralign.datasets.base import DatasetUnavailable
from matteralign.envs import EnvFileError
from matteralign.errors import InputError, MatterAlignError, MissingInputError, UnknownNameError
from matteralign.io import CorruptFileError
from matteralign.models.base import EmbedOutput, ModelAdapter, ModelUnavailable, OptionError
from matteralign.models.weights import WeightsMismatch
from matteralign.records import Record


@pytest.mark.parametrize(("error", "legacy"), [
    (ConfigError, ValueError), (AlignmentError, ValueError), (EnvFileError, ValueError),
    (ModelUnavailable, RuntimeError), (WeightsMismatch, RuntimeError),
    (DatasetUnavailable, RuntimeError), (OptionError, TypeError),
    (CorruptFileError, ValueError), (MissingInputError, FileNotFoundError),
    (InputError, ValueError), (UnknownNameError, KeyError),
])
def test_one_base_and_the_old_one(error: type[Exception], legacy: type[Exception]) -> None:
    assert issubclass(error, MatterAlignError) and issubclass(error, legacy)


def test_unknown_name_reads_as_its_message() -> None:
    from matteralign.datasets.base import REGISTRY

    with pytest.raises(UnknownNameError) as caught:
        REGISTRY.get("qm10")
    assert str(caught.value).startswith("unknown dataset 'qm10'; registered: ")


def test_every_error_the_cli_raises_is_a_matteralign_error() -> None:
    """The commands' own failures are MatterAlignErrors (SystemExit aside: argparse's way)."""
    import ast

    import matteralign.cli as cli

    tree = ast.parse(Path(cli.__file__).read_text())
    raised = {node.exc.func.id for node in ast.walk(tree)
              if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
              and isinstance(node.exc.func, ast.Name)}
    assert raised, "no raise found"
    for name in raised - {"SystemExit"}:
        assert issubclass(getattr(cli, name), MatterAlignError), name


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "matteralign", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize(("args", "message"), [
    # the model's package is not in this interpreter (ModelUnavailable)
    (["embed", "chgnet-0.3.0", "--structures", "s.h5", "--out", "e.h5"], "needs the Python"),
    # a pinned sha256 that the weights do not have (WeightsMismatch)
    (["embed", "morgan-fp", "--structures", "s.h5", "--out", "e.h5", "--sha256", "0" * 64],
     "but the config pins"),
    # an option value out of range (OptionError)
    (["embed", "chgnet-0.3.0", "--structures", "s.h5", "--out", "e.h5",
      "--options", '{"max_atoms": -3}'], "max_atoms: -3 must be > 0"),
    # a folder where a file is read (OSError)
    (["plot", ".", "--out", "x.png"], "error: "),
    (["summary", "--embeddings", "missing.h5", "--out", "s.tsv"], "missing"),
])
def test_cli_error_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    proc = cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"matteralign {args[0]}: error: "), lines
    assert message in lines[0]


class _Pickled:
    """Not a tensor: a checkpoint holding it needs unpickling."""


class _TorchFileAdapter(ModelAdapter):
    """A minimal adapter whose _load reads its file as the real ones do (weights_only)."""

    name = "test-torch-file"
    family = "test"
    modality = "atoms"
    architecture = "none"
    layer = "none"
    weights_name = "none"

    def _load(self) -> None:
        import torch

        torch.load(str(self.weights), map_location="cpu", weights_only=True)

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        return EmbedOutput(np.zeros((len(records), 1)))


class _PickleOptionAdapter(_TorchFileAdapter):
    def __init__(self, weights: str | None = None, device: str = "cpu",
                 allow_pickle: bool = False) -> None:
        super().__init__(weights=weights, device=device)
        self.allow_pickle = allow_pickle


@pytest.fixture
def pickled_checkpoint(tmp_path: Path) -> Path:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save({"model": _Pickled()}, buffer)
    path = tmp_path / "whole-module.pt"
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize(("adapter", "fix"), [
    (_TorchFileAdapter, "reads only state-dict checkpoints"),
    (_PickleOptionAdapter, "set allow_pickle: true"),
])
def test_weights_only_refusal_names_the_config_fix(pickled_checkpoint: Path,
                                                   adapter: type[ModelAdapter], fix: str) -> None:
    """torch's own message advises weights_only=False; ours names the option (or none)."""
    with pytest.raises(ValueError) as caught:
        adapter(weights=str(pickled_checkpoint)).load()
    message = str(caught.value)
    assert fix in message and str(pickled_checkpoint) in message
    assert "Unsupported global" in message and "_Pickled" in message
    assert "weights_only=False" not in message and "weights_only` set to `False" not in message
