"""One decoding step of the selective scan: O(1) time and memory in the sequence length.

Only elementwise ops and a matrix-vector product, so it exports to ONNX as it stands."""
from __future__ import annotations

import torch


def selective_scan_step(u, dt, A, Bm, Cm, D, h):
    """u, dt: [B, Din]; A: [Din, N]; Bm, Cm: [B, N]; D: [Din] or None; h: [B, Din, N].

    Returns (y [B, Din], new h [B, Din, N])."""
    h = torch.exp(dt[:, :, None] * A) * h + (dt * u)[:, :, None] * Bm[:, None, :]
    y = (h @ Cm[:, :, None])[..., 0]
    if D is not None:
        y = y + u * D
    return y, h
