"""Token-by-token reference of the scalar-gated linear recurrence (tests only: O(T) Python steps)."""
from __future__ import annotations

import torch


def gated_linear_naive(q, k, v, g, state=None, scale: float | None = None):
    """q, k: [B, H, T, Dk]; v: [B, H, T, Dv]; g: [B, H, T] log decay (<= 0);
    state: [B, H, Dk, Dv] or None. Returns (o [B, H, T, Dv], final state)."""
    b, h, t, dk = q.shape
    scale = dk**-0.5 if scale is None else scale
    s = q.new_zeros(b, h, dk, v.shape[-1]) if state is None else state
    out = []
    for i in range(t):
        s = s * g[:, :, i].exp()[..., None, None] + k[:, :, i, :, None] * v[:, :, i, None, :]
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, :, i] * scale, s))
    return torch.stack(out, dim=2), s
