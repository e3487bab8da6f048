"""Token-by-token reference of the diagonal linear recurrence (tests only: T Python steps, and
autograd records every one of them)."""
from __future__ import annotations

import torch


def linear_scan_naive(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """h_t = a_t * h_{t-1} + b_t with h_0 = ``h0`` (zeros when None).

    a, b: [B, T, *rest]; h0: [B, *rest] or None. Returns every state h: [B, T, *rest]."""
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0
    out = []
    for t in range(b.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, dim=1)
