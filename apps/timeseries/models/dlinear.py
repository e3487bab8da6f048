"""DLinear (Zeng et al. 2023, "Are Transformers Effective for Time Series Forecasting?"): split
each channel into a moving-average trend and the remainder, and map each to the horizon with one
linear layer over the lookback. The baseline every long-horizon model has to beat.

Outputs are ``[B, horizon, C, head.size]``: a probabilistic head gets ``size`` linear maps.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from apps.timeseries.models.config import ForecastConfig


def moving_average(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """[B, L, C] -> its centred moving average, the ends padded by repeating the edge values."""
    front, back = (kernel - 1) // 2, kernel // 2
    padded = torch.cat([x[:, :1].expand(-1, front, -1), x, x[:, -1:].expand(-1, back, -1)], 1)
    return F.avg_pool1d(padded.transpose(1, 2), kernel, stride=1).transpose(1, 2)


class DLinear(nn.Module):
    def __init__(self, cfg: ForecastConfig, head_size: int):
        super().__init__()
        self.cfg, self.head_size = cfg, head_size
        out = cfg.horizon * head_size
        count = cfg.channels_in if cfg.individual else 1
        self.seasonal = nn.ModuleList(nn.Linear(cfg.lookback, out) for _ in range(count))
        self.trend = nn.ModuleList(nn.Linear(cfg.lookback, out) for _ in range(count))

    def forward(self, past: torch.Tensor, head, future: torch.Tensor | None = None, past_time=None,
                future_time=None) -> torch.Tensor:
        trend = moving_average(past, self.cfg.kernel)
        seasonal = (past - trend).transpose(1, 2)  # [B, C, L]
        trend = trend.transpose(1, 2)
        if self.cfg.individual:
            out = torch.stack([s(seasonal[:, c]) + t(trend[:, c]) for c, (s, t) in
                               enumerate(zip(self.seasonal, self.trend))], 1)
        else:
            out = self.seasonal[0](seasonal) + self.trend[0](trend)
        b, c = past.shape[0], past.shape[2]
        return out.reshape(b, c, self.cfg.horizon, self.head_size).permute(0, 2, 1, 3)
