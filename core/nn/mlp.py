"""Position-wise feed-forward blocks."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.nn.dropout import Dropout


class SwiGLU(nn.Module):
    """Gated MLP (Shazeer 2020). Gate and up projections share one matmul for speed."""

    def __init__(self, dim: int, hidden: int, bias: bool = False, dropout: float = 0.0):
        super().__init__()
        self.w_in = nn.Linear(dim, 2 * hidden, bias=bias)
        self.w_out = nn.Linear(hidden, dim, bias=bias)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.w_in(x).chunk(2, dim=-1)
        return self.w_out(self.dropout(F.silu(gate) * up))


class GeluMLP(nn.Module):
    """The classic Transformer MLP (with GELU instead of ReLU)."""

    def __init__(self, dim: int, hidden: int, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        self.w_in = nn.Linear(dim, hidden, bias=bias)
        self.w_out = nn.Linear(hidden, dim, bias=bias)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_out(self.dropout(F.gelu(self.w_in(x))))


def make_mlp(kind: str, dim: int, hidden: int | None, bias: bool, dropout: float = 0.0) -> nn.Module:
    """`hidden=None` picks the usual width: 4*dim for GELU, 8/3*dim (rounded to 64) for SwiGLU,
    which keeps the parameter count of both equal."""
    if kind == "swiglu":
        hidden = hidden or 64 * ((8 * dim // 3 + 63) // 64)
        return SwiGLU(dim, hidden, bias=bias, dropout=dropout)
    if kind == "gelu":
        return GeluMLP(dim, hidden or 4 * dim, bias=bias, dropout=dropout)
    raise ValueError(f"unknown mlp {kind!r}; expected 'swiglu' or 'gelu'")
