"""Long-horizon forecasting: core forecasters against HF transformers' PatchTST and the classical
baselines, on the same windows, for the same wall-clock budget.

    python benchmarks/forecast.py [--horizons 24 96 336] [--minutes 3] [--lookback 336] [--ett ETTh1.csv] [--quick]

Data: the bundled half-hourly electricity demand (univariate, ``features S``) and, with ``--ett``,
a user's ETT CSV (all channels, ``features M``, the 12/4/4-month split). Every model reads the
same ``ForecastDataModule`` windows (TSLib's conventions, train-only scaler, every test window).

Models: core's patch forecaster with attention, Mamba and mLSTM backbones, Informer and DLinear
(each ``apps.timeseries.train fit`` for ``--minutes`` of wall-clock, then ``test``); HF
``PatchTSTForPrediction`` of the same width and depth, built from a config and trained by a
plain loop on the same batches for the same time; seasonal naive, ETS and ARIMA (statsmodels,
fitted on the training segment). Reported: MSE and MAE on the normalised scale, MASE in original
units, and training throughput (windows per second over the same 20 batches) of core's
attention patch model against HF PatchTST.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from apps.timeseries.baselines import Statistical, seasonal_naive  # noqa: E402
from apps.timeseries.data import ForecastDataModule  # noqa: E402
from apps.timeseries.metrics import forecast_metrics, update_forecast_metrics  # noqa: E402
from apps.timeseries.task import ForecastTask  # noqa: E402
from apps.timeseries.train import main as train_main  # noqa: E402
from benchmarks.common import hardware, markdown_table, record  # noqa: E402

#: the size every patch model gets (HF PatchTST too): d 64, 3 layers, 4 heads, FFN 128, patch 16 / 8
WIDTH = {"d_model": 64, "n_layers": 3, "n_heads": 4, "d_ff": 128}
CORE = {
    "patch-attention": ("apps/timeseries/configs/patch.yaml", ["--model.arch.backbone.mixer", "attention"]),
    "patch-mamba": ("apps/timeseries/configs/patch.yaml", ["--model.arch.backbone.mixer", "mamba"]),
    "patch-mlstm": ("apps/timeseries/configs/patch.yaml", ["--model.arch.backbone.mixer", "mlstm"]),
    "informer": ("apps/timeseries/configs/informer.yaml", []),
    "dlinear": ("apps/timeseries/configs/dlinear.yaml", []),
}


def data_options(args, horizon: int, ett: str | None) -> list[str]:
    common = ["--data.lookback", str(args.lookback), "--data.horizon", str(horizon),
              "--data.label_len", str(args.lookback // 2)]
    if ett:
        return common + ["--data.csv", ett, "--data.features", "M", "--data.split", "ett"]
    return common


def datamodule(args, horizon: int, ett: str | None) -> ForecastDataModule:
    if ett:
        return ForecastDataModule(csv=ett, features="M", split="ett", lookback=args.lookback, horizon=horizon,
                                  label_len=args.lookback // 2)
    return ForecastDataModule(lookback=args.lookback, horizon=horizon, label_len=args.lookback // 2)


def score(dm: ForecastDataModule, forecasts: np.ndarray) -> dict[str, float]:
    """Point forecasts [N, H, C_out] in original units for every test window, scored as the task scores."""
    metrics = forecast_metrics(False)
    test = dm.windows("test")
    out_index = dm.output_index
    mean = torch.tensor([dm.scale_mean[i] for i in out_index])
    std = torch.tensor([dm.scale_std[i] for i in out_index])
    truth = torch.stack([test[k]["future"][:, out_index] for k in range(len(test))])
    point_units = torch.from_numpy(forecasts).float()
    update_forecast_metrics(metrics, (point_units - mean) / std, truth, point_units, truth * std + mean,
                            torch.tensor(dm.mase_scale), None)
    return {k: float(m.compute()) for k, m in metrics.items()}


def classical(dm: ForecastDataModule) -> dict[str, dict[str, float]]:
    series, out = dm.series(), {}
    test = dm.windows("test")
    starts = np.array([int(test[k]["start"]) for k in range(len(test))])
    columns = [series.columns.index(c) for c in dm.output_columns]
    values = series.values[:, columns]
    past = np.stack([values[s - dm.lookback:s] for s in starts])
    out["seasonal naive"] = score(dm, seasonal_naive(past, dm.horizon, dm.season))
    train = dm.train_values()
    for kind in ("ets", "arima"):
        t0 = time.perf_counter()
        model = Statistical(kind, season=dm.season).fit(train)
        out[kind.upper()] = score(dm, model.forecast(values, starts, dm.horizon))
        out[kind.upper()]["seconds"] = time.perf_counter() - t0
    return out


def core_model(name: str, args, horizon: int, ett: str | None, root: str) -> dict[str, float]:
    config, extra = CORE[name]
    width = [f"--model.arch.backbone.{k}={v}" for k, v in WIDTH.items()] if name.startswith("patch") else []
    common = ["--config", config, *extra, *width, *data_options(args, horizon, ett),
              "--trainer.default_root_dir", os.path.join(root, f"{name}-{horizon}"),
              "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    minutes = int(args.minutes)
    fit = train_main(["fit", *common, "--trainer.max_epochs", "1000", "--trainer.max_time",
                      f"00:00:{minutes:02d}:{int((args.minutes - minutes) * 60):02d}"])
    ckpt = fit.trainer.checkpoint_callback.best_model_path
    tested = train_main(["test", *common, "--ckpt_path", ckpt])
    m = {k.split("/", 1)[1]: float(v) for k, v in tested.trainer.callback_metrics.items() if k.startswith("test/")}
    task = ForecastTask.from_checkpoint(ckpt)
    m["steps"], m["params"] = fit.trainer.global_step, sum(p.numel() for p in task.parameters())
    return m


def hf_patchtst(dm: ForecastDataModule, channels: int):
    from transformers import PatchTSTConfig, PatchTSTForPrediction

    cfg = PatchTSTConfig(num_input_channels=channels, context_length=dm.lookback, prediction_length=dm.horizon,
                         patch_length=16, patch_stride=8, d_model=WIDTH["d_model"], num_hidden_layers=WIDTH["n_layers"],
                         num_attention_heads=WIDTH["n_heads"], ffn_dim=WIDTH["d_ff"], dropout=0.2, head_dropout=0.1,
                         scaling="std")
    return PatchTSTForPrediction(cfg)


def train_hf(dm: ForecastDataModule, minutes: float) -> dict[str, float]:
    """HF PatchTST by a plain loop: same windows, batch, optimiser and learning rate as patch.yaml."""
    torch.manual_seed(0)
    model = hf_patchtst(dm, dm.channels_in)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    deadline, steps = time.perf_counter() + 60 * minutes, 0
    model.train()
    while time.perf_counter() < deadline:
        for batch in dm.train_dataloader():
            loss = model(past_values=batch["past"], future_values=batch["future"]).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            steps += 1
            if time.perf_counter() >= deadline:
                break
    model.eval()
    metrics = forecast_metrics(False)
    out_index = dm.output_index
    mean = torch.tensor([dm.scale_mean[i] for i in out_index])
    std = torch.tensor([dm.scale_std[i] for i in out_index])
    with torch.no_grad():
        for batch in dm.test_dataloader():
            point = model(past_values=batch["past"]).prediction_outputs[:, :, out_index]
            truth = batch["future"][:, :, out_index]
            update_forecast_metrics(metrics, point, truth, point * std + mean, truth * std + mean,
                                    torch.tensor(dm.mase_scale), None)
    out = {k: float(m.compute()) for k, m in metrics.items()}
    out["steps"], out["params"] = steps, sum(p.numel() for p in model.parameters())
    return out


def throughput(dm: ForecastDataModule, batches: int = 20) -> tuple[float, float]:
    """Training windows per second of core's attention patch model and HF PatchTST, same batches."""
    from apps.timeseries.models.config import ForecastConfig

    data = [b for _, b in zip(range(batches + 3), dm.train_dataloader())]
    cfg = ForecastConfig(lookback=dm.lookback, horizon=dm.horizon, channels_in=dm.channels_in,
                         time_features=dm.time_features, head_dropout=0.1,
                         backbone={**WIDTH, "dropout": 0.2, "mlp": "gelu", "norm": "layernorm", "max_len": 64})
    core = ForecastTask(cfg, output_index=dm.output_index, scale_mean=dm.scale_mean, scale_std=dm.scale_std).train()
    hf = hf_patchtst(dm, dm.channels_in).train()
    rates = []
    for step in (lambda b: core.losses(b)["loss"], lambda b: hf(past_values=b["past"], future_values=b["future"]).loss):
        params = core.parameters() if not rates else hf.parameters()
        opt = torch.optim.AdamW(list(params), lr=1e-3)
        for k, batch in enumerate(data):
            if k == 3:
                t0 = time.perf_counter()
            loss = step(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        rates.append(sum(len(b["past"]) for b in data[3:]) / (time.perf_counter() - t0))
    return rates[0], rates[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--horizons", type=int, nargs="+", default=[24, 96, 336])
    p.add_argument("--minutes", type=float, default=3.0, help="training wall-clock per neural model and horizon")
    p.add_argument("--lookback", type=int, default=336)
    p.add_argument("--ett", help="an ETT-style CSV (date, features..., OT) to run as well")
    p.add_argument("--models", nargs="+", default=list(CORE) + ["hf-patchtst"])
    p.add_argument("--quick", action="store_true", help="smoke run, not recorded")
    a = p.parse_args()
    if a.quick:
        a.minutes, a.horizons, a.lookback = 0.1, [24], 96
    print(hardware(), flush=True)
    rows, notes = [], []
    warnings.filterwarnings("ignore")
    for ett in [None] + ([a.ett] if a.ett else []):
        name = os.path.basename(ett) if ett else "electricity (bundled)"
        for horizon in a.horizons:
            dm = datamodule(a, horizon, ett)
            results = classical(dm)
            with tempfile.TemporaryDirectory() as root:
                for model in a.models:
                    results[model] = train_hf(dm, a.minutes) if model == "hf-patchtst" else \
                        core_model(model, a, horizon, ett, root)
            naive = results["seasonal naive"]["mse"]
            for model, m in results.items():
                rows.append([name, horizon, model, f"{m['mse']:.4f}", f"{m['mae']:.4f}", f"{m['mase']:.3f}",
                             f"{m['mse'] / naive:.2f}", m.get("steps", "-"),
                             f"{m['params'] / 1e3:.0f} k" if "params" in m else "-"])
            print(markdown_table(["data", "horizon", "model", "MSE (norm.)", "MAE (norm.)", "MASE", "MSE / naive",
                                  "steps", "params"], rows[-len(results):]), flush=True)
        core_rate, hf_rate = throughput(datamodule(a, a.horizons[0], ett))
        notes.append(f"{name}: training throughput, horizon {a.horizons[0]}, same 20 batches of 32: core patch-attention "
                     f"{core_rate:,.0f} windows/s, HF PatchTST {hf_rate:,.0f} windows/s ({core_rate / hf_rate:.2f}x).")
    table = markdown_table(["data", "horizon", "model", "MSE (norm.)", "MAE (norm.)", "MASE", "MSE / naive", "steps",
                            "params"], rows)
    print(table, "\n", "\n".join(notes))
    if a.quick:
        return
    notes.insert(0, f"{a.minutes:g} minutes of training per neural model and horizon, lookback {a.lookback}; every "
                    "test window scored; MSE/MAE on the training standardisation, MASE in original units against "
                    "the training segment's seasonal-naive MAE. ETS/ARIMA fitted once on the training segment.")
    record("Long-horizon forecasting (benchmarks/forecast.py)", "python " + " ".join(sys.argv), table, "\n\n".join(notes))


if __name__ == "__main__":
    main()
