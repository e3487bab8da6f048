"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?") as mixers.

Both drop the hidden-state dependence from the gates of GRU / LSTM, so a gate at step t depends
on x_t alone and the recurrence becomes a diagonal linear one, trainable in parallel:

    minGRU:   z_t = sigmoid(W_z x_t),  h~_t = g(W_h x_t)
              h_t = (1 - z_t) * h_{t-1} + z_t * h~_t
    minLSTM:  f_t = sigmoid(W_f x_t),  i_t = sigmoid(W_i x_t),  h~_t = g(W_h x_t)
              f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)
              h_t = f'_t * h_{t-1} + i'_t * h~_t

with g(x) = x + 0.5 for x >= 0, sigmoid(x) otherwise (the paper's positive activation, which its
log-space form needs; kept here so the model is the paper's). The recurrence runs at width
``expand * d_model`` (the paper's expanded variant; one fused input Linear) and a Linear maps
back to d_model.

The paper trains with a log-space parallel scan (its Appendix, after Heinsen 2023):
log h_t = a*_t + logcumsumexp(log b - a*)_t with a*_t = sum_{s<=t} log a_s. That needs b > 0
(hence g), an exp and a log per element, and a cumulative sum of log gates that grows without
bound over long sequences, so in float32 log b - a* loses absolute precision as T grows. This
module uses instead :func:`core.ops.linear_scan.linear_scan`, a blocked two-level scan made only
of products of gates in [0, 1] and sums: exact to rounding at any length, no logcumsumexp, and
a hand-written backward (no per-token autograd graph). Decoding is one multiply-add per token.

State: ``{"h": [B, expand * d_model]}``. Padding (mask False) sets a = 1, b = 0: the state
passes through untouched. Options: ``expand`` (default 2), ``block`` (scan block size, default
about sqrt(T)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.mixers.base import Mixer, State, register_mixer
from core.ops.linear_scan import linear_scan, linear_scan_step


def positive(x: torch.Tensor) -> torch.Tensor:
    """The paper's g: x + 0.5 for x >= 0, sigmoid(x) below; continuous at 0 and always > 0."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def _scan_dtype(dtype: torch.dtype) -> torch.dtype:
    """The recurrence accumulates over the whole sequence: at least float32 (also under bf16)."""
    return torch.promote_types(dtype, torch.float32)


class _MinRNN(Mixer):
    """Shared body: fused input projection -> (a, b) coefficients -> diagonal scan -> output."""

    bidirectional = False
    #: how many width-D_hidden slices the input projection produces (gates + candidate)
    n_proj: int
    options = {"expand": 2, "block": None}

    def __init__(self, cfg, causal: bool):
        super().__init__()
        opts = self.read_options(cfg)
        self.hidden = max(1, int(round(float(opts["expand"]) * cfg.d_model)))
        block = opts["block"]
        self.block = None if block is None else int(block)
        # gates always have a bias: it sets how much a gate keeps by default
        self.proj = nn.Linear(cfg.d_model, self.n_proj * self.hidden, bias=True)
        self.out = nn.Linear(self.hidden, cfg.d_model, bias=cfg.bias)

    def coefficients(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected input [B, T, n_proj * D_hidden] -> (a, b) of h_t = a_t h_{t-1} + b_t."""
        raise NotImplementedError

    def init_state(self, batch: int, device, dtype) -> State:
        return {"h": torch.zeros(batch, self.hidden, device=device, dtype=_scan_dtype(dtype))}

    def forward(self, x, state=None, mask=None, offset=0):
        a, b = self.coefficients(self.proj(x).to(_scan_dtype(x.dtype)))
        if mask is not None:  # padding keeps the state as it is
            pad = ~mask[..., None]
            a, b = a.masked_fill(pad, 1.0), b.masked_fill(pad, 0.0)
        if state is not None and x.shape[1] == 1:  # decoding: O(1) step
            h = linear_scan_step(a[:, 0], b[:, 0], state["h"])[:, None]
        else:
            h = linear_scan(a, b, None if state is None else state["h"], block=self.block)
        y = self.out(h.to(x.dtype))
        return y, (None if state is None else {"h": h[:, -1].clone()})  # not a view pinning all of h


@register_mixer("mingru")
class MinGRU(_MinRNN):
    n_proj = 2

    def coefficients(self, u):
        k, cand = u.chunk(2, dim=-1)
        # 1 - sigmoid(k) = sigmoid(-k): no cancellation when z is close to 1
        return torch.sigmoid(-k), torch.sigmoid(k) * positive(cand)


@register_mixer("minlstm")
class MinLSTM(_MinRNN):
    n_proj = 3

    def coefficients(self, u):
        lf, li, cand = u.chunk(3, dim=-1)
        # f / (f + i) = sigmoid(log f - log i): the normalised gates without dividing small numbers
        diff = F.logsigmoid(lf) - F.logsigmoid(li)
        return torch.sigmoid(diff), torch.sigmoid(-diff) * positive(cand)
