"""Gene-tagging metrics over the seven per-base labels (:mod:`apps.genomics.genes`).

Macro F1 and Matthews correlation weigh the six coding classes as much as the dominant
non-coding one (~11 % of a bacterial genome is non-coding, so accuracy alone flatters a model);
``coding_f1`` asks only "is this base in a gene?", the question most annotation papers score.
"""
from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.classification import BinaryF1Score, MulticlassAccuracy, MulticlassF1Score, MulticlassMatthewsCorrCoef

from apps.genomics.genes import GENE_LABELS, NON_CODING


class CodingF1(BinaryF1Score):
    """F1 of coding (any of labels 1-6) vs non-coding, from 7-class predictions and targets."""

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        super().update((preds != NON_CODING).long(), (target != NON_CODING).long())


def tagging_metrics() -> dict[str, Metric]:
    """Fed with flat predicted labels and targets of the scored bases only."""
    n = len(GENE_LABELS)
    return {"f1": MulticlassF1Score(n, average="macro"), "mcc": MulticlassMatthewsCorrCoef(n),
            "accuracy": MulticlassAccuracy(n, average="micro"), "coding_f1": CodingF1()}
