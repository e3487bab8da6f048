"""Mamba-2 (Dao & Gu 2024, "Transformers are SSMs": structured state space duality, SSD) as a mixer.

Per head h a selective SSM whose transition is a scalar times the identity:

    S_t = exp(dt_t A_h) S_{t-1} + B_t^T (dt_t x_t)          S: [N, P] (state size x head dim)
    y_t = C_t S_t + D_h x_t

with dt_t = softplus(dt_raw_t + dt_bias_h) (input-dependent step), A_h = -exp(A_log_h) < 0, and
B_t, C_t: [N] shared by the heads of a group. That is exactly the scalar-gated linear recurrence
of core.ops.gated_linear with q = C, k = B, v = dt x, log-gate g = dt A and scale 1 (the "duality":
its chunked form is masked attention inside chunks plus a recurrence over chunks).

Around the SSM (the Mamba-2 block): one in_proj gives z, xBC, dt; xBC passes a short causal
depthwise conv + SiLU; the output is normalised with a gated RMSNorm, norm(y * silu(z)), over
groups of d_inner / ngroups channels, then out_proj.

Parameter names and shapes follow Hugging Face transformers' ``Mamba2Mixer`` (in_proj, conv1d,
dt_bias, A_log, D, norm.weight, out_proj), so ``load_state_dict(hf_mixer.state_dict())`` works.
Semantics match its torch path: ``dt_limit`` (HF ``time_step_limit``, default (0, inf), a no-op)
clamps dt, here in both the chunked and the step forms (HF's step path skips the clamp, which only
matters with a non-default limit); the chunk size changes only the order of floating-point sums.
The SSM state is stored [B, H, N, P] (the kernel's layout), the transpose of HF's [B, H, P, N].

Padding: dt = 0 at padded positions, so they neither write to (v = dt x = 0) nor decay (g = 0)
the state; the short conv sees them as zero inputs.

Options (``mixer_options``): ``d_state`` (N, 64), ``expand`` (d_inner / d_model, 2), ``headdim``
(64, capped at d_inner), ``ngroups`` (1), ``d_conv`` (4), ``chunk`` (64), ``dt_min`` / ``dt_max``
(1e-3 / 0.1, the log-uniform range of the initial dt), ``dt_limit`` ((0, inf)).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.mixers.base import Mixer, State, register_mixer
from core.nn.causal_conv import CausalConv1d
from core.nn.init import dt_bias
from core.ops.gated_linear import gated_linear


class GatedRMSNorm(nn.Module):
    """RMSNorm(y * silu(z)) per group of channels (Mamba-2's norm_before_gate=False), computed in
    at least float32 as in the reference kernels."""

    def __init__(self, dim: int, group_size: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.group_size, self.eps = group_size, eps

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        work = torch.promote_types(y.dtype, torch.float32)
        y = y.to(work) * F.silu(z.to(work))
        grouped = y.unflatten(-1, (-1, self.group_size))
        y = (grouped * torch.rsqrt(grouped.square().mean(-1, keepdim=True) + self.eps)).flatten(-2)
        return self.weight * y.to(self.weight.dtype)


@register_mixer("mamba2")
class Mamba2(Mixer):
    bidirectional = False
    options = {"d_state": 64, "expand": 2, "headdim": 64, "ngroups": 1, "chunk": 64, "dt_limit": (0.0, math.inf), "dt_min": 1e-3, "dt_max": 0.1, "d_conv": 4}

    def __init__(self, cfg, causal: bool):
        super().__init__()
        opts = self.read_options(cfg)
        d = cfg.d_model
        self.d_state = int(opts["d_state"])
        self.d_inner = int(opts["expand"]) * d
        self.headdim = min(int(opts["headdim"]), self.d_inner)
        self.ngroups = int(opts["ngroups"])
        if self.d_inner % self.headdim:
            raise ValueError(f"mamba2: d_inner={self.d_inner} is not a multiple of headdim={self.headdim}")
        self.n_heads = self.d_inner // self.headdim
        if self.n_heads % self.ngroups:
            raise ValueError(f"mamba2: {self.n_heads} heads do not split into ngroups={self.ngroups}")
        self.chunk = int(opts["chunk"])
        self.dt_limit = tuple(float(v) for v in opts["dt_limit"])
        dt_min, dt_max = float(opts["dt_min"]), float(opts["dt_max"])

        self.conv_dim = self.d_inner + 2 * self.ngroups * self.d_state  # x, B, C go through the conv
        self.in_proj = nn.Linear(d, self.d_inner + self.conv_dim + self.n_heads, bias=cfg.bias)  # z, xBC, dt
        self.conv1d = CausalConv1d(self.conv_dim, kernel=int(opts["d_conv"]))
        self.dt_bias = nn.Parameter(dt_bias(self.n_heads, dt_min, dt_max))  # softplus(dt_bias): log-uniform
        # A = -exp(A_log), |A| ~ U[1, 16] as in the reference implementation
        self.A_log = nn.Parameter(torch.empty(self.n_heads).uniform_(1, 16).log())
        self.D = nn.Parameter(torch.ones(self.n_heads))
        self.norm = GatedRMSNorm(self.d_inner, self.d_inner // self.ngroups, eps=cfg.norm_eps)
        self.out_proj = nn.Linear(self.d_inner, d, bias=cfg.bias)
        for p in (self.dt_bias, self.A_log, self.D):
            p._no_weight_decay = True

    def init_state(self, batch: int, device, dtype) -> State:
        return {"conv": self.conv1d.init_state(batch, device, dtype),
                "ssm": torch.zeros(batch, self.n_heads, self.d_state, self.headdim, device=device, dtype=dtype)}

    def forward(self, x, state=None, mask=None, offset=0):
        b, t, _ = x.shape
        h, p, n, g = self.n_heads, self.headdim, self.d_state, self.ngroups
        z, xbc, dt = self.in_proj(x).split([self.d_inner, self.conv_dim, h], dim=-1)
        xbc, conv_state = self.conv1d(xbc, None if state is None else state["conv"], mask)
        xs, B, C = F.silu(xbc).split([self.d_inner, g * n, g * n], dim=-1)

        dt = F.softplus(dt + self.dt_bias)  # [b, t, h]
        if self.dt_limit != (0.0, math.inf):
            dt = dt.clamp(*self.dt_limit)
        if mask is not None:  # dt = 0: no write (v = 0) and no decay (g = 0) at padding
            dt = dt * mask[..., None].to(dt.dtype)
        A = -torch.exp(self.A_log)

        # the kernel wants [B, H, T, .] (one contiguous copy each); head i reads group i // (H / G)
        q, k = (y.view(b, t, g, 1, n).permute(0, 2, 3, 1, 4).expand(b, g, h // g, t, n).reshape(b, h, t, n)
                for y in (C, B))
        xs = xs.view(b, t, h, p).transpose(1, 2)  # [B, H, T, P]
        dt = dt.transpose(1, 2)  # [B, H, T]
        v = xs * dt[..., None]
        s0 = None if state is None else state["ssm"]
        y, s = gated_linear(q, k, v, dt * A[:, None], s0, 1.0, chunk=self.chunk)
        y = (y + xs * self.D[:, None, None]).transpose(1, 2).reshape(b, t, self.d_inner)
        y = self.out_proj(self.norm(y, z))
        return y, (None if state is None else {"conv": conv_state, "ssm": s})
