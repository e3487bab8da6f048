"""The entry point mixers call: one-token decoding takes the O(1) step, everything else
(training, prefill, multi-token continuation) the chunked form."""
from __future__ import annotations

from core.ops.gated_linear.chunk import gated_linear_chunk
from core.ops.gated_linear.step import gated_linear_step


def gated_linear(q, k, v, g, state=None, scale: float | None = None, chunk: int = 64, u=None):
    """Shapes as in :func:`gated_linear_chunk` (g: [B, H, T] per head or [B, H, T, Dk] per
    channel; u: [H, Dk] RWKV-6 bonus or None); returns (o [B, H, T, Dv], final state)."""
    if q.shape[2] == 1 and state is not None:
        o, s = gated_linear_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], g[:, :, 0], state, scale, u=u)
        return o[:, :, None], s
    return gated_linear_chunk(q, k, v, g, state, scale, chunk=chunk, u=u)
