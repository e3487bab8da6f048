"""Forecasting as a :class:`~core.training.BaseTask`: a model from :mod:`apps.timeseries.models`
reads the lookback window and predicts the horizon, scored by its head's loss on the normalised
scale; validation and test report MSE / MAE (normalised), MASE / sMAPE (original units) and, for
a probabilistic head, CRPS.

``output_index`` picks the predicted channels among the input ones (features ``MS``: the target
among all); the data scaler's numbers and each channel's MASE scale come from the data module, so
a checkpoint alone reads new data and turns forecasts back into original units (``scale_*``:
every input channel's training mean and deviation).
"""
from __future__ import annotations

import torch

from apps.timeseries.metrics import forecast_metrics, update_forecast_metrics
from apps.timeseries.models import build_model
from apps.timeseries.models.config import ForecastConfig
from apps.timeseries.models.heads import build_head
from core.errors import UserError
from core.training import BaseTask, OptimConfig, as_config


class ForecastTask(BaseTask):
    def __init__(self, arch: ForecastConfig = ForecastConfig(), output_index: list[int] | None = None,
                 scale_mean: list[float] | None = None, scale_std: list[float] | None = None,
                 mase_scale: list[float] | None = None, optim: OptimConfig | None = None):
        self.arch = as_config(ForecastConfig, arch, "model.arch")
        self.head = build_head(self.arch.head, tuple(self.arch.quantiles))
        super().__init__(optim)
        self.output_index = list(output_index or range(self.arch.channels_in))
        if max(self.output_index) >= self.arch.channels_in:
            raise UserError(f"output_index {self.output_index} names a channel beyond the {self.arch.channels_in} inputs")
        c = self.arch.channels_in
        self.register_buffer("scale_mean", torch.tensor(scale_mean or [0.0] * c, dtype=torch.float32))
        self.register_buffer("scale_std", torch.tensor(scale_std or [1.0] * c, dtype=torch.float32))
        self.register_buffer("mase_scale", torch.tensor(mase_scale or [1.0] * len(self.output_index),
                                                        dtype=torch.float32))
        self.model = build_model(self.arch, self.head.size)

    def configure_metrics(self):
        return forecast_metrics(self.arch.head != "point")

    # ------------------------------------------------------------------ the model's outputs

    def raw(self, batch, teacher_forcing: bool = False) -> torch.Tensor:
        """Raw head outputs of the predicted channels [B, H, C_out, size] (normalised scale)."""
        future = batch["future"] if teacher_forcing and self.arch.decoding == "autoregressive" else None
        out = self.model(batch["past"], self.head, future=future, past_time=batch.get("past_time"),
                         future_time=batch.get("future_time"))
        return out[:, :, self.output_index]

    def to_units(self, values: torch.Tensor) -> torch.Tensor:
        """Normalised output channels [..., C_out] -> original units."""
        return values * self.scale_std[self.output_index] + self.scale_mean[self.output_index]

    def scale_inputs(self, values: torch.Tensor) -> torch.Tensor:
        """Input channels [..., C_in] in original units -> the training standardisation."""
        return (values - self.scale_mean) / self.scale_std

    def truth(self, batch) -> torch.Tensor:
        return batch["future"][:, :, self.output_index]

    # ------------------------------------------------------------------ training and evaluation

    def losses(self, batch):
        return {"loss": self.head.loss(self.raw(batch, teacher_forcing=self.training), self.truth(batch))}

    def batch_size(self, batch) -> int:
        return len(batch["past"])

    def update_metrics(self, metrics, batch, stage: str) -> bool:
        with torch.no_grad():
            raw, truth = self.raw(batch), self.truth(batch)
            point = self.head.point(raw)
            crps = self.head.crps(raw, truth) if self.arch.head != "point" else None
            update_forecast_metrics(metrics, point, truth, self.to_units(point), self.to_units(truth),
                                    self.mase_scale, crps)
        return True

    def predict_step(self, batch, batch_idx):
        """Point forecasts and, for a probabilistic head, the 10 % / 90 % quantiles, in original units."""
        raw = self.raw(batch)
        out = {"forecast": self.to_units(self.head.point(raw)), "start": batch["start"]}
        if self.arch.head != "point":
            q = self.head.quantiles(raw, torch.tensor([0.1, 0.9]))
            out["low"], out["high"] = self.to_units(q[..., 0]), self.to_units(q[..., 1])
        return out
