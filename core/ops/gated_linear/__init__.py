"""Gated linear attention with a scalar decay per head and step.

    S_t = exp(g_t) * S_{t-1} + k_t^T v_t          S: [Dk, Dv] per head, g_t <= 0 (log decay)
    o_t = scale * q_t S_t

One recurrence behind several families: RetNet (g constant per head), Mamba-2 / SSD (g = dt * A,
input-dependent), mLSTM without its normaliser (g = log forget gate), linear attention (g = 0).
Per-channel gates (GLA, HGRN2) extend it and come next.
"""
from core.ops.gated_linear.chunk import gated_linear_chunk
from core.ops.gated_linear.dispatch import gated_linear
from core.ops.gated_linear.naive import gated_linear_naive
from core.ops.gated_linear.step import gated_linear_step

__all__ = ["gated_linear", "gated_linear_chunk", "gated_linear_naive", "gated_linear_step"]
