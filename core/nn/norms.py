"""Normalisation layers, chosen by name from a config string."""
from __future__ import annotations

import torch
from torch import nn

NORMS = ("rmsnorm", "layernorm", "batchnorm")


class TokenBatchNorm(nn.BatchNorm1d):
    """Batch norm of each feature over every token of the batch ([..., D] in and out).

    PatchTST's choice for forecasting: a series' patches are all real (no padding) and their
    scale varies by channel, which per-token LayerNorm erases and batch statistics keep. Not for
    padded batches: padding would enter the statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).view_as(x)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last dim in at least the weight's precision. Under bf16 autocast a mixer's
    output arrives in bf16 while the weight stays float32: torch then falls back from its fused
    kernel to a composite one (1.8x slower forward + backward at [4, 8, 2048, 64]); upcasting first
    keeps the fused kernel and normalises in float32 (autocast casts back at the next matmul)."""
    work = torch.promote_types(x.dtype, weight.dtype)
    return torch.nn.functional.rms_norm(x.to(work), (x.shape[-1],), weight, eps)


def make_norm(kind: str, dim: int, eps: float = 1e-5) -> nn.Module:
    """RMSNorm is the default in modern LMs (cheaper, no mean); LayerNorm matches older NMT models;
    batchnorm is for unpadded inputs such as patches of a series (PatchTST)."""
    if kind == "rmsnorm":
        return nn.RMSNorm(dim, eps=eps)
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps)
    if kind == "batchnorm":
        return TokenBatchNorm(dim, eps=eps)
    raise ValueError(f"unknown norm {kind!r}; expected one of {', '.join(NORMS)}")
