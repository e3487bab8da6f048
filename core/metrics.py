"""Edit-distance error rates shared by the apps (phoneme, symbol, character and line error rates).

Every rate here is corpus-level, as the papers compute it: the edits of all hypotheses summed,
over the summed length of their references, so long references weigh more than short ones.
States are summable tensors, so DDP synchronisation is one all-reduce.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch
from torchmetrics import Metric


def edit_distance(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Levenshtein distance between two symbol sequences (unit costs), in O(len(b)) memory."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


class ErrorRate(Metric):
    """``100 * sum(edits) / sum(reference length)`` over the units ``units(text)`` gives
    (characters, tokens, lines …). ``scale=1`` gives a fraction instead of a percentage."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, units: Callable[[str], Sequence[Hashable]], scale: float = 100.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units, self.scale = units, scale
        self.add_state("errors", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, hyps: Sequence[str], refs: Sequence[str]) -> None:
        if len(hyps) != len(refs):
            raise ValueError(f"got {len(hyps)} hypotheses but {len(refs)} references")
        errors = total = 0
        for hyp, ref in zip(hyps, refs):
            ref_units = self.units(ref)
            errors += edit_distance(self.units(hyp), ref_units)
            total += len(ref_units)
        self.errors = self.errors + errors
        self.total = self.total + total

    def compute(self) -> torch.Tensor:
        return self.scale * self.errors.double() / self.total.clamp(min=1)
