"""Hyena (Poli et al. 2023, "Hyena Hierarchy"; HyenaDNA, Nguyen et al. 2023) as a mixer, order 2.

Attention is replaced by long convolutions interleaved with element-wise gates:

    v, x1, x2 = split(in_proj(x)), each through a short causal depthwise conv (kernel 3)
    y = out_proj( x2 ⊙ (h2 * (x1 ⊙ (h1 * v))) )                 * = causal long convolution

(Definition 3.1 of the paper with N = 2: N + 1 projections and N filters; HyenaDNA's code applies
its first gate before the first filter and so uses one filter fewer.) The long filters are
*implicit*: a small FFN with sine activations maps positional features of the lag l (the
normalised time t = l / (L - 1) and sinusoids cos/sin(2 pi f l / L)) to one tap per channel,
multiplied by an exponential decay window exp(-|delta_c| t) whose rates span fast to slow across
channels. Each long convolution also has a per-channel bias (skip) term: (h * u) + b ⊙ u. Filters
are defined for lags 0 .. max_len-1 (``cfg.max_len``); longer lags count as zero.

Training and prefill run the long convolutions by FFT (O(T log T), core.ops.fftconv).

Decoding. A long convolution has no fixed-size recurrent state, but its filter has a fixed length:
the step keeps, for each long convolution, a window of the last max_len inputs ([B, d, max_len],
shifted by one per step) and computes y_t = sum_j h_j u_{t-j} as a dot product with the reversed
filter. The window's size depends on max_len, not on how many tokens were decoded, so the state
is fixed-size (``fixed_state = True``), O(max_len) per channel rather than the O(N) of an SSM.
The step has no FFT, so it exports to ONNX. Its filter is recomputed by the FFN at each step
(O(max_len * filter_order * d)); nothing is cached between calls.

Padding enters as zero inputs (a convolution has no decay to skip): exact for left padding from
a zero window and for right padding in training; padding in the middle of a sequence still
occupies a time step.

Options (``mixer_options``): ``filter_order`` (FFN width, 64), ``emb_dim`` (positional features,
odd, 5 as in HyenaDNA), ``num_inner_mlps`` (2), ``sin_freq`` (initial sine frequency, 10),
``short_kernel`` (3), ``fast_decay_pct`` / ``slow_decay_pct`` / ``decay_target`` (0.3 / 1.5 /
1e-2: the fastest channel's window falls to 1e-2 at 30% of max_len, the slowest at 150%).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from core.mixers.base import Mixer, State, register_mixer
from core.nn.causal_conv import CausalConv1d
from core.nn.init import KeepInitLinear
from core.ops.fftconv import fftconv


class Sin(nn.Module):
    """sin(w x) with a learnable frequency per feature: the FFN's activation, so that the filter
    can hold high-frequency content (a ReLU FFN of t is too smooth)."""

    def __init__(self, dim: int, freq: float):
        super().__init__()
        self.freq = nn.Parameter(torch.full((dim,), float(freq)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.freq * x)


class ImplicitFilter(nn.Module):
    """``channels`` long filters over lags 0 .. max_len-1, h[c, l] = FFN(z_l)[c] * window[c, l]."""

    def __init__(self, channels: int, max_len: int, emb_dim: int = 5, order: int = 64, num_inner_mlps: int = 2,
                 sin_freq: float = 1.0, fast_decay_pct: float = 0.3, slow_decay_pct: float = 1.5,
                 decay_target: float = 1e-2, groups: int = 1):
        super().__init__()
        if emb_dim < 3 or emb_dim % 2 == 0:
            raise ValueError(f"hyena emb_dim={emb_dim} must be odd and >= 3 (t plus cos/sin pairs)")
        self.max_len = max_len
        # positional features of each lag: t in [0, 1] and (emb_dim - 1) / 2 sinusoid bands
        bands = (emb_dim - 1) // 2
        lag = torch.arange(max_len, dtype=torch.float32)[:, None]
        t = lag / max(max_len - 1, 1)
        f = torch.linspace(1e-4, bands - 1, bands)[None]
        angle = 2 * math.pi * lag / max_len * f
        self.register_buffer("z", torch.cat([t, torch.cos(angle), -torch.sin(angle)], -1), persistent=False)
        self.register_buffer("t", t, persistent=False)
        layers: list[nn.Module] = [KeepInitLinear(emb_dim, order), Sin(order, sin_freq)]
        for _ in range(num_inner_mlps):
            layers += [KeepInitLinear(order, order), Sin(order, sin_freq)]
        layers.append(KeepInitLinear(order, channels, bias=False))
        self.ffn = nn.Sequential(*layers)
        # decay rates from slow to fast across the channels of each of the `groups` filters
        per_group = channels // groups
        rates = torch.linspace(math.log(decay_target) / slow_decay_pct, math.log(decay_target) / fast_decay_pct,
                               per_group).abs().repeat(groups)
        self.register_buffer("rates", rates, persistent=False)
        self.bias = nn.Parameter(torch.randn(channels))
        for p in self.parameters():
            p._no_weight_decay = True  # as in the paper's filter parameters (wd = 0)

    def forward(self, length: int) -> torch.Tensor:
        """Taps for lags 0 .. min(length, max_len)-1: [channels, min(length, max_len)]."""
        n = min(length, self.max_len)
        # fp32 even under bf16 autocast: sin(freq * x) of a bf16 x has lost its phase at the
        # arguments the filter FFN produces (23 % error in the layer's output); the FFN is tiny
        with torch.autocast(self.z.device.type, enabled=False):
            h = self.ffn(self.z[:n])  # [n, channels]
        return (h * torch.exp(-self.t[:n] * self.rates)).transpose(0, 1)


@register_mixer("hyena")
class Hyena(Mixer):
    bidirectional = False
    options = {"short_kernel": 3, "emb_dim": 5, "filter_order": 64, "num_inner_mlps": 2, "sin_freq": 10.0, "fast_decay_pct": 0.3, "slow_decay_pct": 1.5, "decay_target": 1e-2}

    def __init__(self, cfg, causal: bool):
        super().__init__()
        opts = self.read_options(cfg)
        d = self.d_model = cfg.d_model
        self.max_len = cfg.max_len
        self.in_proj = nn.Linear(d, 3 * d, bias=cfg.bias)
        self.short_conv = CausalConv1d(3 * d, kernel=int(opts["short_kernel"]))
        self.filter = ImplicitFilter(
            2 * d, cfg.max_len, emb_dim=int(opts["emb_dim"]), order=int(opts["filter_order"]),
            num_inner_mlps=int(opts["num_inner_mlps"]), sin_freq=float(opts["sin_freq"]),
            fast_decay_pct=float(opts["fast_decay_pct"]), slow_decay_pct=float(opts["slow_decay_pct"]),
            decay_target=float(opts["decay_target"]), groups=2)
        self.out_proj = nn.Linear(d, d, bias=cfg.bias)

    def init_state(self, batch: int, device, dtype) -> State:
        d = self.d_model
        return {"conv": self.short_conv.init_state(batch, device, dtype),
                "window1": torch.zeros(batch, d, self.max_len, device=device, dtype=dtype),
                "window2": torch.zeros(batch, d, self.max_len, device=device, dtype=dtype)}

    def forward(self, x, state=None, mask=None, offset=0):
        b, t, d = x.shape
        u = self.in_proj(x)
        u, conv_state = self.short_conv(u, None if state is None else state["conv"], mask)
        if mask is not None:  # zero every long-convolution input at padding
            u = u * mask[..., None].to(u.dtype)
        v, x1, x2 = u.split(d, dim=-1)
        # decoding needs every lag the window holds; training only the first t
        h = self.filter(self.max_len if state is not None else t)
        h1, h2 = h.split(d, dim=0)
        b1, b2 = self.filter.bias.split(d)
        z, w1 = self._long_conv(v, h1, b1, None if state is None else state["window1"])
        y, w2 = self._long_conv(x1 * z, h2, b2, None if state is None else state["window2"])
        y = self.out_proj(x2 * y)
        return y, (None if state is None else {"conv": conv_state, "window1": w1, "window2": w2})

    def _long_conv(self, u: torch.Tensor, h: torch.Tensor, bias: torch.Tensor, window: torch.Tensor | None):
        """y_t = sum_{j < max_len} h_j u_{t-j} + bias ⊙ u_t for u [B, T, d], h [d, L].
        Without a window: one FFT convolution. With a window [B, d, max_len] of past inputs: a dot
        product for one token, an FFT convolution over window + new inputs for several."""
        if window is None:
            return fftconv(u, h, bias), None
        full = torch.cat([window, u.transpose(1, 2).to(window.dtype)], dim=-1)  # [B, d, max_len + T]
        new_window = full[..., u.shape[1]:]
        if u.shape[1] == 1:
            y = (new_window * h.flip(-1)).sum(-1) + bias * u[:, 0]
            return y[:, None].to(u.dtype), new_window
        y = fftconv(full.transpose(1, 2), h, bias)[:, self.max_len:]
        return y.to(u.dtype), new_window
