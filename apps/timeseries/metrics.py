"""Forecast metrics. MSE and MAE are on the normalised scale (the training-set standardisation,
as the long-horizon papers report them, so figures compare across series); MASE and sMAPE are in
original units (what a forecaster's user reads); CRPS scores a probabilistic forecast's whole
distribution, on the normalised scale. Every name says its scale.
"""
from __future__ import annotations

import torch
from torchmetrics import MeanMetric, Metric


class MeanOf(MeanMetric):
    """The mean of a per-value error, over every value of every window (no sampled subsets)."""


def forecast_metrics(probabilistic: bool) -> dict[str, Metric]:
    names = ["mse", "mae", "mase", "smape"] + (["crps"] if probabilistic else [])
    return {name: MeanOf() for name in names}


def update_forecast_metrics(metrics, point: torch.Tensor, truth: torch.Tensor, point_units: torch.Tensor,
                            truth_units: torch.Tensor, mase_scale: torch.Tensor, crps: torch.Tensor | None) -> None:
    """``point``/``truth`` [B, H, C] normalised; ``*_units`` the same in original units;
    ``mase_scale`` [C]: the in-sample seasonal-naive MAE of each channel on the training segment."""
    err = point - truth
    metrics["mse"].update(err.pow(2))
    metrics["mae"].update(err.abs())
    metrics["mase"].update((point_units - truth_units).abs() / mase_scale)
    denominator = point_units.abs() + truth_units.abs()
    ratio = torch.where(denominator > 0, 2 * (point_units - truth_units).abs() / denominator.clamp_min(1e-12),
                        torch.zeros_like(denominator))
    metrics["smape"].update(100 * ratio)
    if crps is not None:
        metrics["crps"].update(crps)
