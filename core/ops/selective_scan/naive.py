"""Token-by-token reference of the selective scan (tests only: O(T) Python steps under autograd)."""
from __future__ import annotations

import torch


def selective_scan_naive(u, dt, A, Bm, Cm, D=None, h0=None):
    """u, dt: [B, T, Din]; A: [Din, N]; Bm, Cm: [B, T, N]; D: [Din] or None; h0: [B, Din, N] or None.

    h_t = exp(dt_t A) * h_{t-1} + (dt_t u_t) outer B_t,   y_t = h_t C_t + D u_t.
    Returns (y [B, T, Din], h_T [B, Din, N])."""
    b, t, din = u.shape
    h = u.new_zeros(b, din, A.shape[1]) if h0 is None else h0
    ys = []
    # (unbind, not u[:, i]: indexing's backward would write a full-size zero gradient every step)
    for u_i, dt_i, b_i, c_i in zip(u.unbind(1), dt.unbind(1), Bm.unbind(1), Cm.unbind(1)):
        h = torch.exp(dt_i[:, :, None] * A) * h + (dt_i * u_i)[:, :, None] * b_i[:, None, :]
        ys.append(torch.einsum("bdn,bn->bd", h, c_i))
    y = torch.stack(ys, dim=1) if ys else u.new_zeros(b, 0, din)
    if D is not None:
        y = y + u * D
    return y, h
