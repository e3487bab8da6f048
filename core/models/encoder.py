"""Bidirectional encoder: every position sees every (non-padding) position."""
from __future__ import annotations

import torch
from torch import nn

from core.mixers import MIXERS
from core.models.blocks import Stack
from core.models.config import BackboneConfig


class Encoder(nn.Module):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        causal_only = [m for m in set(cfg.mixer_pattern()) if not getattr(MIXERS[m], "bidirectional", True)]
        if causal_only:
            raise ValueError(f"mixers {causal_only} are causal-only and cannot be used in an Encoder")
        self.stack = Stack(cfg, causal=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, S, D] features; mask: [B, S] True for real positions."""
        return self.stack(x, mask=mask, real=mask)[0]
