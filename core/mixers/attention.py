"""Multi-head attention as a mixer: grouped-query heads, RoPE/ALiBi, padding masks, sliding
windows and a KV cache, all through ``torch.nn.functional.scaled_dot_product_attention``.

The KV cache is the mixer state: ``{"key": [B, Hkv, L, Dh], "value": [B, Hkv, L, Dh]}`` plus
``"mask": [B, L]`` when padding was given. With a sliding window only the last ``window - 1``
keys are kept, so the cache (and the cost of a step) stops growing. Without one, the keys are a
view into a preallocated buffer that each step writes into (:func:`append_cache`), not a new
tensor per step: a ``torch.cat`` copies the whole cache every token.

Attention reads no ``mixer_options``: its sizes are backbone fields (``n_heads``, ``n_kv_heads``,
``window``, ``position``).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from core.mixers.base import Mixer, State, register_mixer
from core.nn.positions import Rotary, alibi_slopes


#: the first buffer holds this many positions; each one after doubles the last
CACHE_BLOCK = 64

#: Below this many keys, training on CPU in bf16/fp16 runs SDPA in float32. PyTorch's CPU flash
#: kernel is fast forward in bf16 but its bf16 backward is 2-3x slower than the float32 one at short
#: lengths (fwd + bwd, torch 2.14, 2-core Xeon with AMX: [30, 4, 130, 64] 181 ms in bf16 vs 51 ms via
#: float32; [64, 4, 32, 64] 50 vs 14 ms); from ~512 keys bf16 wins (causal [8, 8, 512, 64] 216 vs 327).
#: ASR encoders (~130 frames), G2P and sentence-level translation all live below the line.
CPU_LOW_PRECISION_BACKWARD_MAX_KEYS = 256


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs) -> torch.Tensor:
    """``F.scaled_dot_product_attention``, except when training in half precision on CPU with fewer than
    :data:`CPU_LOW_PRECISION_BACKWARD_MAX_KEYS` keys: then float32 inside (autocast off, which would cast
    back), the result in the inputs' dtype. Inference keeps the bf16 kernel (its forward is the fast one)."""
    if (q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16) and torch.is_grad_enabled()
            and k.shape[-2] < CPU_LOW_PRECISION_BACKWARD_MAX_KEYS
            and (q.requires_grad or k.requires_grad or v.requires_grad)):
        mask = kwargs.get("attn_mask")
        if mask is not None and mask.is_floating_point():
            kwargs["attn_mask"] = mask.float()
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), **kwargs).to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, **kwargs)


def append_cache(past: torch.Tensor, new: torch.Tensor, dim: int = 2) -> torch.Tensor:
    """``torch.cat([past, new], dim)``, without copying ``past`` when it can be avoided.

    The result is a view of the first ``L + T`` positions of a buffer with room to spare (twice
    what it holds), so the next call only writes its ``T`` new positions. The buffer remembers how
    far it is filled: only the newest view of it may append in place, so a state that is stepped
    twice (a branch: two continuations of one prefix) gets a copy the second time instead of
    overwriting the first continuation's keys. Rows reordered or dropped by ``index_select`` are
    new tensors and start a new buffer at their next step.

    Graph capture (ONNX export, tracing) and autograd through the cache take the plain ``cat``:
    an exported graph has its own cache inputs and outputs, and writing into a tensor that
    autograd saved for backward is an error.
    """
    if (torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()
            or (torch.is_grad_enabled() and (past.requires_grad or new.requires_grad))):
        return torch.cat([past, new], dim=dim)
    n, t = past.shape[dim], new.shape[dim]
    # (the storage carries the marks: views made in inference mode do not know their base tensor)
    storage = past.untyped_storage()
    filled, room = getattr(storage, "_seqlab_cache", (None, 0))
    size = list(past.shape)
    size[dim] = room
    if (filled == n and n + t <= room and past.storage_offset() == 0 and past.dtype == new.dtype
            and past.stride() == _contiguous_strides(size)
            and (not past.is_inference() or torch.is_inference_mode_enabled())):
        size[dim] = n + t
        out = past.as_strided(size, past.stride())
        out.narrow(dim, n, t).copy_(new)
    else:
        size[dim] = max(CACHE_BLOCK, 2 * (n + t))
        buf = past.new_empty(size, dtype=torch.result_type(past, new))
        buf.narrow(dim, 0, n).copy_(past)
        buf.narrow(dim, n, t).copy_(new)
        storage, out = buf.untyped_storage(), buf.narrow(dim, 0, n + t)
        room = size[dim]
    storage._seqlab_cache = (n + t, room)
    return out


