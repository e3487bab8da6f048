"""Forecasters: :class:`~apps.timeseries.models.patch.PatchForecaster` (any core backbone),
:class:`~apps.timeseries.models.dlinear.DLinear` and
:class:`~apps.timeseries.models.informer.Informer`. Each maps ``past`` [B, L, C]
(plus calendar features, for the models that read them) to raw head outputs [B, H, C, size]."""
from __future__ import annotations

from torch import nn

from apps.timeseries.models.config import ForecastConfig


def build_model(cfg: ForecastConfig, head_size: int) -> nn.Module:
    if cfg.model == "patch":
        from apps.timeseries.models.patch import PatchForecaster

        return PatchForecaster(cfg, head_size)
    if cfg.model == "informer":
        from apps.timeseries.models.informer import Informer

        return Informer(cfg, head_size)
    from apps.timeseries.models.dlinear import DLinear

    return DLinear(cfg, head_size)
