"""Gated Linear Attention (Yang et al. 2024, "Gated Linear Attention Transformers with
Hardware-Efficient Training") as a mixer.

Linear attention with a data-dependent forget gate per key channel:

    S_t = diag(alpha_t) S_{t-1} + k_t^T v_t           S: [Dk, Dv] per head
    o_t = q_t S_t / sqrt(Dk)
    y_t = W_o (RMSNorm(o_t) * swish(W_r x_t))          (norm per head, output gate per channel)

    log alpha_t = logsigmoid(W_a2 W_a1 x_t + b) / tau,  W_a1 of rank 16, tau = 16

The low-rank gate projection keeps the gate cheap; dividing the log gate by tau = 16 keeps
alpha_t close to 1 (slow forgetting) at initialisation, which the paper found important.
Keys are narrower than values (expand_k = 0.5, expand_v = 1), the paper's default: the state
is [d/2 / H, d / H] per head. The recurrence runs on the shared per-channel gated linear
kernel: chunked for training and prefill, one O(1) step per decoded token.

Options (``mixer_options``): ``expand_k`` (0.5), ``expand_v`` (1.0), ``chunk`` (64),
``gate_rank`` (16), ``gate_norm`` (tau, 16).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.mixers.base import Mixer, State, register_mixer
from core.nn.norms import rms_norm
from core.ops.gated_linear import gated_linear


@register_mixer("gla")
class GatedLinearAttention(Mixer):
    bidirectional = False
    options = {"expand_k": 0.5, "expand_v": 1.0, "chunk": 64, "gate_norm": 16.0, "gate_rank": 16}

    def __init__(self, cfg, causal: bool):
        super().__init__()
        opts = self.read_options(cfg)
        d, h = cfg.d_model, cfg.n_heads
        key_dim, value_dim = int(d * float(opts["expand_k"])), int(d * float(opts["expand_v"]))
        if key_dim % h or value_dim % h or not key_dim or not value_dim:
            raise ValueError(f"gla: key width {key_dim} and value width {value_dim} must be positive multiples of n_heads={h}")
        self.n_heads, self.dk, self.dv = h, key_dim // h, value_dim // h
        self.chunk = int(opts["chunk"])
        self.gate_norm = float(opts["gate_norm"])
        self.eps = cfg.norm_eps
        rank = int(opts["gate_rank"])
        # q, k, v and the output gate in one matmul
        self.proj = nn.Linear(d, 2 * key_dim + 2 * value_dim, bias=cfg.bias)
        self.gate_down = nn.Linear(d, rank, bias=False)
        self.gate_up = nn.Linear(rank, key_dim, bias=True)
        self.norm_weight = nn.Parameter(torch.ones(self.dv))  # per-head RMSNorm, shared across heads
        self.out = nn.Linear(value_dim, d, bias=cfg.bias)

    def init_state(self, batch: int, device, dtype) -> State:
        return {"state": torch.zeros(batch, self.n_heads, self.dk, self.dv, device=device, dtype=dtype)}

    def forward(self, x, state=None, mask=None, offset=0):
        b, t, _ = x.shape
        h, dk, dv = self.n_heads, self.dk, self.dv
        q, k, v, r = self.proj(x).split([h * dk, h * dk, h * dv, h * dv], dim=-1)
        g = F.logsigmoid(self.gate_up(self.gate_down(x))) / self.gate_norm  # log alpha, per key channel
        q, k, g = (y.view(b, t, h, dk).transpose(1, 2) for y in (q, k, g))
        v = v.view(b, t, h, dv).transpose(1, 2)
        if mask is not None:  # padding neither writes to (k = 0) nor decays (g = 0) the state
            keep = mask[:, None, :, None].to(x.dtype)
            k, g = k * keep, g * keep
        s0 = None if state is None else state["state"]
        o, s = gated_linear(q, k, v, g, s0, dk**-0.5, chunk=self.chunk)
        o = rms_norm(o, self.norm_weight, self.eps).transpose(1, 2).reshape(b, t, h * dv)
        y = self.out(o * F.silu(r))
        return y, (None if state is None else {"state": s})
