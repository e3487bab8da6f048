"""RWKV-6 "Finch" time mixing (Peng et al. 2024, "Eagle and Finch: RWKV with Matrix-Valued States
and Dynamic Recurrence") as a mixer. The channel mixing of an RWKV block is the backbone's MLP.

Token shift with data-dependent interpolation (ddlerp): every projection reads its own mix of the
current token x_t and the previous one x_{t-1}, with mixing weights made by a small LoRA of x:

    lerp(a, b, mu) = a + (b - a) * mu
    ddlerp_s(x_t, x_{t-1}) = lerp(x_t, x_{t-1}, mu_s + lora_s(lerp(x_t, x_{t-1}, mu_x)))
    lora(y) = tanh(y A) B                                    for s in {w, k, v, r, g}

    r, k, v = W_r ddlerp_r, W_k ddlerp_k, W_v ddlerp_v;   g = SiLU(W_g ddlerp_g)
    w_t = exp(-exp(d + lora_d(ddlerp_w)))                  per-channel, data-dependent decay in (0, 1)

Per head (r, k, w, u: [Dk]; v: [Dv]), the wkv recurrence with the "bonus" u for the current token:

    S_t = diag(w_t) S_{t-1} + k_t^T v_t
    o_t = r_t (S_{t-1} + diag(u) k_t^T v_t)

then GroupNorm per head on o, times g, and the output projection. The recurrence is
:func:`core.ops.gated_linear.gated_linear` with q = r, per-channel log gates g = log w_t =
-exp(...) and the keyword ``u`` (chunked in training and prefill, O(1) per decoding step).

Decoding state: ``{"shift": [B, D] the previous token's (normalised) input, "state": [B, H, Dk, Dv]}``.
Padding neither writes (k = 0) nor decays (log w = 0) the state, and does not advance the shift:
a real token always shifts from the last *real* token before it (for left padding: the state's
shift value).

Initialisation follows the reference RWKV-LM v6 code, which depends on the layer's depth; a mixer
does not know its layer index, so ``init_depth`` (0 = first layer, 1 = last; default 0.5) stands
in for it. There is no parity test against HF transformers: it implements RWKV-4 only.

Options (``mixer_options``): ``chunk`` (tokens per chunk of the parallel form, default 64),
``mix_lora`` (rank of the ddlerp LoRA, default 32), ``decay_lora`` (rank of the decay LoRA,
default 64), ``init_depth`` (default 0.5).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.mixers.base import Mixer, State, register_mixer
from core.ops.gated_linear import gated_linear


@register_mixer("rwkv6")
class RWKV6(Mixer):
    bidirectional = False
    options = {"chunk": 64, "mix_lora": 32, "decay_lora": 64, "init_depth": 0.5}

    def __init__(self, cfg, causal: bool):
        super().__init__()
        opts = self.read_options(cfg)
        d, h = cfg.d_model, cfg.n_heads
        self.d_model, self.n_heads, self.head_dim = d, h, d // h
        self.chunk = int(opts["chunk"])
        mix_lora, decay_lora = int(opts["mix_lora"]), int(opts["decay_lora"])
        depth = float(opts["init_depth"])  # ratio_0_to_1 of the reference code
        early = 1.0 - depth  # ratio_1_to_almost0

        # Raw parameters (not nn.Linear), so the backbone's GPT-2 init leaves RWKV's own init alone.
        ddd = torch.arange(d, dtype=torch.float32) / d
        self.mu_x = nn.Parameter(1.0 - ddd.pow(early))
        self.mu = nn.Parameter(torch.stack([  # rows: w, k, v, r, g
            1.0 - ddd.pow(early), 1.0 - ddd.pow(early), 1.0 - (ddd.pow(early) + 0.3 * depth),
            1.0 - ddd.pow(0.5 * early), 1.0 - ddd.pow(0.5 * early)]))
        self.mix_a = nn.Parameter(torch.zeros(d, 5 * mix_lora))  # zero: the LoRA starts as a no-op
        self.mix_b = nn.Parameter(torch.empty(5, mix_lora, d).uniform_(-0.01, 0.01))
        n = torch.arange(d, dtype=torch.float32) / max(d - 1, 1)
        self.decay = nn.Parameter(-6.0 + 5.0 * n.pow(0.7 + 1.3 * depth))  # slow to fast channels
        self.decay_a = nn.Parameter(torch.zeros(d, decay_lora))
        self.decay_b = nn.Parameter(torch.empty(decay_lora, d).uniform_(-0.01, 0.01))
        zigzag = ((torch.arange(d) + 1) % 3 - 1) * 0.1
        self.bonus = nn.Parameter((depth * (1.0 - n) + zigzag).view(h, self.head_dim))

        self.receptance = nn.Linear(d, d, bias=False)
        self.key = nn.Linear(d, d, bias=False)
        self.value = nn.Linear(d, d, bias=False)
        self.gate = nn.Linear(d, d, bias=False)
        self.out = nn.Linear(d, d, bias=cfg.bias)
        self.norm = nn.GroupNorm(h, d, eps=64e-5)  # RWKV-6's eps: 1e-5 * head_size_divisor**2

    def init_state(self, batch: int, device, dtype) -> State:
        return {"shift": torch.zeros(batch, self.d_model, device=device, dtype=dtype),
                "state": torch.zeros(batch, self.n_heads, self.head_dim, self.head_dim, device=device, dtype=dtype)}

    def forward(self, x, state=None, mask=None, offset=0):
        b, t, d = x.shape
        h, dh = self.n_heads, self.head_dim
        prev, shift = self._previous(x, None if state is None else state["shift"], mask)
        xx = prev - x
        lora_in = x + xx * self.mu_x
        mix = torch.tanh(lora_in @ self.mix_a).view(b, t, 5, -1)
        mix = torch.einsum("btfr,frd->fbtd", mix, self.mix_b)  # [5, B, T, D]
        xw, xk, xv, xr, xg = (x + xx * (self.mu[:, None, None, :] + mix)).unbind(0)

        r, k, v = self.receptance(xr), self.key(xk), self.value(xv)
        g = F.silu(self.gate(xg))
        log_w = -torch.exp(self.decay + torch.tanh(xw @ self.decay_a) @ self.decay_b)  # log w_t <= 0
        if mask is not None:  # padding neither writes to nor decays the state
            keep = mask[..., None].to(x.dtype)
            k, log_w = k * keep, log_w * keep
        r, k, v, log_w = (y.view(b, t, h, dh).transpose(1, 2) for y in (r, k, v, log_w))
        o, s = gated_linear(r, k, v, log_w, None if state is None else state["state"], 1.0,
                            chunk=self.chunk, u=self.bonus)
        o = self.norm(o.transpose(1, 2).reshape(b * t, d)).view(b, t, d)
        y = self.out(o * g)
        return y, (None if state is None else {"shift": shift, "state": s})

    def _previous(self, x: torch.Tensor, shift: torch.Tensor | None, mask: torch.Tensor | None):
        """x_{t-1} for every t, and the new shift state (the last real token's x).

        Before the first token comes the state's shift (zeros without a state). With padding, the
        previous token of t is the last *real* token before t, found with a running maximum over
        the positions of real tokens, so padding anywhere is skipped."""
        b, t, d = x.shape
        first = x.new_zeros(b, d) if shift is None else shift.to(x.dtype)
        if t == 1:  # decoding: straight-line code (exports to ONNX)
            new = x[:, 0] if mask is None else torch.where(mask[:, :1], x[:, 0], first)
            return first[:, None], new
        ext = torch.cat([first[:, None], x], dim=1)  # index 0: the token before this call
        if mask is None:
            return ext[:, :-1], ext[:, -1]
        pos = torch.arange(1, t + 1, device=x.device) * mask  # ext index of each real token, 0 at padding
        last = pos.cummax(dim=1).values  # last real token at or before t
        before = F.pad(last[:, :-1], (1, 0))  # last real token strictly before t
        prev = ext.gather(1, before[..., None].expand(b, t, d))
        return prev, ext.gather(1, last[:, -1:, None].expand(b, 1, d))[:, 0]
