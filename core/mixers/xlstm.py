"""xLSTM's matrix-memory cell (mLSTM, Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory")
as a mixer, on the shared gated-linear kernel; plus the scalar-memory sLSTM.

mLSTM, per head (q, k, v: [Dk] / [Dv]; i~, f~: scalar gate pre-activations):

    C_t = f_t C_{t-1} + i_t v_t k_t^T        (matrix memory, [Dv, Dk])
    n_t = f_t n_{t-1} + i_t k_t              (normaliser, [Dk])
    h_t = C_t q_t / max(|n_t^T q_t|, 1)
    i_t = exp(i~_t),  f_t = sigmoid(f~_t),   k scaled by 1/sqrt(Dk)

Why the shared kernel computes exactly this. ``gated_linear`` runs S_t = exp(g_t) S_{t-1} + k'_t^T v'_t,
o_t = scale q_t S_t. With g_t = log f_t (a scalar per head), k'_t = i_t k_t and v'_t = [v_t, 1]
(an extra value column of ones, as linear attention carries its normaliser) and k' including the
paper's 1/sqrt(Dk), S_t = [C_t^T, n_t] stacked: the first Dv output columns are q_t C_t^T =
(C_t q_t)^T and the last is n_t^T q_t. One kernel call gives numerator and denominator, and the
decoding state is exactly the paper's (C, n).

What differs from the paper: no max-stabiliser state m_t. The paper keeps C, n scaled by exp(-m_t)
with m_t = max(log f_t + m_{t-1}, i~_t) and divides by max(|n^T q|, exp(-m_t)); the exp(-m_t)
factors cancel, so its h_t equals ours exactly (the tests check this against a stabilised
per-token loop and against HF transformers' native mLSTM recurrence). The stabiliser only guards
exp(i~) against overflow; here the input-gate pre-activation is soft-capped instead,
i~ <- 15 tanh(i~ / 15) (as xLSTM-7B does), so i_t <= e^15 ~ 3.3e6 and the unscaled state stays far
from float32's range. Dropping m keeps the state a plain matrix, so the chunked form is the
kernel's and decoding is one matrix update per token.

The block is the paper's mLSTM block (pre-up-projection): up-projection by ``expand`` into an mLSTM
branch and an output-gate branch z; the mLSTM branch goes through a causal depthwise convolution
and SiLU to feed q and k, while v reads the un-convolved branch; q, k, v use block-diagonal
("headwise") projections with ``qkv_block``-sized blocks; gates read [q, k, v]; a per-head
LayerNorm on h, a learnable skip from the convolved branch, the output gate SiLU(z) and a down
projection. Decoding state: {"conv": last inputs of the convolution, "state": [B, H, Dk, Dv + 1]}.

sLSTM (same paper, registered as ``slstm``) is a nonlinear recurrence (its gates read h_{t-1}
through block-diagonal recurrent weights), so its only form is a loop over tokens: see :class:`SLSTM`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.mixers.base import Mixer, State, register_mixer
from core.nn.causal_conv import CausalConv1d
from core.ops.gated_linear import gated_linear


def soft_cap(x: torch.Tensor, cap: float) -> torch.Tensor:
    """cap * tanh(x / cap): identity near 0, smoothly bounded by +-cap."""
    return cap * torch.tanh(x / cap)


def mlstm_recurrence(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i_pre: torch.Tensor,
                     f_pre: torch.Tensor, state: torch.Tensor | None = None,
                     mask: torch.Tensor | None = None, chunk: int = 64, gate_cap: float = 15.0):
    """The mLSTM cell over a sequence (chunked) or one step (T == 1 with a state).

    q, k: [B, H, T, Dk]; v: [B, H, T, Dv]; i_pre, f_pre: [B, H, T] gate pre-activations;
    state: [B, H, Dk, Dv + 1] = [C^T, n] or None; mask: [B, T] True for real tokens.
    Returns (h [B, H, T, Dv], new state [B, H, Dk, Dv + 1]).
    """
    dv = v.shape[-1]
    log_i = soft_cap(i_pre, gate_cap)
    log_f = F.logsigmoid(f_pre)
    if mask is not None:  # padding writes nothing (i = 0) and forgets nothing (f = 1)
        keep = mask[:, None, :].to(q.dtype)
        log_f = log_f * keep
        k = k * keep[..., None]
    k = k * (log_i.exp() * k.shape[-1] ** -0.5)[..., None]  # the state holds the paper's C and n
    v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # last column accumulates n_t
    o, state = gated_linear(q, k, v, log_f, state, 1.0, chunk=chunk)
    h = o[..., :dv] / o[..., dv:].abs().clamp_min(1.0)
    return h, state


class HeadwiseLinear(nn.Module):
    """Block-diagonal projection: independent ``block`` x ``outputs * block`` maps on consecutive
    channel groups (xLSTM's LinearHeadwiseExpand: a dense map of the 2d-wide mLSTM branch would
    cost (2d)^2 per matrix). Output [..., groups * outputs * block], grouped by input block."""

    def __init__(self, dim: int, block: int, outputs: int = 1):
        super().__init__()
        if dim % block:
            raise ValueError(f"block size {block} must divide the width {dim}")
        self.block = block
        self.weight = nn.Parameter(torch.randn(dim // block, block, outputs * block) * math.sqrt(2 / (5 * block)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = x.view(*x.shape[:-1], -1, self.block)
        return torch.einsum("...ni,nio->...no", groups, self.weight).flatten(-2)


@register_mixer("mlstm")
class MLSTM(Mixer):
    """The mLSTM block. Options (``mixer_options``): ``expand`` (inner width / d_model, default 2),
    ``conv`` (kernel, default 4), ``qkv_block`` (block size of the q/k/v projections, default 4),
    ``chunk`` (tokens per chunk of the parallel form, default 64), ``gate_cap`` (soft cap of the
    input-gate pre-activation, default 15)."""

    bidirectional = False
    options = {"expand": 2, "chunk": 64, "gate_cap": 15.0, "qkv_block": 4, "conv": 4}

    def __init__(self, cfg, causal: bool):
        super().__init__()
        opts = self.read_options(cfg)
        d, h = cfg.d_model, cfg.n_heads
        self.inner = inner = int(opts["expand"]) * d
        if inner % h:
            raise ValueError(f"inner width {inner} must divide by n_heads={h}")
        self.n_heads, self.head_dim = h, inner // h
        self.chunk = int(opts["chunk"])
        self.gate_cap = float(opts["gate_cap"])
        block = int(opts["qkv_block"])
        self.up = nn.Linear(d, 2 * inner, bias=cfg.bias)
        self.conv = CausalConv1d(inner, int(opts["conv"]))
        self.q, self.k, self.v = (HeadwiseLinear(inner, block) for _ in range(3))
        # Gates as raw parameters, not nn.Linear, so the backbone's GPT-2 init keeps the paper's:
        # zero weights, forget-gate biases spread over [3, 6] (long memory at the start of
        # training), input-gate biases ~ N(0, 0.1).
        self.gate_weight = nn.Parameter(torch.zeros(2 * h, 3 * inner))
        self.gate_bias = nn.Parameter(torch.cat([torch.randn(h) * 0.1, torch.linspace(3.0, 6.0, h)]))
        self.norm_weight = nn.Parameter(torch.ones(inner))  # per-head LayerNorm, weight only
        self.skip = nn.Parameter(torch.ones(inner))
        self.down = nn.Linear(inner, d, bias=cfg.bias)

    def init_state(self, batch: int, device, dtype) -> State:
        dh = self.head_dim
        return {"conv": self.conv.init_state(batch, device, dtype),
                "state": torch.zeros(batch, self.n_heads, dh, dh + 1, device=device, dtype=dtype)}

    def forward(self, x, state=None, mask=None, offset=0):
        b, t, _ = x.shape
        h, dh = self.n_heads, self.head_dim
        xm, z = self.up(x).chunk(2, dim=-1)
        xc, conv_state = self.conv(xm, None if state is None else state["conv"], mask)
        xc = F.silu(xc)
        q, k, v = self.q(xc), self.k(xc), self.v(xm)
        gates = F.linear(torch.cat([q, k, v], dim=-1), self.gate_weight, self.gate_bias)
        i_pre, f_pre = gates.transpose(1, 2).chunk(2, dim=1)  # [B, H, T] each
        q, k, v = (y.view(b, t, h, dh).transpose(1, 2) for y in (q, k, v))
        o, s = mlstm_recurrence(q, k, v, i_pre, f_pre, None if state is None else state["state"],
                                mask, self.chunk, self.gate_cap)
        o = F.layer_norm(o, (dh,)).transpose(1, 2).reshape(b, t, self.inner) * self.norm_weight
        o = (o + self.skip * xc) * F.silu(z)
        return self.down(o), (None if state is None else {"conv": conv_state, "state": s})


def slstm_cell(pre: torch.Tensor, recurrent: torch.Tensor, c, n, m, h, keep: torch.Tensor | None = None):
    """One sLSTM step for every head at once, stabilised as in the paper (eqs. 15-17).

    pre: [H, B, 4 Dh] input projections + biases for (i, f, z, o); recurrent: [H, Dh, 4 Dh];
    c, n, m, h: [H, B, Dh]; keep: [B, 1] bool (False at padding: the state stays as it was).

        m_t = max(log f_t + m_{t-1}, i~_t);  i' = exp(i~_t - m_t);  f' = exp(log f_t + m_{t-1} - m_t)
        c_t = f' c_{t-1} + i' tanh(z~_t);   n_t = f' n_{t-1} + i';   h_t = sigmoid(o~_t) c_t / n_t

    Scaling c and n by exp(-m_t) leaves c / n unchanged, and one of i', f' is 1, so n_t >= 1 from the
    first token on. Before any token (n = 0) m has no meaning: m_t = i~_t there, and f' is clamped
    to <= 1 so that f' * 0 stays 0 whatever the initial m.
    """
    i_pre, f_pre, z_pre, o_pre = torch.baddbmm(pre, h, recurrent).chunk(4, dim=-1)
    log_f = F.logsigmoid(f_pre)
    m_new = torch.where(n == 0, i_pre, torch.maximum(log_f + m, i_pre))
    i_act = torch.exp(i_pre - m_new)
    f_act = torch.exp((log_f + m - m_new).clamp(max=0.0))
    c_new = f_act * c + i_act * torch.tanh(z_pre)
    n_new = f_act * n + i_act
    h_new = torch.sigmoid(o_pre) * c_new / n_new
    if keep is None:
        return c_new, n_new, m_new, h_new
    return tuple(torch.where(keep, new, old) for new, old in ((c_new, c), (n_new, n), (m_new, m), (h_new, h)))


@register_mixer("slstm")
class SLSTM(Mixer):
    """The sLSTM layer of the paper's sLSTM block (the block's gated MLP is the backbone's MLP):
    a causal convolution + SiLU feeds the input and forget gates, the cell input z and the output
    gate read x directly; all four input maps are block-diagonal per head, and the recurrent
    weights R (h_{t-1} -> gates) are block-diagonal per head too: heads are independent
    recurrences. Output: per-head LayerNorm of h (no output projection, as in the paper's layer).

    The gates read h_{t-1} through a nonlinearity, so there is no parallel or chunked form: the
    input projections of all T tokens are one batched matmul, and only R h_{t-1} and the pointwise
    update run token by token (training costs T small steps through autograd).
    State: {"conv": [B, D, kernel-1], "c", "n", "m", "h": [B, D]}.

    Initialisation: R = 0 (the xLSTM code's default), forget-gate biases spread over [3, 6] per
    channel (long memory at first), other biases 0. Options: ``conv`` (kernel, default 4)."""

    bidirectional = False
    options = {"conv": 4}

    def __init__(self, cfg, causal: bool):
        super().__init__()
        opts = self.read_options(cfg)
        d, h = cfg.d_model, cfg.n_heads
        self.d_model, self.n_heads, self.head_dim = d, h, d // h
        dh = self.head_dim
        self.conv = CausalConv1d(d, int(opts["conv"]))
        self.in_if = HeadwiseLinear(d, dh, 2)  # from the convolved branch
        self.in_zo = HeadwiseLinear(d, dh, 2)  # from x
        self.recurrent = nn.Parameter(torch.zeros(h, dh, 4 * dh))
        bias = torch.zeros(h, 4, dh)
        bias[:, 1] = torch.linspace(3.0, 6.0, dh)
        self.bias = nn.Parameter(bias.view(h, 4 * dh))
        self.norm_weight = nn.Parameter(torch.ones(d))

    def init_state(self, batch: int, device, dtype) -> State:
        zeros = torch.zeros(batch, self.d_model, device=device, dtype=dtype)
        return {"conv": self.conv.init_state(batch, device, dtype),
                "c": zeros, "n": zeros.clone(), "m": zeros.clone(), "h": zeros.clone()}

    def forward(self, x, state=None, mask=None, offset=0):
        b, t, d = x.shape
        h, dh = self.n_heads, self.head_dim
        xc, conv_state = self.conv(x, None if state is None else state["conv"], mask)
        xc = F.silu(xc)
        gate_if = self.in_if(xc).view(b, t, h, 2, dh)
        gate_zo = self.in_zo(x).view(b, t, h, 2, dh)
        pre = torch.cat([gate_if, gate_zo], dim=3).view(b, t, h, 4 * dh) + self.bias
        pre = pre.permute(1, 2, 0, 3)  # [T, H, B, 4 Dh]: the loop's per-step slices are contiguous blocks
        if state is None:
            c = n = m = hh = x.new_zeros(h, b, dh)
        else:  # [B, D] -> [H, B, Dh]
            c, n, m, hh = (state[key].view(b, h, dh).transpose(0, 1) for key in ("c", "n", "m", "h"))
        outs = []
        for i, pre_t in enumerate(pre.unbind(0)):
            keep = None if mask is None else mask[:, i, None]
            c, n, m, hh = slstm_cell(pre_t, self.recurrent, c, n, m, hh, keep)
            outs.append(hh)
        y = torch.stack(outs, dim=2)  # [H, B, T, Dh]
        y = F.layer_norm(y, (dh,)).permute(1, 2, 0, 3).reshape(b, t, d) * self.norm_weight
        if state is None:
            return y, None
        flat = (z.transpose(0, 1).reshape(b, d) for z in (c, n, m, hh))
        return y, dict(zip(("c", "n", "m", "h"), flat), conv=conv_state)
