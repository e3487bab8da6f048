"""One decoding step of the gated linear recurrence: O(1) memory in the sequence length.
Straight-line tensor code (no branching on values), so it exports to ONNX as is."""
from __future__ import annotations

import torch


def gated_linear_step(q, k, v, g, state, scale: float | None = None, u=None):
    """q, k: [B, H, Dk]; v: [B, H, Dv]; g: [B, H] (per head) or [B, H, Dk] (per channel);
    state: [B, H, Dk, Dv]; u: [H, Dk] RWKV-6 bonus or None -> (o [B, H, Dv], state)."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    decay = g.exp()[..., None, None] if g.dim() == 2 else g.exp()[..., None]
    kv = k[..., :, None] * v[..., None, :]
    if u is None:
        state = state * decay + kv
        return torch.einsum("bhk,bhkv->bhv", q * scale, state), state
    if g.dim() != 3:
        raise ValueError("the bonus u needs per-channel gates g: [B, H, Dk]")
    o = torch.einsum("bhk,bhkv->bhv", q * scale, state + u[:, :, None] * kv)
    return o, state * decay + kv
