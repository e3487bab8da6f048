"""Forgetting Attention (Lin et al. 2025, "Forgetting Transformer: Softmax Attention with a Forget
Gate", FoX) as a mixer.

Softmax attention whose logits are biased by a data-dependent forget gate, per head:

    f_t = sigmoid(w_f . x_t + b_f)                           (a scalar per head and token)
    o_i = sum_j softmax_j(q_i k_j / sqrt(d) + D_i - D_j) v_j,  D_i = sum_{l <= i} log f_l

so key j's weight for query i is multiplied by prod_{l=j+1}^{i} f_l: a learned, content-dependent
recency bias (ALiBi is the special case of a constant gate). The paper uses no positional rotation,
and neither does this mixer. Parallel form: one cumsum of log f and the bias D_i - D_j, with the
causal and padding masks as -inf, handed to ``F.scaled_dot_product_attention`` as a float mask
(prefill, decoding, sliding windows, bf16). Training in float32 uses an equivalent form without
the [B, H, T, T] bias (D_i cancels in the softmax; -D_j rides in q.k as an extra feature, so the
fused causal kernel runs in O(T) memory; the attention call is about 3x faster on CPU at
T = 1024): see :meth:`ForgettingAttention._attend_folded`.

Decoding state (it grows like attention's KV cache, hence ``fixed_state = False``):
``{"key": [B, H, L, Dh], "value": [B, H, L, Dh], "logf": [B, H, L]}`` where ``logf[.., j]`` is the
log forget factor from key j to the newest cached position, sum_{l=j+1}^{last} log f_l (<= 0).
Storing each key's decay *to the present* rather than the running cumulative D_j plus a total
keeps every stored number a difference taken in causal order: D itself drifts without bound over a
long decode (fp32 would lose the small differences that matter), while the decay to the present
only grows more negative for keys whose weight is vanishing anyway. A step adds the new token's
log f to every entry (O(L), like reading the cache). Padded keys get ``logf = -inf``, so they stay
masked in every later step without a separate cache mask.

Options (``mixer_options``): ``qk_norm`` (per-head RMSNorm on q and k) and ``output_gate``
(sigmoid(W x) on the attention output), two parts of the paper's "Pro" block; both off by default.
``cfg.window`` (sliding window) is honoured as in :mod:`core.mixers.attention`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.mixers.attention import append_cache, attention_mask, sdpa
from core.mixers.base import Mixer, State, register_mixer


@register_mixer("forgetting_attention")
class ForgettingAttention(Mixer):
    # The forget gate decays along reading order: encoders run one copy per direction.
    bidirectional = False
    fixed_state = False  # the KV cache grows by one key per token
    options = {"qk_norm": False, "output_gate": False}

    def __init__(self, cfg, causal: bool):
        super().__init__()
        d, h = cfg.d_model, cfg.n_heads
        opts = self.read_options(cfg)
        self.n_heads, self.head_dim = h, d // h
        self.window = cfg.window
        self.dropout = cfg.attn_dropout
        self.qkv = nn.Linear(d, 3 * d, bias=cfg.bias)
        self.fgate = nn.Linear(d, h, bias=True)  # (zero bias after init: f ~ 0.5, as in the paper's code)
        self.out = nn.Linear(d, d, bias=cfg.bias)
        self.qk_norm = bool(opts["qk_norm"])
        if self.qk_norm:
            self.q_scale = nn.Parameter(torch.ones(h, 1, self.head_dim))
            self.k_scale = nn.Parameter(torch.ones(h, 1, self.head_dim))
        self.ogate = nn.Linear(d, d, bias=False) if opts["output_gate"] else None

    def init_state(self, batch: int, device, dtype) -> State:
        empty = torch.zeros(batch, self.n_heads, 0, self.head_dim, device=device, dtype=dtype)
        return {"key": empty, "value": empty.clone(),
                "logf": torch.zeros(batch, self.n_heads, 0, device=device, dtype=dtype)}

    def forward(self, x, state=None, mask=None, offset=0):
        b, t, _ = x.shape
        h, dh = self.n_heads, self.head_dim
        q, k, v = self.qkv(x).view(b, t, 3, h, dh).permute(2, 0, 3, 1, 4)  # [B, H, T, Dh] each
        if self.qk_norm:
            q, k = F.rms_norm(q, (dh,)) * self.q_scale, F.rms_norm(k, (dh,)) * self.k_scale
        # log forget gates in at least float32 (their sums feed every logit), 0 at padding
        f_pre = self.fgate(x)
        logf = F.logsigmoid(f_pre.to(torch.promote_types(f_pre.dtype, torch.float32))).transpose(1, 2)  # [B, H, T]
        if mask is not None:
            logf = logf * mask[:, None, :]
        cum = logf.cumsum(-1)  # D_i - D_{start-1}: decay from the start of this call to query i
        p = self.dropout if self.training else 0.0
        if state is None and self.window is None and q.dtype in (torch.float32, torch.float64):
            y = self._attend_folded(q, k, v, cum, mask, p)
        else:
            y, k, v, key_decay, key_mask = self._attend_with_bias(q, k, v, cum, state, mask, p)
        y = y.transpose(1, 2).reshape(b, t, h * dh)
        if self.ogate is not None:
            y = y * torch.sigmoid(self.ogate(x))
        y = self.out(y)
        if state is None:
            return y, None
        new_decay = key_decay + cum[..., -1:]  # every key's decay to the newest position
        if key_mask is not None:
            new_decay = new_decay.masked_fill(~key_mask[:, None, :], float("-inf"))
        keep = k.shape[2] if self.window is None else min(k.shape[2], self.window - 1)
        return y, {"key": k[:, :, -keep:], "value": v[:, :, -keep:],
                   "logf": new_decay[..., -keep:].to(state["logf"].dtype)}

    def _attend_with_bias(self, q, k, v, cum, state, mask, p):
        """The paper's form: bias[i, j] = D_i - D_j = cum_i + key_decay_j with key_decay_j =
        D_{start-1} - D_j (cached keys: their stored decay; new keys: -cum_j), every entry <= 0,
        plus -inf where the causal/window/padding masks forbid. Used for prefill and decoding
        (the cache joins the keys), sliding windows, and low-precision dtypes."""
        b, t = cum.shape[0], cum.shape[-1]
        key_decay, key_mask = -cum, mask
        if state is not None:
            key_decay = torch.cat([state["logf"].to(key_decay.dtype), key_decay], dim=-1)
            if self.window is None:
                k, v = append_cache(state["key"], k), append_cache(state["value"], v)
            else:  # (trimmed to the window afterwards: a buffer would not grow)
                k, v = torch.cat([state["key"], k], dim=2), torch.cat([state["value"], v], dim=2)
            if mask is not None:  # cached padded keys are masked by their -inf decay already
                key_mask = torch.cat([mask.new_ones(b, k.shape[2] - t), mask], dim=1)
        allowed = attention_mask(t, k.shape[2], True, self.window, None, key_mask, q.device, torch.float32)
        bias = (cum[..., :, None] + key_decay[..., None, :]).masked_fill(~allowed, float("-inf"))
        y = sdpa(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=p)
        return y, k, v, key_decay, key_mask

    def _attend_folded(self, q, k, v, cum, mask, p):
        """Training form without a [T, T] bias. Softmax is invariant to a per-query shift, so D_i
        drops out and only -D_j remains: a number per key, which rides in q.k as one extra
        feature (1 on the query side, -D_j on the key side). The causal mask is then SDPA's own
        ``is_causal`` and the fused kernel runs in O(T) memory (v gets a zero column too: the CPU
        flash kernel wants equal head sizes). Padded keys get -1e30, i.e. weight 0 for every real
        query, while padded queries still see something (no NaN rows).
        float32/64 only: -D_j grows with T, and its rounding is that of D itself (the cumsum
        carries the same error), but in bf16 it would swamp the differences that matter."""
        dh = q.shape[-1]
        neg_d = -cum if mask is None else (-cum).masked_fill(~mask[:, None, :], -1e30)
        q = torch.cat([q * dh**-0.5, torch.ones_like(q[..., :1])], dim=-1)
        k = torch.cat([k, neg_d[..., None].to(k.dtype)], dim=-1)
        v = torch.cat([v, torch.zeros_like(v[..., :1])], dim=-1)
        return sdpa(q, k, v, is_causal=True, scale=1.0, dropout_p=p)[..., :dh]
