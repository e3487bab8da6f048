"""One decoding step of the scalar-gated linear recurrence: O(1) memory in the sequence length."""
from __future__ import annotations

import torch


def gated_linear_step(q, k, v, g, state, scale: float | None = None):
    """q, k: [B, H, Dk]; v: [B, H, Dv]; g: [B, H]; state: [B, H, Dk, Dv] -> (o [B, H, Dv], state)."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    state = state * g.exp()[..., None, None] + k[..., :, None] * v[..., None, :]
    return torch.einsum("bhk,bhkv->bhv", q * scale, state), state
