"""The DNA models on onnxruntime.

* **Language model**: core's decoder-only export (:func:`core.export.export_decoder_lm`):
  ``decoder.onnx`` (one step or a prefill chunk, with per-layer state) and ``config.json``, whose
  metadata holds the tokenizer; :class:`core.export.OnnxDecoderLM` runs the same
  :func:`core.generation.generate` loop on it (:func:`apps.genomics.generate.sample` takes either).
* **Gene tagger**: ``tagger.onnx`` reads ``ids`` int64 [batch, length] and ``mask`` bool [batch,
  length] (True at real bases) and returns ``logits`` float [batch, length, classes]; batch and
  length are dynamic. A recurrent encoder (Mamba, GLA ...) exports as an ONNX ``Scan`` over its
  step (:func:`core.export.scanned_mixers`), so it runs at any length.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from apps.genomics.dna.model import Tagger
from apps.genomics.genes import GENE_LABELS
from core.export import (DEFAULT_OPSET, export_decoder_lm, export_graph, exporting, open_export, scanned_mixers,
                         write_config)
from core.tokenizers import tokenizer_from_json

FORMAT = "seqlab-gene-tagger"
VERSION = 1
TAGGER_FILE = "tagger.onnx"
INPUTS, OUTPUTS = ("ids", "mask"), ("logits",)
#: onnxruntime and PyTorch agree when no scored base's logit differs by more than this
PARITY_ATOL = 1e-4


def export_lm(task, out_dir: str | Path, metadata: dict[str, Any] | None = None) -> dict[str, Path]:
    """A :class:`~apps.genomics.dna.task.DNALMTask`'s model and tokenizer -> ``decoder.onnx`` + ``config.json``."""
    from core.tokenizers.base import BOS_ID, EOS_ID

    meta = {"tokenizer": task.tokenizers_json["dna"], "bos_id": BOS_ID, "eos_id": EOS_ID, **(metadata or {})}
    return export_decoder_lm(task.model, out_dir, metadata=meta)


def runner_tokenizer(runner):
    """The tokenizer an export folder carries in its metadata."""
    return tokenizer_from_json(runner.metadata["tokenizer"])


class _Graph(nn.Module):
    def __init__(self, forward):
        super().__init__()
        self.fn = forward

    def forward(self, ids: torch.Tensor, mask: torch.Tensor):
        return self.fn(ids, mask)


def export_sequence_graph(model: nn.Module, forward, path: Path, outputs: Sequence[str], opset: int = DEFAULT_OPSET) -> Path:
    """``forward(ids, mask)`` of an encoder ``model`` (a ``.encoder.stack`` of any mixers) as one
    graph with dynamic batch and length; recurrent mixers become ``Scan`` loops."""
    dim = torch.export.Dim
    batch, length = dim("batch"), dim("length", min=2)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 8, (2, 37), generator=gen)
    mask = torch.ones(2, 37, dtype=torch.bool)
    mask[1, 30:] = False
    graph = _Graph(forward)
    graph.add_module("model", model)  # (so the exporter sees the weights as the graph's own)
    with exporting(model), scanned_mixers(model.encoder.stack):
        return export_graph(graph, (ids, mask), path, INPUTS, outputs, ({0: batch, 1: length}, {0: batch, 1: length}),
                            opset)


def export_tagger(task, out_dir: str | Path, metadata: dict[str, Any] | None = None,
                  opset: int = DEFAULT_OPSET) -> dict[str, Path]:
    """A :class:`~apps.genomics.dna.task.GeneTagTask` -> ``tagger.onnx`` + ``config.json`` (with the
    tokenizer, the label names and the training window, which predictions tile by)."""
    model: Tagger = task.model
    out_dir = Path(out_dir)
    path = export_sequence_graph(model, model.forward, out_dir / TAGGER_FILE, OUTPUTS, opset)
    config = {"format": FORMAT, "version": VERSION, "files": {"tagger": TAGGER_FILE},
              "exporter": "torch.onnx.export(dynamo=True)", "opset": opset, "torch": torch.__version__,
              "labels": list(GENE_LABELS), "max_len": model.cfg.encoder.max_len,
              "tokenizer": task.tokenizers_json["dna"], "metadata": metadata or {}}
    return {"tagger": path, "config": write_config(out_dir / "config.json", config)}


class OnnxTagger:
    """An :func:`export_tagger` folder: logits as :class:`~apps.genomics.dna.model.Tagger` returns them."""

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None):
        self.config, sessions = open_export(path, FORMAT, providers, version=VERSION)
        self.session = sessions["tagger"]
        self.labels: list[str] = list(self.config["labels"])
        self.tokenizer = tokenizer_from_json(self.config["tokenizer"])

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        (out,) = self.session.run(list(OUTPUTS), {"ids": ids.cpu().numpy().astype(np.int64),
                                                  "mask": mask.cpu().numpy().astype(bool)})
        return torch.from_numpy(out)


def tagger_parity(task, runner: OnnxTagger, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """onnxruntime vs PyTorch on one padded batch: the largest logit difference over real bases and
    the share of real bases whose label differs."""
    with exporting(task.model):
        ref = task.model(batch["ids"], batch["mask"]).float()
    got = runner(batch["ids"], batch["mask"])
    real = batch["mask"]
    diff = float((ref - got).abs()[real].max())
    changed = float((ref.argmax(-1) != got.argmax(-1))[real].float().mean())
    return {"max_abs_diff": diff, "label_mismatch": changed, "ok": diff <= PARITY_ATOL}


def lm_parity(task, runner, ids: torch.Tensor) -> float:
    """Largest next-base logit difference over ``ids`` [B, T] read in one prefill (a step-only
    graph reads it a token at a time, which is what generation does)."""
    model = task.model
    with exporting(model):
        want, _ = model.step(ids, model.start(ids.shape[0]))
    got, _ = runner.step(ids, runner.start(ids.shape[0]))
    return float((want.float() - got).abs().max())
