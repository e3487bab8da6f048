"""The entry point mixers call: one-token decoding takes the O(1) step, everything else
(training, prefill, multi-token continuation) the chunked form, in Triton for per-head gates on a
GPU when triton is installed, in PyTorch otherwise."""
from __future__ import annotations

import torch

from core.ops.gated_linear.chunk import gated_linear_chunk
from core.ops.gated_linear.step import gated_linear_step
from core.ops.gated_linear.triton import HAS_TRITON, gated_linear_triton


def gated_linear(q, k, v, g, state=None, scale: float | None = None, chunk: int = 64, u=None):
    """Shapes as in :func:`gated_linear_chunk` (g: [B, H, T] per head or [B, H, T, Dk] per
    channel; u: [H, Dk] RWKV-6 bonus or None); returns (o [B, H, T, Dv], final state)."""
    if q.shape[2] == 1 and state is not None:
        o, s = gated_linear_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], g[:, :, 0], state, scale, u=u)
        return o[:, :, None], s
    # the kernels compute in float32: float64 keeps the PyTorch form
    if HAS_TRITON and q.is_cuda and g.dim() == 3 and u is None and q.dtype != torch.float64:
        return gated_linear_triton(q, k, v, g, state, scale, chunk=chunk)
    return gated_linear_chunk(q, k, v, g, state, scale, chunk=chunk, u=u)
