"""HGRN2 (Qin et al. 2024, "HGRN2: Gated Linear RNNs with State Expansion") as a mixer.

HGRN1 is an element-wise gated RNN, h_t = f_t * h_{t-1} + (1 - f_t) * c_t, read out through an
output gate o_t. HGRN2 expands the hidden state without new parameters by turning the products
into outer products, per head:

    f_t = lb + (1 - lb) * sigmoid(W_f x_t)            forget gate per key channel, in (lb, 1)
    S_t = diag(f_t) S_{t-1} + (1 - f_t)^T v_t          S: [E, E] per head (E = expand_ratio)
    o_t = q_t S_t,   q_t = sigmoid(W_q x_t),  v_t = swish(W_v x_t)
    y_t = W_out RMSNorm(o_t)

The input gate is tied to the forget gate (k = 1 - f), and HGRN1's output gate becomes the query
that reads the expanded state. This is the per-channel gated linear recurrence with
g = log f_t, k = 1 - f_t, scale 1, so training uses its chunked form and decoding its O(1) step.

The lower bound lb (the paper increases it with depth, so upper layers keep longer memories) is
a per-mixer option here. log f and 1 - f are computed without cancellation:
f = sigmoid(z) + lb * sigmoid(-z), so log f = logaddexp(logsigmoid(z), log lb + logsigmoid(-z))
and 1 - f = (1 - lb) * sigmoid(-z).

Options (``mixer_options``): ``expand_ratio`` (state width per head, E; heads = d_model / E;
default d_model / n_heads), ``lower_bound`` (0.0), ``chunk`` (64), ``output_gate`` (False: an
extra swish(W_g x) gate on the normalised output, as in the authors' later xmixers code).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.mixers.base import Mixer, State, register_mixer
from core.nn.norms import rms_norm
from core.ops.gated_linear import gated_linear


@register_mixer("hgrn2")
class HGRN2(Mixer):
    bidirectional = False
    options = {"expand_ratio": None, "lower_bound": 0.0, "chunk": 64, "output_gate": False}

    def __init__(self, cfg, causal: bool):
        super().__init__()
        opts = self.read_options(cfg)
        d = cfg.d_model
        self.expand = int(opts["expand_ratio"] or d // cfg.n_heads)
        if d % self.expand:
            raise ValueError(f"hgrn2: expand_ratio={self.expand} must divide d_model={d}")
        self.n_heads = d // self.expand
        self.lower_bound = float(opts["lower_bound"])
        if not 0.0 <= self.lower_bound < 1.0:
            raise ValueError(f"hgrn2: lower_bound={self.lower_bound} must lie in [0, 1)")
        self.chunk = int(opts["chunk"])
        self.eps = cfg.norm_eps
        self.use_output_gate = bool(opts["output_gate"])
        # query (HGRN1's output gate), forget gate, value (+ optional output gate) in one matmul
        self.proj = nn.Linear(d, (4 if self.use_output_gate else 3) * d, bias=cfg.bias)
        self.norm_weight = nn.Parameter(torch.ones(d))
        self.out = nn.Linear(d, d, bias=cfg.bias)

    def init_state(self, batch: int, device, dtype) -> State:
        return {"state": torch.zeros(batch, self.n_heads, self.expand, self.expand, device=device, dtype=dtype)}

    def gates(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forget-gate logits -> (log f, 1 - f), both free of cancellation for any logit."""
        lb = self.lower_bound
        if lb == 0.0:
            return F.logsigmoid(z), torch.sigmoid(-z)
        log_f = torch.logaddexp(F.logsigmoid(z), math.log(lb) + F.logsigmoid(-z))
        return log_f, (1.0 - lb) * torch.sigmoid(-z)

    def forward(self, x, state=None, mask=None, offset=0):
        b, t, d = x.shape
        h, e = self.n_heads, self.expand
        q, f, v, *gate = self.proj(x).split(d, dim=-1)
        g, k = self.gates(f)
        q, k, v, g = (y.view(b, t, h, e).transpose(1, 2) for y in (torch.sigmoid(q), k, F.silu(v), g))
        if mask is not None:  # padding neither writes to (k = 0) nor decays (g = 0) the state
            keep = mask[:, None, :, None].to(x.dtype)
            k, g = k * keep, g * keep
        s0 = None if state is None else state["state"]
        o, s = gated_linear(q, k, v, g, s0, 1.0, chunk=self.chunk)
        o = rms_norm(o.transpose(1, 2).reshape(b, t, d), self.norm_weight, self.eps)
        if gate:
            o = o * F.silu(gate[0])
        return self.out(o), (None if state is None else {"state": s})
