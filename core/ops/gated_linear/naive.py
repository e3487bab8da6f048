"""Token-by-token reference of the gated linear recurrence (tests only: O(T) Python steps)."""
from __future__ import annotations

import torch


def gated_linear_naive(q, k, v, g, state=None, scale: float | None = None, u=None):
    """q, k: [B, H, T, Dk]; v: [B, H, T, Dv]; g: log decay (<= 0), [B, H, T] (one per head) or
    [B, H, T, Dk] (one per key channel); state: [B, H, Dk, Dv] or None; u: [H, Dk] RWKV-6 bonus
    (per-channel gates only) or None. Returns (o [B, H, T, Dv], final state)."""
    b, h, t, dk = q.shape
    scale = dk**-0.5 if scale is None else scale
    if u is not None and g.dim() != 4:
        raise ValueError("the bonus u needs per-channel gates g: [B, H, T, Dk]")
    s = q.new_zeros(b, h, dk, v.shape[-1]) if state is None else state
    out = []
    for i in range(t):
        decay = g[:, :, i].exp()[..., None, None] if g.dim() == 3 else g[:, :, i].exp()[..., None]
        kv = k[:, :, i, :, None] * v[:, :, i, None, :]
        if u is None:  # o_t reads S_t, after token t's write
            s = s * decay + kv
            out.append(torch.einsum("bhk,bhkv->bhv", q[:, :, i] * scale, s))
        else:  # RWKV-6: o_t reads S_{t-1} plus token t's own write weighted by u
            out.append(torch.einsum("bhk,bhkv->bhv", q[:, :, i] * scale, s + u[:, :, None] * kv))
            s = s * decay + kv
    return torch.stack(out, dim=2), s
