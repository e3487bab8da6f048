"""Export a trained forecaster to ONNX and check onnxruntime against PyTorch.

    python -m apps.timeseries.export --checkpoint CKPT --out DIR [--samples 16]

Writes ``forecaster.onnx`` + ``config.json`` (:mod:`apps.timeseries.onnx` describes them) and
runs ``--samples`` held-out test windows of the checkpoint's data through both runtimes as one
batch; fails (exit 1) unless every raw output agrees within 1e-4 on the normalised scale. The
output folder must be new or empty.
"""
from __future__ import annotations

import argparse
import sys

import torch

from apps.timeseries.data import ForecastDataModule
from apps.timeseries.onnx import PARITY_ATOL, OnnxForecaster, export_forecaster, forecaster_parity
from apps.timeseries.task import ForecastTask
from core.errors import UserError, entry_point
from core.export import new_output_dir
from core.training import datamodule_from_checkpoint


@entry_point
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by apps.timeseries.train")
    p.add_argument("--out", required=True, help="new or empty folder for the graph")
    p.add_argument("--samples", type=int, default=16, help="held-out test windows to check")
    a = p.parse_args(argv)
    if a.samples < 1:
        raise UserError("--samples must be at least 1")
    task = ForecastTask.from_checkpoint(a.checkpoint)
    dm = datamodule_from_checkpoint(ForecastDataModule, a.checkpoint)
    test = dm.windows("test")
    picked = torch.linspace(0, len(test) - 1, min(a.samples, len(test))).long().tolist()  # spread over the test span
    batch = {k: torch.stack([test[i][k] for i in picked]) for k in test[0]}
    out = new_output_dir(a.out)
    export_forecaster(task, out, {"checkpoint": str(a.checkpoint)})
    check = forecaster_parity(task, OnnxForecaster(out), batch)
    print(f"onnxruntime vs PyTorch on {len(picked)} held-out windows: largest output difference "
          f"{check['max_abs_diff']:.2e} (limit {PARITY_ATOL:.0e})")
    print(f"exported to {out}")
    if not check["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
