"""Informer (Zhou et al. 2021): ProbSparse self-attention, self-attention distilling between encoder
layers, and a generative-style decoder that writes the whole horizon in one forward pass.

* **ProbSparse attention.** Only the ``u = factor * ln L`` queries whose attention is furthest from
  uniform (max minus mean of their scores against ``u`` sampled keys) attend; the others take the
  mean of the values (or, causally, the running mean). Cost O(L log L) instead of O(L^2). When
  ``u`` reaches the length it is exactly full attention (tested). One set of keys is sampled for
  all queries of a call (the paper draws a set per query, which materialises a [B, H, L, u, D]
  tensor and made training ten times slower here; the estimate of each query's sparsity is
  as unbiased either way): at random in training, evenly spaced in evaluation, so inference is
  deterministic.
* **Distilling.** Between encoder layers a circular convolution, batch norm, ELU and a stride-2
  max-pool halve the sequence, so deeper layers attend over the dominant features.
* **Generative decoder.** Its input is the last ``label_len`` known steps followed by ``horizon``
  zeros, with the calendar features of all of them; causal ProbSparse self-attention, full
  cross-attention to the encoder, and the horizon read off the last ``horizon`` positions.

Inputs are embedded as in the paper: a circular convolution over the values, sinusoidal
positions and a linear map of the calendar features. Outputs are ``[B, horizon, C, head.size]``.
Informer as published has no instance normalisation; ``revin`` applies to patch models only.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from apps.timeseries.models.config import ForecastConfig
from core.nn import Dropout


def prob_sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, factor: int, causal: bool,
                          training: bool) -> torch.Tensor:
    """q [B, H, Lq, D], k/v [B, H, Lk, D] -> [B, H, Lq, D]."""
    b, h, lq, d = q.shape
    lk = k.shape[2]
    keys = min(lk, factor * math.ceil(math.log(lk + 1)))
    active = min(lq, factor * math.ceil(math.log(lq + 1)))
    if training:
        sample = torch.randint(lk, (keys,), device=q.device)
    else:
        sample = torch.linspace(0, lk - 1, keys, device=q.device).round().long()
    sampled = q @ k[:, :, sample].transpose(-2, -1)  # [B, H, Lq, keys]: every query against the sampled keys
    sparsity = sampled.max(-1).values - sampled.sum(-1) / lk
    top = sparsity.topk(active, dim=-1).indices  # [B, H, u]
    if causal:
        context = v.cumsum(2) / torch.arange(1, lk + 1, device=v.device, dtype=v.dtype)[:, None]
    else:
        context = v.mean(2, keepdim=True).expand(b, h, lq, d)
    chosen = q.gather(2, top[..., None].expand(-1, -1, -1, d))
    scores = chosen @ k.transpose(-2, -1) / math.sqrt(d)  # [B, H, u, Lk]
    if causal:
        scores = scores.masked_fill(torch.arange(lk, device=q.device) > top[..., None], float("-inf"))
    out = scores.softmax(-1) @ v
    return context.clone().scatter(2, top[..., None].expand(-1, -1, -1, d), out)


class Attention(nn.Module):
    """Multi-head attention, ProbSparse (``factor``) or full (``factor=None``, cross-attention)."""

    def __init__(self, d_model: int, heads: int, factor: int | None, causal: bool = False):
        super().__init__()
        self.heads, self.factor, self.causal = heads, factor, causal
        self.q, self.k, self.v, self.o = (nn.Linear(d_model, d_model) for _ in range(4))

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        src = x if memory is None else memory
        split = lambda t: t.reshape(t.shape[0], t.shape[1], self.heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(x)), split(self.k(src)), split(self.v(src))
        if self.factor is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        else:
            out = prob_sparse_attention(q, k, v, self.factor, self.causal, self.training)
        return self.o(out.transpose(1, 2).reshape(x.shape))


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), Dropout(dropout), nn.Linear(d_ff, d_model))

    def forward(self, x):
        return self.net(x)


class EncoderLayer(nn.Module):
    """Post-norm, as the paper: x + attention -> norm -> x + feed-forward -> norm."""

    def __init__(self, d: int, heads: int, d_ff: int, factor: int, dropout: float):
        super().__init__()
        self.attn, self.ff = Attention(d, heads, factor), FeedForward(d, d_ff, dropout)
        self.norm1, self.norm2, self.drop = nn.LayerNorm(d), nn.LayerNorm(d), Dropout(dropout)

    def forward(self, x):
        x = self.norm1(x + self.drop(self.attn(x)))
        return self.norm2(x + self.drop(self.ff(x)))


class Distil(nn.Module):
    """Halve the sequence between encoder layers (conv -> batch norm -> ELU -> max-pool /2)."""

    def __init__(self, d: int):
        super().__init__()
        self.conv = nn.Conv1d(d, d, 3, padding=1, padding_mode="circular")
        self.norm = nn.BatchNorm1d(d)

    def forward(self, x):
        x = F.elu(self.norm(self.conv(x.transpose(1, 2))))
        return F.max_pool1d(x, 3, stride=2, padding=1).transpose(1, 2)


class DecoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, d_ff: int, factor: int, dropout: float):
        super().__init__()
        self.self_attn = Attention(d, heads, factor, causal=True)
        self.cross = Attention(d, heads, None)
        self.ff = FeedForward(d, d_ff, dropout)
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(3))
        self.drop = Dropout(dropout)

    def forward(self, x, memory):
        x = self.norms[0](x + self.drop(self.self_attn(x)))
        x = self.norms[1](x + self.drop(self.cross(x, memory)))
        return self.norms[2](x + self.drop(self.ff(x)))


class Embedding(nn.Module):
    """Values (circular conv over the channels), sinusoidal positions and calendar features."""

    def __init__(self, channels: int, time_features: int, d: int, dropout: float, max_len: int):
        super().__init__()
        self.values = nn.Conv1d(channels, d, 3, padding=1, padding_mode="circular", bias=False)
        self.time = nn.Linear(time_features, d, bias=False) if time_features else None
        position = torch.arange(max_len)[:, None]
        freq = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        table = torch.zeros(max_len, d)
        table[:, 0::2], table[:, 1::2] = torch.sin(position * freq), torch.cos(position * freq)[:, : d // 2]
        self.register_buffer("positions", table, persistent=False)
        self.drop = Dropout(dropout)

    def forward(self, x, time):
        out = self.values(x.transpose(1, 2)).transpose(1, 2) + self.positions[: x.shape[1]]
        if self.time is not None:
            out = out + self.time(time)
        return self.drop(out)


class Informer(nn.Module):
    def __init__(self, cfg: ForecastConfig, head_size: int):
        super().__init__()
        self.cfg, self.head_size = cfg, head_size
        b = cfg.backbone
        d, d_ff = b.d_model, b.d_ff or 4 * b.d_model
        length = cfg.lookback + cfg.label_len + cfg.horizon
        self.enc_embed = Embedding(cfg.channels_in, cfg.time_features, d, b.dropout, length)
        self.dec_embed = Embedding(cfg.channels_in, cfg.time_features, d, b.dropout, length)
        self.encoder = nn.ModuleList(EncoderLayer(d, b.n_heads, d_ff, cfg.factor, b.dropout) for _ in range(b.n_layers))
        self.distil = nn.ModuleList(Distil(d) for _ in range(b.n_layers - 1)) if cfg.distil else None
        self.enc_norm = nn.LayerNorm(d)
        self.decoder = nn.ModuleList(DecoderLayer(d, b.n_heads, d_ff, cfg.factor, b.dropout)
                                     for _ in range(cfg.decoder_layers))
        self.dec_norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, cfg.channels_in * head_size)

    def encode(self, past, past_time):
        x = self.enc_embed(past, past_time)
        for i, layer in enumerate(self.encoder):
            x = layer(x)
            if self.distil is not None and i < len(self.distil):
                x = self.distil[i](x)
        return self.enc_norm(x)

    def forward(self, past: torch.Tensor, head, future: torch.Tensor | None = None, past_time=None,
                future_time=None) -> torch.Tensor:
        cfg = self.cfg
        if cfg.time_features and (past_time is None or future_time is None):
            raise ValueError("Informer reads calendar features: the batch needs past_time and future_time")
        memory = self.encode(past, past_time)
        start = past[:, cfg.lookback - cfg.label_len:]
        x = torch.cat([start, torch.zeros(past.shape[0], cfg.horizon, past.shape[2], device=past.device,
                                          dtype=past.dtype)], 1)
        time = None if not cfg.time_features else torch.cat([past_time[:, cfg.lookback - cfg.label_len:], future_time], 1)
        h = self.dec_embed(x, time)
        for layer in self.decoder:
            h = layer(h, memory)
        out = self.out(self.dec_norm(h[:, -cfg.horizon:]))
        return out.reshape(past.shape[0], cfg.horizon, past.shape[2], self.head_size)
