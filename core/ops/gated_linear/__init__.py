"""Gated linear attention: a matrix state per head, decayed by input-dependent gates.

    S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t       S: [Dk, Dv] per head, g_t <= 0 (log decay)
    o_t = scale * q_t S_t

``g`` is either [B, H, T], one decay per head and step (exp(g_t) scales the whole state), or
[B, H, T, Dk], one decay per key channel (row d of S decays by exp(g_t[d])).

One recurrence behind several families. Per-head gates: RetNet (g constant per head), Mamba-2 /
SSD (g = dt * A, input-dependent), mLSTM without its normaliser (g = log forget gate), linear
attention (g = 0). Per-channel gates: GLA (g = logsigmoid(low-rank W x) / tau), HGRN2
(g = log f_t, k = 1 - f_t).

RWKV-6 form (keyword ``u``: [H, Dk] "bonus", per-channel gates only): the state update is the
same, but the output reads the state *before* token t's write, plus that write weighted by u:

    o_t = scale * q_t (S_{t-1} + diag(u) k_t^T v_t)

Entry point :func:`gated_linear` (step for one-token decoding, chunked otherwise), with
:func:`gated_linear_naive` (reference), :func:`gated_linear_chunk` and :func:`gated_linear_step`.
On CUDA with triton installed, per-head gates (u None) go through the Triton kernels of triton.py.
"""
from core.ops.gated_linear.chunk import gated_linear_chunk
from core.ops.gated_linear.dispatch import gated_linear
from core.ops.gated_linear.naive import gated_linear_naive
from core.ops.gated_linear.step import gated_linear_step

__all__ = ["gated_linear", "gated_linear_chunk", "gated_linear_naive", "gated_linear_step"]