def _contiguous_strides(size: list[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for s in reversed(size):
        strides.append(step)
        step *= s
    return tuple(reversed(strides))


def attention_mask(q_len: int, k_len: int, causal: bool, window: int | None,
                   slopes: torch.Tensor | None, key_mask: torch.Tensor | None,
                   device: torch.device, dtype: torch.dtype) -> torch.Tensor | None:
    """Bias/mask for SDPA, or None when plain (non-)causal attention needs none.

    The ``k_len`` keys end where the ``q_len`` queries end (cache + new tokens), so query ``i`` is
    ``k_len - q_len + i - j`` positions after key ``j``.
    Returns a bool mask [.., q_len, k_len] (True = attend) or a float bias when ALiBi is on.
    """
    if not causal and window is None and slopes is None and key_mask is None:
        return None
    q_pos = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
    k_pos = torch.arange(k_len, device=device)[None, :]
    rel = q_pos - k_pos  # distance back from query to key (negative = future key)
    allowed = torch.ones(q_len, k_len, dtype=torch.bool, device=device)
    if causal:
        allowed = rel >= 0
    if window is not None:
        allowed = allowed & ((rel < window) if causal else (rel.abs() < window))
    allowed = allowed[None, None]  # [1, 1, q, k]
    if key_mask is not None:
        # A padded query might see no key at all (NaN in some runtimes): let every query see
        # itself. Real queries always could, so their outputs do not change.
        allowed = (allowed & key_mask[:, None, None, :]) | (rel == 0)[None, None]
    if slopes is None:
        return allowed
    bias = -slopes.to(dtype)[None, :, None, None] * rel.abs().to(dtype)[None, None]
    return bias.masked_fill(~allowed, float("-inf"))


@register_mixer("attention")
class Attention(Mixer):
    """Self-attention. ``causal`` is decided by the backbone (Encoder: False, Decoder: True)."""

    fixed_state = False  # the KV cache grows by one key per token (capped by a sliding window)

    def __init__(self, cfg, causal: bool):
        super().__init__()
        self.read_options(cfg)  # (none: a stray option is an error, not ignored)
        d, h = cfg.d_model, cfg.n_heads
        self.n_heads, self.n_kv_heads = h, cfg.n_kv_heads or h
        if d % h or h % self.n_kv_heads:
            raise ValueError(f"d_model={d} must divide by n_heads={h}, and n_heads by n_kv_heads={self.n_kv_heads}")
        self.head_dim = d // h
        self.causal, self.window = causal, cfg.window
        self.dropout = cfg.attn_dropout
        self.qkv = nn.Linear(d, (h + 2 * self.n_kv_heads) * self.head_dim, bias=cfg.bias)
        self.out = nn.Linear(d, d, bias=cfg.bias)
        self.rotary = Rotary(self.head_dim, cfg.max_len) if cfg.position == "rope" else None
        if cfg.position == "alibi":
            self.register_buffer("slopes", alibi_slopes(h), persistent=False)
        else:
            self.slopes = None

    def init_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> State:
        empty = torch.zeros(batch, self.n_kv_heads, 0, self.head_dim, device=device, dtype=dtype)
        return {"key": empty, "value": empty.clone()}

    def forward(self, x, state=None, mask=None, offset=0):
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, -1, self.head_dim).transpose(1, 2).split(
            [self.n_heads, self.n_kv_heads, self.n_kv_heads], dim=1)
        if self.rotary is not None:
            q, k = self.rotary(q, offset), self.rotary(k, offset)
        key_mask = mask
        if state is not None:
            if self.window is None:
                k, v = append_cache(state["key"], k), append_cache(state["value"], v)
            else:  # (the cache is trimmed to the window below: a buffer would not grow)
                k, v = torch.cat([state["key"], k], dim=2), torch.cat([state["value"], v], dim=2)
            if "mask" in state or mask is not None:
                past = state.get("mask")
                if past is None:
                    past = torch.ones(b, k.shape[2] - t, dtype=torch.bool, device=x.device)
                now = mask if mask is not None else torch.ones(b, t, dtype=torch.bool, device=x.device)
                key_mask = torch.cat([past, now], dim=1)
        y = self._attend(q, k, v, key_mask)
        if state is not None:
            keep = k.shape[2] if self.window is None else min(k.shape[2], self.window - 1)
            state = {"key": k[:, :, -keep:], "value": v[:, :, -keep:]}
            if key_mask is not None:
                state["mask"] = key_mask[:, -keep:]
        return self.out(y.transpose(1, 2).reshape(b, t, -1)), state

    def _attend(self, q, k, v, key_mask):
        if self.n_kv_heads != self.n_heads:
            rep = self.n_heads // self.n_kv_heads
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        q_len, k_len = q.shape[2], k.shape[2]
        p = self.dropout if self.training else 0.0
        plain_causal = self.causal and self.window is None and self.slopes is None and key_mask is None
        if plain_causal and q_len == k_len:
            return sdpa(q, k, v, is_causal=True, dropout_p=p)
        if plain_causal and q_len == 1:  # one new token sees the whole cache
            return sdpa(q, k, v, dropout_p=p)
        bias = attention_mask(q_len, k_len, self.causal, self.window, self.slopes, key_mask, q.device, q.dtype)
        return sdpa(q, k, v, attn_mask=bias, dropout_p=p)


class CrossAttention(nn.Module):
    """Decoder-to-encoder attention. The encoder's keys/values are computed once per source
    (:meth:`memory_state`) and reused at every decoding step.

    SDPA does not return its attention weights; plots and alignment losses get them from
    ``forward(..., need_weights=True)`` or, for a layer deep inside a backbone, from
    :meth:`recording` (weights [B, heads, T, S], with gradients when the forward has them)."""

    def __init__(self, cfg):
        super().__init__()
        d, h = cfg.d_model, cfg.n_heads
        self.n_heads, self.head_dim = h, d // h
        self.dropout = cfg.attn_dropout
        self.q = nn.Linear(d, d, bias=cfg.bias)
        self.kv = nn.Linear(d, 2 * d, bias=cfg.bias)
        self.out = nn.Linear(d, d, bias=cfg.bias)
        self._records: list[torch.Tensor] | None = None

    @contextmanager
    def recording(self):
        """``with cross.recording() as weights:`` every forward inside appends its attention
        weights [B, heads, T, S] to the list ``weights``; nothing is kept after the block."""
        records: list[torch.Tensor] = []
        self._records = records
        try:
            yield records
        finally:
            self._records = None

    def memory_state(self, memory: torch.Tensor, memory_mask: torch.Tensor | None) -> State:
        b, s, _ = memory.shape
        k, v = self.kv(memory).view(b, s, 2, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        state = {"key": k, "value": v}
        if memory_mask is not None:
            state["mask"] = memory_mask
        return state

    def forward(self, x: torch.Tensor, memory: State, need_weights: bool = False):
        """-> output [B, T, D], or (output, weights [B, heads, T, S]) with ``need_weights``.

        ``memory`` may hold fewer rows than ``x`` (B = beams × memory rows, hypotheses of one
        source consecutive; see :class:`core.models.DecoderState`): the beams of each source then
        become extra query positions against the one copy of its keys/values."""
        b, t, _ = x.shape
        rows = memory["key"].shape[0]
        beams = b // rows
        q = self.q(x).view(rows, beams, t, self.n_heads, self.head_dim).permute(0, 3, 1, 2, 4)
        q = q.reshape(rows, self.n_heads, beams * t, self.head_dim)
        mask = memory.get("mask")
        mask = None if mask is None else mask[:, None, None, :]
        p = self.dropout if self.training else 0.0
        y = sdpa(q, memory["key"], memory["value"], attn_mask=mask, dropout_p=p)
        out = self.out(self._unfold(y, beams, t).transpose(1, 2).reshape(b, t, -1))
        if not need_weights and self._records is None:
            return out
        scores = q @ memory["key"].transpose(-1, -2) / self.head_dim**0.5
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = self._unfold(scores.softmax(-1), beams, t)  # (before dropout: what SDPA used, in expectation)
        if self._records is not None:
            self._records.append(weights)
        return (out, weights) if need_weights else out

    @staticmethod
    def _unfold(y: torch.Tensor, beams: int, t: int) -> torch.Tensor:
        """[rows, heads, beams * T, E] -> [rows * beams, heads, T, E]"""
        rows, h, _, e = y.shape
        return y.view(rows, h, beams, t, e).transpose(1, 2).reshape(rows * beams, h, t, e)
