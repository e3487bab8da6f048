"""Learning-rate schedules as multipliers of the peak rate (for ``LambdaLR``), stepped per batch."""
from __future__ import annotations

import math
from functools import partial


def inverse_sqrt(step: int, warmup: int) -> float:
    """Linear warmup, then decay with 1/sqrt(step) (Vaswani et al. 2017; fairseq's default for NMT)."""
    step = max(step, 1)
    if warmup <= 0:
        return 1.0 / math.sqrt(step)
    return min(step / warmup, math.sqrt(warmup / step))


def cosine(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Linear warmup, then half a cosine down to ``min_ratio`` at ``total`` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def constant(step: int, warmup: int) -> float:
    return min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


def make_schedule(name: str, warmup: int, total: int, min_ratio: float = 0.0):
    if name == "inverse_sqrt":
        return partial(inverse_sqrt, warmup=warmup)
    if name == "cosine":
        return partial(cosine, warmup=warmup, total=total, min_ratio=min_ratio)
    if name == "constant":
        return partial(constant, warmup=warmup)
    raise ValueError(f"unknown schedule {name!r}; expected inverse_sqrt, cosine or constant")
