"""A Regression Transformer on onnxruntime: ``molecule.onnx`` reads ``ids`` int64 [batch, length]
and ``mask`` bool [batch, length] and returns ``logits`` [batch, length, vocab]; batch and length
are dynamic. ``config.json`` holds the tokenizer, the properties in prefix order and the longest
input. Decoding (slot-constrained property prediction, infilling, beam search) is the task's own
code running over the graph: :class:`OnnxMaskedLM` stands in for the PyTorch model.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from apps.genomics.dna.onnx import PARITY_ATOL, export_sequence_graph
from core.export import DEFAULT_OPSET, exporting, open_export, write_config

FORMAT = "seqlab-regression-transformer"
VERSION = 1
FILE = "molecule.onnx"


def export_molecule(task, out_dir: str | Path, metadata: dict[str, Any] | None = None,
                    opset: int = DEFAULT_OPSET) -> dict[str, Path]:
    """A :class:`~apps.genomics.molecule.task.RegressionTransformerTask` -> ``molecule.onnx`` + ``config.json``."""
    out_dir = Path(out_dir)
    path = export_sequence_graph(task.model, task.model.forward, out_dir / FILE, ("logits",), opset)
    config = {"format": FORMAT, "version": VERSION, "files": {"molecule": FILE},
              "exporter": "torch.onnx.export(dynamo=True)", "opset": opset, "torch": torch.__version__,
              "properties": task.properties, "max_len": task.arch.encoder.max_len,
              "tokenizer": task.tokenizers_json["molecule"], "metadata": metadata or {}}
    return {"molecule": path, "config": write_config(out_dir / "config.json", config)}


class OnnxMaskedLM(nn.Module):
    """An :func:`export_molecule` folder as a module with the PyTorch model's ``(ids, mask) -> logits``."""

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None):
        super().__init__()
        self.config, sessions = open_export(path, FORMAT, providers, version=VERSION)
        self.session = sessions["molecule"]

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        (logits,) = self.session.run(["logits"], {"ids": ids.cpu().numpy().astype(np.int64),
                                                  "mask": mask.cpu().numpy().astype(bool)})
        return torch.from_numpy(logits)


@contextmanager
def running_on(task, runner: OnnxMaskedLM) -> Iterator[None]:
    """The task decodes with ``runner`` in place of its PyTorch model while the block runs."""
    original = task.model
    task.model = runner
    try:
        yield
    finally:
        task.model = original


def molecule_parity(task, runner: OnnxMaskedLM, batch: dict[str, torch.Tensor], where: torch.Tensor) -> dict[str, Any]:
    """onnxruntime vs PyTorch on one padded batch: the largest logit difference over real tokens,
    and whether predicted properties and greedy infilling of ``where`` come out the same."""
    with exporting(task.model):
        want = task.model(batch["ids"], batch["mask"]).float()
        properties = task.predict_properties(batch)
        filled = task.infill(batch, where, top_k=1)
    got = runner(batch["ids"], batch["mask"])
    diff = float((want - got).abs()[batch["mask"]].max())
    with running_on(task, runner):
        same_properties = all(torch.equal(v, task.predict_properties(batch)[p]) for p, v in properties.items())
        same_infill = torch.equal(filled, task.infill(batch, where, top_k=1))
    return {"max_abs_diff": diff, "same_properties": same_properties, "same_infill": same_infill,
            "ok": diff <= PARITY_ATOL and same_properties and same_infill}
