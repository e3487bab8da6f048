"""Forecast the future of a series with a trained checkpoint.

    python -m apps.timeseries.forecast --checkpoint CKPT [--csv F.csv] [--horizon 96]
           [--cutoff "2000-08-20 00:00"] [--output forecast.csv] [--plot forecast.png] [--history 672]

The series is ``--csv`` (read with the checkpoint's column options: date column, long format,
``fill``), or the checkpoint's own data. The forecast starts after ``--cutoff`` (default: the
last step), from the ``lookback`` steps up to it, scaled with the training scaler the checkpoint
carries. The output CSV holds the future timestamps (continuing the series' frequency) and each
forecast channel in original units; a probabilistic model adds its 10 % and 90 % quantiles
(``<column>_p10``, ``<column>_p90``), and where the series goes on past the cutoff the actual
values (``<column>_actual``) and the forecast's MAE are printed. ``--plot`` draws the last
``--history`` steps, the forecast and whatever is known of the truth.

Errors a user can cause (a bad CSV, a cutoff outside the series, a horizon beyond the model's)
are one line naming the file or option, exit status 2.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
import torch

from apps.timeseries.data import ForecastDataModule
from apps.timeseries.series import time_features
from apps.timeseries.task import ForecastTask
from core.errors import UserError, entry_point
from core.io import atomic_write_text
from core.training import datamodule_from_checkpoint


def future_dates(last: np.datetime64, freq: str, steps: int) -> np.ndarray:
    return pd.date_range(pd.Timestamp(last), periods=steps + 1, freq=freq)[1:].to_numpy()


@torch.no_grad()
def forecast_from(task: ForecastTask, values: np.ndarray, dates: np.ndarray, freq: str) -> dict[str, np.ndarray]:
    """values [lookback, C_in] in original units, ending at the cutoff -> forecast (and quantiles)
    [H, C_out] in original units, for the model's whole horizon."""
    cfg = task.arch
    ahead = future_dates(dates[-1], freq, cfg.horizon)
    calendar = time_features(np.concatenate([dates, ahead]), freq)
    batch = {"past": task.scale_inputs(torch.from_numpy(values).float())[None],
             "past_time": torch.from_numpy(calendar[: len(dates)])[None],
             "future_time": torch.from_numpy(calendar[len(dates):])[None]}
    raw = task.raw(batch)
    out = {"dates": ahead, "forecast": task.to_units(task.head.point(raw))[0].numpy()}
    if cfg.head != "point":
        q = task.head.quantiles(raw, torch.tensor([0.1, 0.9]))
        out["low"], out["high"] = task.to_units(q[..., 0])[0].numpy(), task.to_units(q[..., 1])[0].numpy()
    return out


@entry_point
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by apps.timeseries.train")
    p.add_argument("--csv", help="the series (default: the checkpoint's own data)")
    p.add_argument("--horizon", type=int, help="steps to forecast (default and most: the model's horizon)")
    p.add_argument("--cutoff", help="forecast from the last step at or before this time (default: the end)")
    p.add_argument("--output", help="write the forecast CSV here instead of stdout")
    p.add_argument("--plot", help="write the forecast plot here (PNG)")
    p.add_argument("--history", type=int, help="steps of history the plot shows (default: 2 x lookback)")
    a = p.parse_args(argv)
    task = ForecastTask.from_checkpoint(a.checkpoint)
    cfg = task.arch
    horizon = a.horizon or cfg.horizon
    if not 1 <= horizon <= cfg.horizon:
        raise UserError(f"--horizon {horizon}: {a.checkpoint} forecasts 1 to {cfg.horizon} steps (its training horizon)")
    dm = datamodule_from_checkpoint(ForecastDataModule, a.checkpoint, **({"csv": a.csv} if a.csv else {}))
    series = dm.series()
    where = series.source
    end = len(series)
    if a.cutoff is not None:
        try:
            cutoff = np.datetime64(pd.Timestamp(a.cutoff))
        except (ValueError, TypeError):
            raise UserError(f"--cutoff {a.cutoff!r}: not a date and time") from None
        end = int(np.searchsorted(series.dates, cutoff, side="right"))
    if end < cfg.lookback:
        raise UserError(f"{where}: the forecast needs {cfg.lookback} steps of history before the cutoff, "
                        f"the series has {end}")
    columns = dm.input_columns
    index = [series.columns.index(c) for c in columns]
    values = series.values[end - cfg.lookback:end][:, index]
    out = forecast_from(task, values, series.dates[end - cfg.lookback:end], series.freq)
    names = dm.output_columns
    frame = {"date": pd.DatetimeIndex(out["dates"][:horizon]).strftime("%Y-%m-%d %H:%M:%S")}
    truth = series.values[end:end + horizon][:, [columns.index(n) for n in names]] if end < len(series) else None
    for k, name in enumerate(names):
        frame[name] = out["forecast"][:horizon, k]
        if "low" in out:
            frame[f"{name}_p10"], frame[f"{name}_p90"] = out["low"][:horizon, k], out["high"][:horizon, k]
        if truth is not None:
            frame[f"{name}_actual"] = np.concatenate([truth[:, k], np.full(horizon - len(truth), np.nan)])
    text = pd.DataFrame(frame).to_csv(index=False, float_format="%.6g")
    if a.output:
        atomic_write_text(a.output, text)
    else:
        sys.stdout.write(text)
    if truth is not None:
        mae = np.abs(out["forecast"][: len(truth)] - truth).mean(axis=0)
        print(f"{where}: forecast from {pd.Timestamp(series.dates[end - 1])}; MAE against the {len(truth)} known "
              "steps: " + ", ".join(f"{n} {v:.4g}" for n, v in zip(names, mae)), file=sys.stderr)
    if a.plot:
        from apps.timeseries.plot import forecast_plot

        shown = a.history or 2 * cfg.lookback
        first = max(0, end - shown)
        k = 0  # the first forecast channel
        low, high = (out[q][:horizon, k] if q in out else None for q in ("low", "high"))
        forecast_plot(a.plot, series.dates[first:end], series.values[first:end, columns.index(names[k])],
                      out["dates"][:horizon], out["forecast"][:horizon, k], names[k], low, high,
                      None if truth is None else truth[:, k],
                      title=f"{cfg.model} ({cfg.backbone.mixer if cfg.model == 'patch' else cfg.model}), "
                            f"{horizon} steps from {pd.Timestamp(series.dates[end - 1])}")
        print(f"wrote {a.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
