"""Learning-rate schedules as multipliers of the peak rate (for ``LambdaLR``), stepped per batch."""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial


def inverse_sqrt(step: int, warmup: int) -> float:
    """Linear warmup, then decay with 1/sqrt(step) (Vaswani et al. 2017; fairseq's default for NMT)."""
    step = max(step, 1)
    if warmup <= 0:
        return 1.0 / math.sqrt(step)
    return min(step / warmup, math.sqrt(warmup / step))


#: With a time budget, warmup ends after ``warmup`` steps or this fraction of the budget, whichever comes
#: first. A slow model may never reach its warmup step count: the Mamba transducer made 739 steps in a
#: 2-hour ASR budget on a 2-core CPU, so a 1,000-step warmup ended the run at 0.74x the peak rate with no
#: decay at all, and a GLA one that left warmup at 80 % of its budget dropped from the peak to 0.11x in a step.
CLOCK_WARMUP = 0.1


def cosine(step: int, warmup: int, total: int, min_ratio: float = 0.0,
           clock: Callable[[], float] | None = None) -> float:
    """Linear warmup, then half a cosine down to ``min_ratio`` at ``total`` steps, or sooner: ``clock()``
    is the fraction of a time budget spent, and the decay follows whichever of the two runs out first
    (the warmup too: it ends at :data:`CLOCK_WARMUP` of the budget at the latest).

    A run bounded by wall-clock time (``trainer.max_time``) stops at a step nobody knows in advance; a
    schedule that has not decayed by then leaves the final weights at a high learning rate (budgeted
    training, Li et al. 2020: decay to the budget's end). The clock makes the step at which a given rate
    is reached depend on the machine's speed, so such runs are repeatable only up to timing."""
    spent = clock() if clock is not None else 0.0
    if step < warmup:
        ramp = max((step + 1) / warmup, spent / CLOCK_WARMUP)
        if ramp < 1:
            return ramp
    progress = max(0.0, (step - warmup) / max(1, total - warmup), spent)
    progress = min(1.0, progress)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def constant(step: int, warmup: int) -> float:
    return min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


def make_schedule(name: str, warmup: int, total: int, min_ratio: float = 0.0,
                  clock: Callable[[], float] | None = None):
    """``clock``: fraction of a time budget spent (see :func:`cosine`; the other schedules do not end)."""
    if name == "inverse_sqrt":
        return partial(inverse_sqrt, warmup=warmup)
    if name == "cosine":
        # a closure, not a partial: LambdaLR saves a callable object's __dict__ in the checkpoint, and
        # a clock there (a Trainer callback) would not load with weights_only=True
        def schedule(step: int) -> float:
            return cosine(step, warmup, total, min_ratio, clock)
        return schedule
    if name == "constant":
        return partial(constant, warmup=warmup)
    raise ValueError(f"unknown schedule {name!r}; expected inverse_sqrt, cosine or constant")
