"""Padding masks: every backbone, loss and collate function speaks ``True = real position``."""
from __future__ import annotations

import torch


def padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Boolean [B, max_len]: True where ``index < length`` (``max_len`` defaults to the longest)."""
    if max_len is None:
        max_len = int(lengths.max()) if lengths.numel() else 0
    return torch.arange(max_len, device=lengths.device) < lengths[:, None]
