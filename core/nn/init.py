"""Initialisations that state-space mixers take from their papers.

The backbones re-initialise every ``nn.Linear`` GPT-2 style (normal(0.02), zero bias: PyTorch's
default uniform init trains deep pre-norm stacks noticeably slower). Some mixer layers must keep
their own scale instead: Mamba's projections (with std 0.02 in a narrow model, B, C and the
state path are so small that the recurrence is invisible at initialisation; mamba_ssm keeps the
default init) and Hyena's filter FFN (0.02 shrinks the implicit filters to ~1e-6, leaving the long
convolutions as pure skips). Those layers are :class:`KeepInitLinear`.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class KeepInitLinear(nn.Linear):
    """An ``nn.Linear`` that keeps PyTorch's default fan-in scaled init: the backbones' weight
    init skips modules whose ``keep_init`` is true."""

    keep_init = True


def dt_bias(n: int, dt_min: float = 1e-3, dt_max: float = 0.1, floor: float = 1e-4) -> torch.Tensor:
    """Bias b whose softplus is a time step dt drawn log-uniformly in [dt_min, dt_max] (Mamba,
    Mamba-2): b = softplus^-1(dt) = dt + log(1 - exp(-dt)), so softplus(b) recovers dt exactly and
    each channel starts at its own time scale."""
    dt = torch.exp(torch.rand(n) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=floor)
    return dt + torch.log(-torch.expm1(-dt))
