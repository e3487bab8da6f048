"""Reversible instance normalisation (RevIN, Kim et al. 2022): each input window is standardised
by its own mean and deviation per channel, and forecasts are mapped back with the same numbers.

A forecaster then sees every window at one scale, so a level shift between training and test
(the usual distribution shift of real series) does not move its inputs; the optional affine
weights let it learn a per-channel rescale on top.
"""
from __future__ import annotations

import torch
from torch import nn


class RevIN(nn.Module):
    def __init__(self, channels: int, affine: bool = True, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None

    def normalize(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x [B, L, C] -> (normalised x, (mean, std) [B, 1, C] to undo it with)."""
        mean = x.mean(1, keepdim=True).detach()
        std = (x.var(1, keepdim=True, unbiased=False) + self.eps).sqrt().detach()
        x = (x - mean) / std
        if self.weight is not None:
            x = x * self.weight + self.bias
        return x, (mean, std)

    def scale(self, stats: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The (shift, scale) [B, 1, C] that map a normalised forecast back: y = y_n * scale + shift
        (the affine weights undone first)."""
        mean, std = stats
        if self.weight is None:
            return mean, std
        w = self.weight + self.eps * self.eps
        return mean - self.bias / w * std, std / w
