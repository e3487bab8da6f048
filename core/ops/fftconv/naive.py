"""Direct causal convolution (tests only): the Toeplitz matrix of each channel's filter applied to
its inputs, O(T^2) time and memory, no FFT anywhere, so it checks the FFT path independently."""
from __future__ import annotations

import torch


def fftconv_naive(u: torch.Tensor, k: torch.Tensor, D: torch.Tensor | None = None) -> torch.Tensor:
    """u: [B, T, C]; k: [C, L] (lags >= L count as zero); D: [C] or None. Returns [B, T, C]."""
    t = u.shape[1]
    k = k[:, :t] if k.shape[1] >= t else torch.nn.functional.pad(k, (0, t - k.shape[1]))
    pos = torch.arange(t, device=u.device)
    lag = pos[:, None] - pos[None, :]  # lag[i, j] = i - j
    toeplitz = k[:, lag.clamp(min=0)] * (lag >= 0).to(k.dtype)  # [C, T, T], zero above the diagonal
    y = torch.einsum("cts,bsc->btc", toeplitz, u)
    return y if D is None else y + u * D
