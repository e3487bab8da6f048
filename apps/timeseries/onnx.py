"""A forecaster on onnxruntime: ``forecaster.onnx`` reads ``past`` float32 [batch, lookback, C_in]
(scaled with the training scaler), ``past_time`` [batch, lookback, F] and ``future_time``
[batch, horizon, F] (calendar features) and returns ``raw`` [batch, horizon, C_out, size], the
head's outputs on the normalised scale; the batch axis is dynamic. ``config.json`` carries what
turns inputs and outputs into units: the scaler, the output channels, the head and its quantile
levels, the frequency's calendar. One graph serves every model: an autoregressive patch model's
patch-by-patch loop is unrolled (its step count is fixed by the horizon), and recurrent encoders
become ONNX ``Scan`` loops.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.export import DEFAULT_OPSET, export_graph, exporting, open_export, scanned_mixers, write_config

FORMAT = "seqlab-forecaster"
VERSION = 1
FILE = "forecaster.onnx"
INPUTS, OUTPUTS = ("past", "past_time", "future_time"), ("raw",)
#: onnxruntime and PyTorch agree when no output differs by more than this (normalised scale)
PARITY_ATOL = 1e-4


class _Graph(nn.Module):
    def __init__(self, task):
        super().__init__()
        self.task = task

    def forward(self, past, past_time, future_time):
        return self.task.raw({"past": past, "past_time": past_time, "future_time": future_time})


def export_forecaster(task, out_dir: str | Path, metadata: dict[str, Any] | None = None,
                      opset: int = DEFAULT_OPSET) -> dict[str, Path]:
    cfg, out_dir = task.arch, Path(out_dir)
    batch = torch.export.Dim("batch")
    f = max(cfg.time_features, 1)
    example = (torch.randn(2, cfg.lookback, cfg.channels_in), torch.zeros(2, cfg.lookback, f),
               torch.zeros(2, cfg.horizon, f))
    stacks = [m.stack for m in task.model.modules() if hasattr(m, "stack") and hasattr(m.stack, "layers")]
    with exporting(task), ExitStack() as scans:
        if cfg.decoding == "direct":  # (a decoder steps its own state; only encoders scan)
            for stack in stacks:
                scans.enter_context(scanned_mixers(stack))
        path = export_graph(_Graph(task), example, out_dir / FILE, INPUTS, OUTPUTS,
                            ({0: batch}, {0: batch}, {0: batch}), opset)
    config = {"format": FORMAT, "version": VERSION, "files": {"forecaster": FILE}, "opset": opset,
              "exporter": "torch.onnx.export(dynamo=True)", "torch": torch.__version__,
              "model": cfg.model, "head": cfg.head, "quantiles": list(cfg.quantiles), "lookback": cfg.lookback,
              "horizon": cfg.horizon, "output_index": task.output_index,
              "scale_mean": task.scale_mean.tolist(), "scale_std": task.scale_std.tolist(),
              "metadata": metadata or {}}
    return {"forecaster": path, "config": write_config(out_dir / "config.json", config)}


class OnnxForecaster:
    """An :func:`export_forecaster` folder: the batch dict in, ``raw`` out (as ``task.raw``)."""

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None):
        self.config, sessions = open_export(path, FORMAT, providers, version=VERSION)
        self.session = sessions["forecaster"]

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {name: batch[name].cpu().numpy().astype(np.float32) for name in INPUTS}
        (raw,) = self.session.run(list(OUTPUTS), feeds)
        return torch.from_numpy(raw)


def forecaster_parity(task, runner: OnnxForecaster, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    with exporting(task):
        want = task.raw(batch).float()
    got = runner(batch)
    diff = float((want - got).abs().max())
    return {"max_abs_diff": diff, "ok": diff <= PARITY_ATOL}
