"""Griffin / Hawk's recurrent block with the Real-Gated Linear Recurrent Unit (De et al. 2024,
"Griffin: Mixing Gated Linear Recurrences with Local Attention for Efficient Language Models").

RG-LRU, per channel of the recurrence width W:

    r_t = sigmoid(W_a x_t + b_a)                  recurrence gate
    i_t = sigmoid(W_x x_t + b_x)                  input gate
    a_t = a^(c r_t),  a = sigmoid(Λ),  c = 8      so log a_t = -c * r_t * softplus(-Λ) <= 0
    h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (i_t * x_t)

W_a and W_x are block-diagonal with ``n_heads`` blocks (one dense [W/H, W/H] matrix per head),
applied as batched per-head matmuls (no [W, W] matrix of zeros); the gates always carry biases.
sqrt(1 - a_t^2) keeps the state's scale near the input's however long the memory; it is
computed from log a_t as sqrt(-expm1(2 log a_t)), exact when a_t is close to 1, where 1 - a_t^2
would cancel.

The recurrent block (Hawk's temporal mixer; Griffin interleaves it with local attention, a
config pattern such as ``[rglru, rglru, attention]`` with ``window``):

    y = Linear_out( GeLU(Linear_y(x)) * RG-LRU(CausalConv1d_4(Linear_x(x))) )

(GeLU in its tanh form, as in the released model; Linear_y and Linear_x are one fused Linear.)

Λ is initialised so that a^c is uniform in [0.9, 0.999] (the paper's text; the released
recurrentgemma code draws a^2 uniform in [0.81, 0.998] instead). The paper's reset at
document starts (full input, no history) is not modelled: the recurrence is the same at every
position and starts from a zero state, which keeps training, prefill and decoding identical.

State: ``{"conv": [B, W, conv - 1], "h": [B, W]}`` (h in at least float32: the recurrence runs
in float32 under bf16 autocast too). Padding: the conv sees zeros, and the RG-LRU takes
a = 1, b = 0 (the state passes through). Options: ``expand`` (W = expand * d_model rounded to a
multiple of n_heads, default 1.5; Griffin uses 4/3), ``conv`` (kernel, default 4), ``block``
(scan block size, default about sqrt(T)).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.mixers.base import Mixer, State, register_mixer
from core.nn.causal_conv import CausalConv1d
from core.ops.linear_scan import linear_scan, linear_scan_step

#: the fixed exponent c of a_t = a^(c r_t)
GATE_POWER = 8.0


class RGLRU(nn.Module):
    """The gated diagonal recurrence alone: x [B, T, W] (after the conv) -> h [B, T, W]."""

    def __init__(self, width: int, n_heads: int, block: int | None = None):
        super().__init__()
        if width % n_heads:
            raise ValueError(f"RG-LRU width {width} is not divisible by n_heads={n_heads}")
        self.width, self.n_heads, self.block = width, n_heads, block
        head = width // n_heads
        # one dense [in, out] matrix per head for each gate (block-diagonal W_a, W_x)
        self.w_a = nn.Parameter(torch.randn(n_heads, head, head) / math.sqrt(head))
        self.w_x = nn.Parameter(torch.randn(n_heads, head, head) / math.sqrt(head))
        self.b_a = nn.Parameter(torch.zeros(n_heads, head))
        self.b_x = nn.Parameter(torch.zeros(n_heads, head))
        # a^c ~ U[0.9, 0.999]  =>  Λ = logit(a) = logit(u^(1/c))
        a = torch.empty(width).uniform_(0.9, 0.999) ** (1 / GATE_POWER)
        self.a_logit = nn.Parameter(torch.log(a) - torch.log1p(-a))

    def gate(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """sigmoid(block-diagonal Linear): one batched matmul over heads. x: [B, T, W]."""
        b, t, _ = x.shape
        heads = torch.einsum("bthi,hio->btho", x.view(b, t, self.n_heads, -1), weight)
        return torch.sigmoid(heads + bias).reshape(b, t, self.width)

    def coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a_t, sqrt(1 - a_t^2) i_t x_t), both [B, T, W]."""
        r, i = self.gate(x, self.w_a, self.b_a), self.gate(x, self.w_x, self.b_x)
        log_a = r * (-GATE_POWER * F.softplus(-self.a_logit))  # log sigmoid(Λ) = -softplus(-Λ)
        # 1 - a^2 without cancellation; the floor keeps the sqrt's derivative finite where a_t
        # rounds to exactly 1 (a saturated gate), the case HF/recurrentgemma clip the gradient for
        scale = torch.sqrt((-torch.expm1(2 * log_a)).clamp_min(1e-12))
        return torch.exp(log_a), scale * (i * x)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                step: bool = False) -> torch.Tensor:
        """x: [B, T, W]; h0: [B, W] or None; mask: [B, T] (True = real). ``step``: T == 1 decoding."""
        a, b = self.coefficients(x)
        if mask is not None:
            pad = ~mask[..., None]
            a, b = a.masked_fill(pad, 1.0), b.masked_fill(pad, 0.0)
        if step:
            return linear_scan_step(a[:, 0], b[:, 0], h0)[:, None]
        return linear_scan(a, b, h0, block=self.block)


@register_mixer("rglru")
class RecurrentBlock(Mixer):
    bidirectional = False
    options = {"expand": 1.5, "block": None, "conv": 4}

    def __init__(self, cfg, causal: bool):
        super().__init__()
        opts = self.read_options(cfg)
        heads = cfg.n_heads
        self.width = heads * max(1, round(float(opts["expand"]) * cfg.d_model / heads))
        block = opts["block"]
        self.proj = nn.Linear(cfg.d_model, 2 * self.width, bias=cfg.bias)  # gate branch, recurrent branch
        self.conv = CausalConv1d(self.width, int(opts["conv"]))
        self.lru = RGLRU(self.width, heads, None if block is None else int(block))
        self.out = nn.Linear(self.width, cfg.d_model, bias=cfg.bias)

    def init_state(self, batch: int, device, dtype) -> State:
        return {"conv": self.conv.init_state(batch, device, dtype),
                "h": torch.zeros(batch, self.width, device=device, dtype=torch.promote_types(dtype, torch.float32))}

    def forward(self, x, state=None, mask=None, offset=0):
        gate, u = self.proj(x).chunk(2, dim=-1)
        u, conv_state = self.conv(u, None if state is None else state["conv"], mask)
        h0 = None if state is None else state["h"]
        # the recurrence accumulates over the whole sequence: at least float32 (also under bf16)
        u = u.to(torch.promote_types(u.dtype, torch.float32))
        h = self.lru(u, h0, mask, step=state is not None and x.shape[1] == 1)
        y = self.out(F.gelu(gate, approximate="tanh") * h.to(gate.dtype))
        return y, (None if state is None else {"conv": conv_state, "h": h[:, -1].clone()})
