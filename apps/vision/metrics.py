"""OMR metrics as the Sheet Music Transformer paper computes them, corpus-level, in percent:

* SER: edit distance over bekern tokens (:func:`apps.vision.omr.kern.tokenize`);
* CER: over the characters of the **kern text;
* LER: over its lines (a line is right only if it is right as a whole);
* engravable: the share of predictions Verovio can engrave (a prediction that is not valid
  **kern scores 0 there, however close its tokens are).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchmetrics import Metric

from apps.vision.omr.engrave import engrave_svg
from apps.vision.omr.kern import tokenize
from core.metrics import ErrorRate


def symbol_error_rate(**kwargs: Any) -> ErrorRate:
    return ErrorRate(tokenize, **kwargs)


def character_error_rate(**kwargs: Any) -> ErrorRate:
    return ErrorRate(lambda text: text.rstrip("\n"), **kwargs)


def line_error_rate(**kwargs: Any) -> ErrorRate:
    return ErrorRate(lambda text: text.rstrip("\n").split("\n"), **kwargs)


class EngravableFraction(Metric):
    """Percent of predictions that Verovio engraves (references are not needed, but accepted)."""

    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("ok", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, hyps: Sequence[str], refs: Sequence[str] | None = None) -> None:
        self.ok = self.ok + sum(engrave_svg(h) is not None for h in hyps)
        self.total = self.total + len(hyps)

    def compute(self) -> torch.Tensor:
        return 100.0 * self.ok.double() / self.total.clamp(min=1)


def omr_metrics() -> dict[str, Metric]:
    return {"ser": symbol_error_rate(), "cer": character_error_rate(), "ler": line_error_rate(),
            "engravable": EngravableFraction()}
