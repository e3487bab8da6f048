"""Multi-scale retention (RetNet, Sun et al. 2023) as a mixer.

Each head is a linear recurrence with its own fixed decay gamma_h = 1 - 2^(-5-h): short-memory
heads next to long-memory ones. Queries/keys are rotated (RoPE, close to RetNet's xPos), outputs
are RMS-normalised per head and gated by swish(W_g x). The state is one [Dk, Dv] matrix per head,
so decoding costs the same at token 10 and token 100,000.

Options (``mixer_options``): ``v_expand`` (value width per head / key width, default 2 as in the
paper), ``chunk`` (tokens per chunk in the parallel form, default 64).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.mixers.base import Mixer, State, register_mixer
from core.nn.positions import Rotary
from core.ops.gated_linear import gated_linear


@register_mixer("retnet")
class MultiScaleRetention(Mixer):
    bidirectional = False
    options = {"v_expand": 2, "chunk": 64}

    def __init__(self, cfg, causal: bool):
        super().__init__()
        opts = self.read_options(cfg)
        self.n_heads, self.dk = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.dv = self.dk * int(opts["v_expand"])
        self.chunk = int(opts["chunk"])
        d, inner = cfg.d_model, self.n_heads * self.dv
        self.proj = nn.Linear(d, 2 * d + 2 * inner, bias=cfg.bias)  # q, k, v, gate in one matmul
        self.out = nn.Linear(inner, d, bias=cfg.bias)
        self.rotary = Rotary(self.dk, cfg.max_len)
        decay = 1 - 2.0 ** (-5 - torch.arange(self.n_heads, dtype=torch.float32))
        self.register_buffer("log_decay", decay.log(), persistent=False)

    def init_state(self, batch: int, device, dtype) -> State:
        return {"state": torch.zeros(batch, self.n_heads, self.dk, self.dv, device=device, dtype=dtype)}

    def forward(self, x, state=None, mask=None, offset=0):
        b, t, _ = x.shape
        h, dk, dv = self.n_heads, self.dk, self.dv
        q, k, v, gate = self.proj(x).split([h * dk, h * dk, h * dv, h * dv], dim=-1)
        q = self.rotary(q.view(b, t, h, dk).transpose(1, 2), offset)
        k = self.rotary(k.view(b, t, h, dk).transpose(1, 2), offset)
        v = v.view(b, t, h, dv).transpose(1, 2)
        g = self.log_decay[None, :, None].expand(b, h, t).to(x.dtype)
        if mask is not None:  # padding neither writes to nor decays the state
            keep = mask[:, None, :].to(x.dtype)
            k, g = k * keep[..., None], g * keep
        scale = 1 / math.sqrt(dk)
        s0 = None if state is None else state["state"]
        o, s = gated_linear(q, k, v, g, s0, scale, chunk=self.chunk)
        o = F.rms_norm(o, (dv,)).transpose(1, 2).reshape(b, t, h * dv)
        y = self.out(o * F.silu(gate))
        return y, (None if state is None else {"state": s})
