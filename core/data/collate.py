"""Padding variable-length rows into one tensor, the step every collate function shares.

Rows are right-padded, so ``core.nn.padding_mask(lengths)`` (True = real) marks the real part.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def pad(rows: Sequence[Sequence[int] | torch.Tensor], value: float = 0, min_len: int = 0,
        dtype: torch.dtype | None = None) -> torch.Tensor:
    """``[len(rows), max(longest row, min_len)]`` tensor of ``rows`` right-padded with ``value``.

    Rows are id lists (-> ``torch.long``) or 1-D tensors (their dtype: waveforms, features stay
    float). ``min_len`` keeps a dimension for batches whose rows are all empty.
    """
    tensors = [r if isinstance(r, torch.Tensor) else torch.tensor(r, dtype=torch.long) for r in rows]
    dtype = dtype or (tensors[0].dtype if tensors else torch.long)
    out = torch.full((len(tensors), max([min_len, *map(len, tensors)])), value, dtype=dtype)
    for row, tensor in zip(out, tensors):
        row[: len(tensor)] = tensor
    return out


def lengths(rows: Sequence[Sequence[int] | torch.Tensor]) -> torch.Tensor:
    """Row lengths as a ``torch.long`` tensor, the companion of :func:`pad`."""
    return torch.tensor([len(r) for r in rows], dtype=torch.long)
