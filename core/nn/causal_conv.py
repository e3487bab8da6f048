"""Short causal depthwise convolution with a decoding state (Mamba, Mamba-2, Griffin, Hyena).

Each channel mixes its own last ``kernel`` inputs. For decoding, the state is the last
``kernel - 1`` inputs, so a step costs the same at any position and the step equals the full pass.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalConv1d(nn.Module):
    def __init__(self, channels: int, kernel: int = 4, bias: bool = True):
        super().__init__()
        self.channels, self.kernel = channels, kernel
        self.weight = nn.Parameter(torch.empty(channels, 1, kernel))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Conv1d's default

    def init_state(self, batch: int, device, dtype) -> torch.Tensor:
        return torch.zeros(batch, self.channels, self.kernel - 1, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        """x: [B, T, C]; state: [B, C, kernel-1] past inputs or None (zeros, not returned);
        mask: [B, T] True for real tokens: padding enters as zeros, like the implicit left padding.
        Returns (y [B, T, C], new state or None)."""
        if mask is not None:
            x = x * mask[..., None].to(x.dtype)
        xt = x.transpose(1, 2)  # [B, C, T]
        past = xt.new_zeros(xt.shape[0], self.channels, self.kernel - 1) if state is None else state.to(xt.dtype)
        full = torch.cat([past, xt], dim=-1)
        if xt.shape[-1] == 1:  # one decoding step: a dot product per channel, no conv call
            y = (full * self.weight[:, 0]).sum(-1, keepdim=True)
            y = y if self.bias is None else y + self.bias[:, None]
        else:
            y = F.conv1d(full, self.weight, self.bias, groups=self.channels)
        new_state = None if state is None else full[..., full.shape[-1] - (self.kernel - 1):]
        return y.transpose(1, 2), new_state
