"""Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs") as a mixer.

softmax(q k^T) is replaced by phi(q) phi(k)^T with phi(x) = elu(x) + 1, so causal attention
becomes a running sum: S_t = S_{t-1} + phi(k_t)^T v_t, o_t = phi(q_t) S_t / phi(q_t) z_t with
z_t = sum phi(k). It is the gated-linear recurrence with no decay (g = 0); the normaliser z rides
along as an extra value column of ones, so one kernel call yields numerator and denominator.

Options (``mixer_options``): ``chunk`` (tokens per chunk of the parallel form, 64), ``eps``
(added to the normaliser, 1e-6).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.mixers.base import Mixer, State, register_mixer
from core.ops.gated_linear import gated_linear


@register_mixer("linear_attention")
class LinearAttention(Mixer):
    bidirectional = False
    options = {"chunk": 64, "eps": 1e-6}

    def __init__(self, cfg, causal: bool):
        super().__init__()
        opts = self.read_options(cfg)
        self.n_heads, self.dk = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.chunk = int(opts["chunk"])
        self.eps = float(opts["eps"])
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)

    def init_state(self, batch: int, device, dtype) -> State:
        return {"state": torch.zeros(batch, self.n_heads, self.dk, self.dk + 1, device=device, dtype=dtype)}

    def forward(self, x, state=None, mask=None, offset=0):
        b, t, _ = x.shape
        h, dk = self.n_heads, self.dk
        q, k, v = (y.view(b, t, h, dk).transpose(1, 2) for y in self.qkv(x).chunk(3, dim=-1))
        q, k = F.elu(q) + 1, F.elu(k) + 1
        if mask is not None:  # padding adds nothing to the sums
            k = k * mask[:, None, :, None].to(x.dtype)
        v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # last column accumulates the normaliser
        g = x.new_zeros(b, h, t)
        s0 = None if state is None else state["state"]
        o, s = gated_linear(q, k, v, g, s0, 1.0, chunk=self.chunk)
        o = o[..., :dk] / (o[..., dk:] + self.eps)
        y = self.out(o.transpose(1, 2).reshape(b, t, h * dk))
        return y, (None if state is None else {"state": s})
