"""Token embedding and output head, kept apart from the backbones so apps can feed features instead."""
from __future__ import annotations

import math

import torch
from torch import nn


class TokenEmbedding(nn.Module):
    """Embedding scaled by sqrt(d) as in the original Transformer, which keeps token and sinusoidal
    position signals at comparable magnitudes."""

    def __init__(self, vocab_size: int, dim: int, padding_idx: int | None = 0, scale: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, dim))
        nn.init.normal_(self.weight, std=dim**-0.5)
        if padding_idx is not None:
            with torch.no_grad():
                self.weight[padding_idx].zero_()
        self.scale = math.sqrt(dim) if scale else 1.0

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(ids, self.weight) * self.scale
