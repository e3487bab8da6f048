"""Position information. Two families:

* additive embeddings added to the input once (``sinusoidal``, ``learned``), handled by the backbone;
* relative schemes applied inside attention (``rope`` rotates queries/keys, ``alibi`` adds a distance
  bias), handled by the attention mixer through :class:`Rotary` and :func:`alibi_slopes`.

Every scheme takes an absolute ``offset`` so that incremental decoding sees the same positions as a
full forward pass.
"""
from __future__ import annotations

import math

import torch
from torch import nn

ADDITIVE = ("sinusoidal", "learned")
RELATIVE = ("rope", "alibi")
ALL_POSITIONS = ADDITIVE + RELATIVE + ("none",)


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """The table of Vaswani et al. (2017): sin on even channels, cos on odd ones."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class AdditivePositions(nn.Module):
    """Sinusoidal (fixed) or learned absolute position embeddings, added to the input features."""

    def __init__(self, kind: str, max_len: int, dim: int):
        super().__init__()
        self.kind = kind
        if kind == "learned":
            self.table = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        else:
            self.register_buffer("table", sinusoidal_table(max_len, dim), persistent=False)

    def forward(self, x: torch.Tensor, offset: int | torch.Tensor = 0) -> torch.Tensor:
        t = x.shape[1]
        if isinstance(offset, torch.Tensor):  # traced decoding: offset is a graph input
            idx = offset + torch.arange(t, device=x.device)
            return x + self.table[idx].to(x.dtype)
        if offset + t > self.table.shape[0]:
            raise ValueError(f"sequence of length {offset + t} exceeds max_len={self.table.shape[0]}")
        return x + self.table[offset : offset + t].to(x.dtype)


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021), half-split layout as in GPT-NeoX / Llama."""

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.arange(max_len, dtype=torch.float32)[:, None] * inv_freq[None, :]
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, offset: int | torch.Tensor = 0) -> torch.Tensor:
        """x: [B, H, T, Dh]."""
        t = x.shape[-2]
        if isinstance(offset, torch.Tensor):
            idx = offset + torch.arange(t, device=x.device)
            cos, sin = self.cos[idx], self.sin[idx]
        else:
            if offset + t > self.cos.shape[0]:
                raise ValueError(f"sequence of length {offset + t} exceeds max_len={self.cos.shape[0]}")
            cos, sin = self.cos[offset : offset + t], self.sin[offset : offset + t]
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Head slopes of Press et al. (2022): a geometric sequence, interleaved for non powers of two."""

    def pow2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n_heads).is_integer():
        slopes = pow2(n_heads)
    else:
        closest = 2 ** math.floor(math.log2(n_heads))
        slopes = pow2(closest) + pow2(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(slopes, dtype=torch.float32)
