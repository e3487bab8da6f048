"""Bidirectional encoder: every position sees every (non-padding) position. Causal-only mixers
(recurrences) run in both directions (see :class:`core.mixers.base.Bidirectional`)."""
from __future__ import annotations

import torch
from torch import nn

from core.models.blocks import Stack
from core.models.config import BackboneConfig


class Encoder(nn.Module):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.stack = Stack(cfg, causal=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, S, D] features; mask: [B, S] True for real positions."""
        return self.stack(x, mask=mask, real=mask)[0]
