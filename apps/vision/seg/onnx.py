"""SETR on onnxruntime: one graph, images -> per-pixel logits.

``segmenter.onnx`` reads ``images`` float [batch, 1, height, width] (ink = 1, paper and padding = 0)
and ``sizes`` int64 [batch, 2] (each image's real height and width: padded batches give every image
its logits alone) and returns ``logits`` float [batch, classes, height, width]. Batch, height and
width are dynamic; height and width are whole numbers of patches (``config.json``'s ``patch``: the
exporter would otherwise bake the example's remainder into the graph), which :class:`OnnxSegmenter`
pads to and crops back from. A recurrent encoder (mamba, gla ...) exports as an ONNX ``Scan`` over its step
(:func:`core.export.scanned_mixers`), so it runs for any number of patches. ``config.json`` holds
the class names, ``ignore_index`` and the data module's ``image_scale``; :class:`OnnxSegmenter`
reads them back.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from apps.vision.batching import example_images, ink_batch
from apps.vision.seg.model import SETR
from core.export import (
    DEFAULT_OPSET,
    export_graph,
    exporting,
    new_output_dir,
    open_export,
    scanned_mixers,
    write_config,
)

FORMAT = "seqlab-segmenter"
VERSION = 1
MODEL_FILE = "segmenter.onnx"
INPUTS, OUTPUTS = ("images", "sizes"), ("logits",)


class _Graph(nn.Module):
    def __init__(self, model: SETR):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        return self.model(images, sizes)


def _setr(task_or_model) -> SETR:
    model = getattr(task_or_model, "model", task_or_model)
    if not isinstance(model, SETR):
        raise TypeError(f"expected a SegTask or SETR, got {type(task_or_model).__name__}")
    return model


def export_segmenter(task_or_model, out_dir: str | Path, image_scale: float = 1.0,
                     classes: Sequence[str] | None = None, ignore_index: int | None = None,
                     metadata: dict[str, Any] | None = None, opset: int = DEFAULT_OPSET) -> dict[str, Path]:
    """Write ``segmenter.onnx`` and ``config.json`` into ``out_dir`` (new or empty). ``classes`` and
    ``ignore_index`` default to the task's. Returns ``{"segmenter": path, "config": path}``."""
    model = _setr(task_or_model)
    out_dir = new_output_dir(out_dir)
    classes = list(classes or getattr(task_or_model, "classes", None) or map(str, range(model.cfg.num_classes)))
    if ignore_index is None:
        ignore_index = getattr(task_or_model, "ignore_index", 255)
    dim = torch.export.Dim
    batch = dim("batch")
    p = model.cfg.patch
    shapes = ({0: batch, 2: p * dim("patch_rows"), 3: p * dim("patch_cols")}, {0: batch})
    with exporting(model), scanned_mixers(model.encoder.stack):
        path = export_graph(_Graph(model), example_images(model.cfg.patch, next(model.parameters())), out_dir / MODEL_FILE, INPUTS, OUTPUTS, shapes, opset)
    config = {"format": FORMAT, "version": VERSION, "files": {"segmenter": MODEL_FILE},
              "exporter": "torch.onnx.export(dynamo=True)", "opset": opset, "torch": torch.__version__,
              "patch": model.cfg.patch, "num_classes": model.cfg.num_classes, "classes": classes,
              "ignore_index": int(ignore_index), "image_scale": float(image_scale), "metadata": metadata or {}}
    return {"segmenter": path, "config": write_config(out_dir / "config.json", config)}


class OnnxSegmenter:
    """An :func:`export_segmenter` folder: ``logits``/``segment`` as :class:`SegTask` has them."""

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None):
        self.config, sessions = open_export(path, FORMAT, providers, version=VERSION)
        self.session = sessions["segmenter"]
        self.classes: list[str] = list(self.config["classes"])
        self.image_scale = float(self.config.get("image_scale", 1.0))

    def logits(self, images: torch.Tensor, sizes: torch.Tensor | None = None) -> torch.Tensor:
        """[B, K, H, W] as :meth:`SETR.forward` returns them (the batch padded to whole patches here)."""
        h, w = images.shape[2:]
        if sizes is None:
            sizes = torch.tensor([[h, w]]).expand(images.shape[0], 2)
        p = int(self.config["patch"])
        padded = torch.nn.functional.pad(images.detach().float().cpu(), (0, (-w) % p, 0, (-h) % p))
        (out,) = self.session.run(list(OUTPUTS), {"images": padded.numpy(),
                                                  "sizes": sizes.cpu().numpy().astype(np.int64)})
        return torch.from_numpy(out)[:, :, :h, :w]

    def segment(self, images: torch.Tensor, sizes: torch.Tensor | None = None) -> list[torch.Tensor]:
        if sizes is None:
            sizes = torch.tensor([images.shape[2:]]).expand(images.shape[0], 2)
        labels = self.logits(images, sizes).argmax(1).to(torch.uint8)
        return [lab[:h, :w] for lab, (h, w) in zip(labels, sizes.tolist())]


def parity(task_or_model, runner: OnnxSegmenter, images: torch.Tensor, sizes: torch.Tensor | None = None
           ) -> dict[str, float]:
    """onnxruntime vs PyTorch on one batch: the largest absolute logit difference over real pixels
    and the share of real pixels whose predicted class differs."""
    model = _setr(task_or_model)
    if sizes is None:
        sizes = torch.tensor([images.shape[2:]]).expand(images.shape[0], 2)
    with exporting(model):
        ref = model(images, sizes).float().cpu()
    got = runner.logits(images, sizes)
    diff, changed, total = 0.0, 0, 0
    for r, g, (h, w) in zip(ref, got, sizes.tolist()):
        r, g = r[:, :h, :w], g[:, :h, :w]
        diff = max(diff, float((r - g).abs().max()))
        changed += int((r.argmax(0) != g.argmax(0)).sum())
        total += h * w
    return {"max_abs_diff": diff, "label_mismatch": changed / max(total, 1)}


#: onnxruntime and PyTorch agree when no real pixel's logit differs by more than this
PARITY_ATOL = 1e-4


def export_and_check(task_or_model, out_dir: str | Path, images: Sequence[np.ndarray], image_scale: float = 1.0,
                     metadata: dict[str, Any] | None = None) -> tuple[dict[str, Path], dict[str, float]]:
    """:func:`export_segmenter`, then :func:`parity` on ``images`` (grayscale uint8 pages, prepared at
    ``image_scale`` and batched with padding as training batched them). The check's ``ok`` is 1.0
    when the largest logit difference is within :data:`PARITY_ATOL`."""
    paths = export_segmenter(task_or_model, out_dir, image_scale, metadata=metadata)
    batch, sizes = ink_batch(list(images), image_scale)
    check = parity(task_or_model, OnnxSegmenter(out_dir), batch, sizes)
    return paths, {**check, "ok": float(check["max_abs_diff"] <= PARITY_ATOL)}
