"""A sequence-property model on onnxruntime: ``property.onnx`` reads ``ids`` int64 [batch, length]
and ``mask`` bool [batch, length] and returns ``values`` (label units [batch], or class
probabilities [batch, classes]) and ``pooled`` (the embedding [batch, d_model]); batch and
length are dynamic. ``config.json`` holds the tokenizer, the alphabet, the kind and the classes.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apps.genomics.dna.onnx import PARITY_ATOL, export_sequence_graph
from core.export import DEFAULT_OPSET, exporting, open_export, write_config
from core.tokenizers import tokenizer_from_json

FORMAT = "seqlab-sequence-property"
VERSION = 1
FILE = "property.onnx"
OUTPUTS = ("values", "pooled")


def export_property(task, out_dir: str | Path, alphabet: str, metadata: dict[str, Any] | None = None,
                    opset: int = DEFAULT_OPSET) -> dict[str, Path]:
    """A :class:`~apps.genomics.property.task.PropertyTask` -> ``property.onnx`` + ``config.json``."""
    out_dir = Path(out_dir)

    def forward(ids, mask):
        pooled = task.model.features(ids, mask)
        return task.outputs(pooled), pooled

    path = export_sequence_graph(task.model, forward, out_dir / FILE, OUTPUTS, opset)
    config = {"format": FORMAT, "version": VERSION, "files": {"property": FILE},
              "exporter": "torch.onnx.export(dynamo=True)", "opset": opset, "torch": torch.__version__,
              "kind": task.kind, "classes": task.classes, "alphabet": alphabet,
              "max_len": task.arch.encoder.max_len, "tokenizer": task.tokenizers_json["sequence"],
              "metadata": metadata or {}}
    return {"property": path, "config": write_config(out_dir / "config.json", config)}


class OnnxProperty:
    """An :func:`export_property` folder: ``(values, embedding)`` as the task computes them."""

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None):
        self.config, sessions = open_export(path, FORMAT, providers, version=VERSION)
        self.session = sessions["property"]
        self.tokenizer = tokenizer_from_json(self.config["tokenizer"])

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, embedding = self.session.run(list(OUTPUTS), {"ids": ids.cpu().numpy().astype(np.int64),
                                                             "mask": mask.cpu().numpy().astype(bool)})
        return torch.from_numpy(values), torch.from_numpy(embedding)


def property_parity(task, runner: OnnxProperty, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """onnxruntime vs PyTorch on one padded batch: the largest difference of values and embeddings."""
    with exporting(task.model):
        pooled = task.model.features(batch["ids"], batch["mask"])
        want = (task.outputs(pooled), pooled.float())
    got = runner(batch["ids"], batch["mask"])
    diff = max(float((w - g).abs().max()) for w, g in zip(want, got))
    return {"max_abs_diff": diff, "ok": diff <= PARITY_ATOL}
