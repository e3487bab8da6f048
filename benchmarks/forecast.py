"""Long-horizon forecasting: core forecasters against HF transformers' PatchTST and the classical
baselines, on the same windows, for the same wall-clock budget.

    python benchmarks/forecast.py [--horizons 24 96 336] [--minutes 3] [--lookback 336] [--ett ETTh1.csv] [--quick]

Data: the bundled half-hourly electricity demand (univariate, ``features S``) and, with ``--ett``,
a user's ETT CSV (all channels, ``features M``, the 12/4/4-month split). Every model reads the
same ``ForecastDataModule`` windows (TSLib's conventions, train-only scaler, every test window).

Models: core's patch forecaster with attention, Mamba and mLSTM backbones, Informer and DLinear
(each ``apps.timeseries.train fit`` for ``--minutes`` of wall-clock, then ``test``); HF
``PatchTSTForPrediction`` (flatten head, as the paper) and ``InformerForPrediction`` of the same
sizes as patch.yaml / informer.yaml, built from configs and trained by a plain loop on the same
batches for the same time; seasonal naive, ETS and ARIMA (statsmodels, fitted on the training
segment). Reported: MSE and MAE on the normalised scale, MASE in original units, and training
throughput (windows per second over the same 20 batches) of core's attention patch model against
HF PatchTST and of core's Informer against HF's.
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
from apps.timeseries.series import steps_per_day  # noqa: E402
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


def seasons(dm: ForecastDataModule) -> list[int]:
    """The seasons the baselines try: the data's calendar season (a day for sub-daily data) and,
    for sub-daily data, the week, when the lookback covers it (electricity demand is lower at
    weekends: the weekly naive is the strong baseline there)."""
    out = [dm.season]
    day = steps_per_day(dm.series().freq)
    if day and day > 1 and 7 * day <= dm.lookback:
        out.append(7 * day)
    return out


def classical(dm: ForecastDataModule) -> dict[str, dict[str, float]]:
    series, out = dm.series(), {}
    test = dm.windows("test")
    starts = np.array([int(test[k]["start"]) for k in range(len(test))])
    columns = [series.columns.index(c) for c in dm.output_columns]
    values = series.values[:, columns]
    past = np.stack([values[s - dm.lookback:s] for s in starts])
    train = dm.train_values()
    for season in seasons(dm):
        out[f"seasonal naive ({season})"] = score(dm, seasonal_naive(past, dm.horizon, season))
    for kind, season in [("ets", s) for s in seasons(dm)] + [("arima", 1)]:
        t0 = time.perf_counter()
        model = Statistical(kind, season=season).fit(train)
        name = f"ETS ({season})" if kind == "ets" else "ARIMA(2,1,1)"
        out[name] = score(dm, model.forecast(values, starts, dm.horizon))
        out[name]["seconds"] = time.perf_counter() - t0
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


def hf_patchtst(dm: ForecastDataModule):
    """PatchTST as the paper builds it: the flatten head over every patch (HF's default pools the
    patches to one mean vector, a third of the parameters and a worse forecast)."""
    from transformers import PatchTSTConfig, PatchTSTForPrediction

    cfg = PatchTSTConfig(num_input_channels=dm.channels_in, context_length=dm.lookback,
                         prediction_length=dm.horizon, patch_length=16, patch_stride=8, d_model=WIDTH["d_model"],
                         num_hidden_layers=WIDTH["n_layers"], num_attention_heads=WIDTH["n_heads"],
                         ffn_dim=WIDTH["d_ff"], dropout=0.2, head_dropout=0.1, scaling="std", pooling_type=None)
    model = PatchTSTForPrediction(cfg)

    def loss(b):
        return model(past_values=b["past"], future_values=b["future"]).loss

    def predict(b):
        return model(past_values=b["past"]).prediction_outputs

    return model, loss, predict, 1e-3


def hf_informer(dm: ForecastDataModule, samples: int = 20):
    """HF's Informer at informer.yaml's size (d 128, 2 + 1 layers, 8 heads, FFN 512, lr 1e-4). It is
    the GluonTS-style model: lag-1 inputs, a Student-t output trained by NLL, and a forecast that
    decodes step by step by sampling; the point forecast is the mean of ``samples`` paths."""
    from transformers import InformerConfig, InformerForPrediction

    c = dm.channels_in
    cfg = InformerConfig(prediction_length=dm.horizon, context_length=dm.lookback - 1, lags_sequence=[1],
                         input_size=c, num_time_features=dm.time_features, scaling="std", d_model=128,
                         encoder_layers=2, decoder_layers=1, encoder_attention_heads=8, decoder_attention_heads=8,
                         encoder_ffn_dim=512, decoder_ffn_dim=512, dropout=0.05, sampling_factor=5, distil=True,
                         num_parallel_samples=samples)
    model = InformerForPrediction(cfg)
    values = (lambda x: x[..., 0]) if c == 1 else (lambda x: x)

    def loss(b):
        return model(past_values=values(b["past"]), past_time_features=b["past_time"],
                     past_observed_mask=torch.ones_like(values(b["past"])), future_values=values(b["future"]),
                     future_time_features=b["future_time"]).loss

    def predict(b):
        paths = model.generate(past_values=values(b["past"]), past_time_features=b["past_time"],
                               past_observed_mask=torch.ones_like(values(b["past"])),
                               future_time_features=b["future_time"]).sequences
        mean = paths.mean(1)
        return mean[..., None] if c == 1 else mean

    return model, loss, predict, 1e-4


HF = {"hf-patchtst": hf_patchtst, "hf-informer": hf_informer}
#: HF's Informer decodes by sampling 20 paths step by step with no cache: 48 s for 8 test windows
#: at horizon 96 on 2 cores (40 minutes for the bundled test set), so it runs at short horizons only
HF_INFORMER_HORIZON = 24


def train_hf(name: str, dm: ForecastDataModule, minutes: float) -> dict[str, float]:
    """An HF model by a plain loop: the same windows, batches and optimiser as its core config."""
    torch.manual_seed(0)
    model, loss_of, predict, lr = HF[name](dm)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, fused=True)  # as core's tasks
    deadline, steps = time.perf_counter() + 60 * minutes, 0
    model.train()
    while time.perf_counter() < deadline:
        for batch in dm.train_dataloader():
            loss = loss_of(batch)
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
            point = predict(batch)[:, :, out_index]
            truth = batch["future"][:, :, out_index]
            update_forecast_metrics(metrics, point, truth, point * std + mean, truth * std + mean,
                                    torch.tensor(dm.mase_scale), None)
    out = {k: float(m.compute()) for k, m in metrics.items()}
    out["steps"], out["params"] = steps, sum(p.numel() for p in model.parameters())
    return out


#: the throughput pairs: a core model (its config's arch at the benchmark's width) and its HF peer
PAIRS = {"patch-attention": "hf-patchtst", "informer": "hf-informer"}


def core_task(name: str, dm: ForecastDataModule) -> ForecastTask:
    """The task ``train fit`` would build for ``name``, without the trainer."""
    import yaml

    from apps.timeseries.models.config import ForecastConfig

    config, _ = CORE[name]
    with open(config) as f:
        arch = yaml.safe_load(f)["model"]["arch"]
    if name.startswith("patch"):
        arch["backbone"] = {**arch["backbone"], **WIDTH}
    cfg = ForecastConfig(**arch, lookback=dm.lookback, horizon=dm.horizon, label_len=dm.label_len,
                         channels_in=dm.channels_in, time_features=dm.time_features)
    return ForecastTask(cfg, output_index=dm.output_index, scale_mean=dm.scale_mean, scale_std=dm.scale_std)


def throughput(dm: ForecastDataModule, core_name: str, batches: int = 20, rounds: int = 5) -> tuple[float, float]:
    """Training windows per second of a core model and its HF peer over the same batches (forward,
    backward and a fused AdamW step, as core's tasks take). The two alternate for ``rounds`` rounds
    and each reports its median: on a shared 2-core machine one round's rate varied by 1.5x."""
    data = [b for _, b in zip(range(batches), dm.train_dataloader())]
    core = core_task(core_name, dm).train()
    hf, hf_loss, _, _ = HF[PAIRS[core_name]](dm)
    models = ((core, lambda b: core.losses(b)["loss"]), (hf.train(), hf_loss))
    opts = [torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True) for m, _ in models]
    rates: list[list[float]] = [[], []]
    for r in range(rounds + 1):  # round 0 warms up
        for i, ((_, step), opt) in enumerate(zip(models, opts)):
            t0 = time.perf_counter()
            for batch in data:
                loss = step(batch)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if r:
                rates[i].append(sum(len(b["past"]) for b in data) / (time.perf_counter() - t0))
    return float(np.median(rates[0])), float(np.median(rates[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--horizons", type=int, nargs="+", default=[24, 96, 336])
    p.add_argument("--minutes", type=float, default=3.0, help="training wall-clock per neural model and horizon")
    p.add_argument("--lookback", type=int, default=336)
    p.add_argument("--ett", help="an ETT-style CSV (date, features..., OT) to run as well")
    p.add_argument("--models", nargs="+", default=list(CORE) + list(HF))
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
                    if model == "hf-informer" and horizon > HF_INFORMER_HORIZON:
                        print(f"hf-informer skipped at horizon {horizon}: its sampled step-by-step forecast "
                              "of every test window would take most of an hour", flush=True)
                        continue
                    results[model] = train_hf(model, dm, a.minutes) if model in HF else \
                        core_model(model, a, horizon, ett, root)
            naive = min(m["mse"] for k, m in results.items() if k.startswith("seasonal naive"))
            for model, m in results.items():
                rows.append([name, horizon, model, f"{m['mse']:.4f}", f"{m['mae']:.4f}", f"{m['mase']:.3f}",
                             f"{m['mse'] / naive:.2f}", m.get("steps", "-"),
                             f"{m['params'] / 1e3:.0f} k" if "params" in m else "-"])
            print(markdown_table(["data", "horizon", "model", "MSE (norm.)", "MAE (norm.)", "MASE", "MSE / naive",
                                  "steps", "params"], rows[-len(results):]), flush=True)
        for core_name, hf_name in PAIRS.items():
            core_rate, hf_rate = throughput(datamodule(a, a.horizons[0], ett), core_name,
                                            *((3, 1) if a.quick else ()))
            notes.append(f"{name}: training throughput, horizon {a.horizons[0]}, median of 5 alternating rounds over the same 20 batches of 32: {core_name} "
                         f"{core_rate:,.0f} windows/s, {hf_name} {hf_rate:,.0f} windows/s ({core_rate / hf_rate:.2f}x).")
            print(notes[-1], flush=True)
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
