"""Normalisation layers, chosen by name from a config string."""
from __future__ import annotations

from torch import nn


def make_norm(kind: str, dim: int, eps: float = 1e-5) -> nn.Module:
    """RMSNorm is the default in modern LMs (cheaper, no mean); LayerNorm matches older NMT models."""
    if kind == "rmsnorm":
        return nn.RMSNorm(dim, eps=eps)
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps)
    raise ValueError(f"unknown norm {kind!r}; expected 'rmsnorm' or 'layernorm'")
