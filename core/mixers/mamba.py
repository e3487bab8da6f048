"""Mamba (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces") as a mixer.

One Mamba block's token mixing (paper Fig. 3, Algorithm 2), with d_inner = expand * d_model:

    x, z   = in_proj(u)                              both [B, T, d_inner]
    x      = silu(causal_depthwise_conv(x))          kernel d_conv, its decoding state: the last d_conv-1 inputs
    dt_low, B, C = x_proj(x)                         [dt_rank], [N], [N]: the *selective* parameters
    dt     = softplus(dt_proj(dt_low))               per channel step size, > 0
    A      = -exp(A_log)                             [d_inner, N], input-independent, < 0
    h_t    = exp(dt_t A) * h_{t-1} + (dt_t x_t) B_t  [d_inner, N] state per sequence
    y_t    = h_t C_t + D x_t
    out    = out_proj(y * silu(z))

Initialisation follows the paper: A_log = log(1..N) in every channel (S4D-real), D = 1, and the
dt_proj bias is the inverse softplus of step sizes drawn log-uniformly in [1e-3, 0.1], so every
channel starts with its own time scale.

Parameter names and shapes are those of Hugging Face transformers' ``MambaMixer`` (``in_proj``,
``conv1d``, ``x_proj``, ``dt_proj``, ``A_log``, ``D``, ``out_proj``), so its weights load 1:1.

Padding (mask False) gets dt = 0 (decay exp(0) = 1 and write 0: the state passes through untouched)
and enters the convolution as zeros. Decoding state: ``{"conv": [B, d_inner, d_conv - 1],
"ssm": [B, d_inner, N]}``, the same size at every step.

Options (``mixer_options``): ``d_state`` (N, 16), ``d_conv`` (4), ``expand`` (2), ``dt_rank``
("auto" = ceil(d_model / 16)), ``block`` (super-block length of the scan, 64), ``dt_min`` /
``dt_max`` (range of the initial step sizes, 1e-3 / 0.1).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.mixers.base import Mixer, State, register_mixer
from core.nn.causal_conv import CausalConv1d
from core.nn.init import KeepInitLinear, dt_bias
from core.ops.selective_scan import selective_scan


@register_mixer("mamba")
class Mamba(Mixer):
    bidirectional = False
    options = {"d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": "auto", "block": 64, "dt_min": 1e-3, "dt_max": 0.1}

    def __init__(self, cfg, causal: bool):
        super().__init__()
        opts = self.read_options(cfg)
        d = cfg.d_model
        self.d_state = int(opts["d_state"])
        self.d_conv = int(opts["d_conv"])
        self.d_inner = int(opts["expand"]) * d
        rank = opts["dt_rank"]
        self.dt_rank = math.ceil(d / 16) if rank == "auto" else int(rank)
        self.block = int(opts["block"])
        di, n = self.d_inner, self.d_state

        self.in_proj = KeepInitLinear(d, 2 * di, bias=cfg.bias)
        self.conv1d = CausalConv1d(di, self.d_conv, bias=True)
        self.x_proj = KeepInitLinear(di, self.dt_rank + 2 * n, bias=False)
        self.dt_proj = KeepInitLinear(self.dt_rank, di, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(di, 1))
        self.D = nn.Parameter(torch.ones(di))
        self.A_log._no_weight_decay = True  # as mamba_ssm: decay would pull A towards -1
        self.out_proj = KeepInitLinear(di, d, bias=cfg.bias)
        self.reset_dt(float(opts["dt_min"]), float(opts["dt_max"]))

    @torch.no_grad()
    def reset_dt(self, dt_min: float, dt_max: float) -> None:
        """dt_proj as in the paper: weights uniform in +-rank^-1/2, bias = softplus^-1(dt) with dt
        log-uniform in [dt_min, dt_max]."""
        bound = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -bound, bound)
        self.dt_proj.bias.copy_(dt_bias(self.d_inner, dt_min, dt_max))

    def init_state(self, batch: int, device, dtype) -> State:
        return {"conv": self.conv1d.init_state(batch, device, dtype),
                "ssm": torch.zeros(batch, self.d_inner, self.d_state, device=device, dtype=dtype)}

    def forward(self, x, state=None, mask=None, offset=0):
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x, conv_state = self.conv1d(x, None if state is None else state["conv"], mask)
        x = F.silu(x)
        dt_low, Bm, Cm = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        work = torch.promote_types(x.dtype, torch.float32)  # (bf16 under autocast: step sizes in fp32)
        dt = F.softplus(self.dt_proj(dt_low).to(work))
        if mask is not None:  # padding: no decay, no write
            dt = dt * mask[..., None].to(dt.dtype)
        A = -torch.exp(self.A_log.to(work))
        y, ssm = selective_scan(x, dt, A, Bm, Cm, self.D, None if state is None else state["ssm"], block=self.block)
        y = self.out_proj(y * F.silu(z))
        return y, (None if state is None else {"conv": conv_state, "ssm": ssm})
