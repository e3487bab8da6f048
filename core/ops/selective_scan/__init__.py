"""The selective scan of Mamba (S6; Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with
Selective State Spaces", Algorithm 2), per channel d and state index n:

    h_t = exp(dt_t A) * h_{t-1} + (dt_t u_t) B_t      h: [Din, N], A <= 0, dt >= 0 (softplus'ed)
    y_t = h_t C_t + D u_t

Unlike the gated-linear family the decay is per (channel, state) element, so the state cannot be
read off with attention-like matmuls; the fast form (``chunk.py``) is a blocked scan that never
holds the [B, T, Din, N] states of the whole sequence. On CUDA with Triton installed, float32 work
goes to the Triton kernels of ``triton.py`` instead (same algorithm: a sequential walk over
the tokens, states saved every ``block`` tokens, recomputed in backward).
"""
from __future__ import annotations

import torch

from core.ops.selective_scan.chunk import selective_scan_chunk
from core.ops.selective_scan.naive import selective_scan_naive
from core.ops.selective_scan.step import selective_scan_step
from core.ops.selective_scan.triton import HAS_TRITON, selective_scan_triton

_LOW = (torch.float16, torch.bfloat16)


def selective_scan(u, dt, A, Bm, Cm, D=None, h0=None, block: int = 64):
    """u, dt: [B, T, Din]; A: [Din, N]; Bm, Cm: [B, T, N]; D: [Din] or None; h0: [B, Din, N] or None.
    Returns (y [B, T, Din], h_T [B, Din, N]).

    One token with a state (decoding) takes the O(1) step; anything else the blocked scan. The scan
    always runs in at least float32 with autocast off: a long product of decays in bfloat16 drifts."""
    dtype = u.dtype
    work = torch.float32 if dtype in _LOW else dtype
    if u.shape[1] == 1 and h0 is not None:
        y, h = selective_scan_step(u[:, 0], dt[:, 0], A, Bm[:, 0], Cm[:, 0], D, h0)
        return y[:, None].to(dtype), h.to(h0.dtype)
    with torch.autocast(u.device.type, enabled=False):
        args = [None if x is None else x.to(work) for x in (u, dt, A, Bm, Cm, D, h0)]
        if HAS_TRITON and u.is_cuda and work == torch.float32:
            y, h = selective_scan_triton(*args, checkpoint=block)
        else:
            y, h = selective_scan_chunk(*args, block=block)
    return y.to(dtype), (h if h0 is None else h.to(h0.dtype))


__all__ = ["selective_scan", "selective_scan_chunk", "selective_scan_naive", "selective_scan_step"]
