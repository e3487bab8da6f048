"""Chunkwise-parallel form: attention-like matmuls inside chunks of C tokens, a recurrence over
chunks for the state. Every exponent is a difference of cumulative log gates taken in causal
order, so it is <= 0 and nothing overflows however strong the decay.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def gated_linear_chunk(q, k, v, g, state=None, scale: float | None = None, chunk: int = 64):
    """Same contract as :func:`~core.ops.gated_linear.naive.gated_linear_naive`."""
    b, h, t, dk = q.shape
    dv = v.shape[-1]
    scale = dk**-0.5 if scale is None else scale
    pad = (-t) % chunk
    if pad:  # zero keys add nothing to the state, zero log-gates decay nothing
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        g = F.pad(g, (0, pad))
    n = (t + pad) // chunk
    q = q.reshape(b, h, n, chunk, dk) * scale
    k = k.reshape(b, h, n, chunk, dk)
    v = v.reshape(b, h, n, chunk, dv)
    cum = g.reshape(b, h, n, chunk).cumsum(-1)  # log decay from the chunk start to each position
    last = cum[..., -1:]  # whole-chunk log decay

    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    decay = (cum[..., :, None] - cum[..., None, :]).masked_fill(~causal, float("-inf")).exp()
    intra = ((q @ k.transpose(-1, -2)) * decay) @ v  # [b, h, n, C, dv]

    q_in = q * cum.exp()[..., None]  # queries read the chunk-start state decayed to their position
    kv = (k * (last - cum).exp()[..., None]).transpose(-1, -2) @ v  # each chunk's contribution to the state
    s = q.new_zeros(b, h, dk, dv) if state is None else state
    inter = []
    for i in range(n):
        inter.append(q_in[:, :, i] @ s)
        s = s * last[:, :, i, :, None].exp() + kv[:, :, i]
    out = intra + torch.stack(inter, dim=2)
    return out.reshape(b, h, n * chunk, dv)[:, :, :t], s
