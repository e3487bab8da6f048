"""``python -m apps.timeseries.train fit|validate|test|predict --config apps/timeseries/configs/patch.yaml``

One task (:class:`~apps.timeseries.task.ForecastTask`) over one data module
(:class:`~apps.timeseries.data.ForecastDataModule`); the model is a config line
(``--model.arch.model informer``), and so is a patch model's backbone
(``--model.arch.backbone.mixer mamba``).
"""
from __future__ import annotations

from apps.timeseries.data import ForecastDataModule
from apps.timeseries.task import ForecastTask
from core.training import run_cli

#: what the data decides, copied into the model (a checkpoint then needs no data to forecast)
LINKS = (
    ("data.lookback", "model.arch.lookback"),
    ("data.horizon", "model.arch.horizon"),
    ("data.label_len", "model.arch.label_len"),
    ("data.channels_in", "model.arch.channels_in"),
    ("data.time_features", "model.arch.time_features"),
    ("data.output_index", "model.output_index"),
    ("data.scale_mean", "model.scale_mean"),
    ("data.scale_std", "model.scale_std"),
    ("data.mase_scale", "model.mase_scale"),
)


def main(args: list[str] | None = None, run: bool = True):
    return run_cli(ForecastTask, ForecastDataModule, args=args, links=LINKS, run=run)


if __name__ == "__main__":
    main()
