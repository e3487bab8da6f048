"""Sequence classification and regression (peptide properties, DNA sequence classes)."""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassF1Score, MulticlassMatthewsCorrCoef
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError, PearsonCorrCoef, SpearmanCorrCoef

from apps.genomics.pretrained import setup_from_lm
from apps.genomics.property.data import KINDS
from apps.genomics.property.model import PropertyConfig, PropertyModel
from core.errors import UserError
from core.training import BaseTask, OptimConfig, as_config


def property_metrics(kind: str, n_classes: int) -> dict[str, Metric]:
    """Regression: RMSE, MAE, Pearson and Spearman in label units. Classification: accuracy,
    macro F1, MCC and macro one-vs-rest AUROC (the ranking view, threshold-free)."""
    if kind == "regression":
        with warnings.catch_warnings():  # "will save all targets": a test split is thousands of numbers
            warnings.filterwarnings("ignore", message=".*save all targets.*")
            spearman = SpearmanCorrCoef()
        return {"rmse": MeanSquaredError(squared=False), "mae": MeanAbsoluteError(), "pearson": PearsonCorrCoef(),
                "spearman": spearman}
    return {"accuracy": MulticlassAccuracy(n_classes, average="micro"),
            "f1": MulticlassF1Score(n_classes, average="macro"), "mcc": MulticlassMatthewsCorrCoef(n_classes),
            "auroc": MulticlassAUROC(n_classes, average="macro")}


class PropertyTask(BaseTask):
    """Mean squared error on standardised labels (``target_scale``: the training labels' mean and
    std, linked from the data) or cross-entropy over ``classes``."""

    def __init__(self, arch: PropertyConfig = PropertyConfig(), kind: str = "regression",
                 classes: list[str] | None = None, target_scale: tuple[float, float] = (0.0, 1.0),
                 init_from: str | None = None, optim: OptimConfig | None = None):
        if kind not in KINDS:
            raise UserError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind, self.classes = kind, list(classes) if classes else None
        if kind == "classification" and not self.classes:
            raise UserError("classification needs its classes (linked from the data module)")
        self.arch = as_config(PropertyConfig, arch)
        super().__init__(optim)
        self.target_scale = (float(target_scale[0]), float(target_scale[1]))
        self.init_from = init_from  # a DNA language model to start from (apps.genomics.pretrained)
        self.model = PropertyModel(self.arch)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        setup_from_lm(self, stage, "sequence")

    def configure_metrics(self):
        return property_metrics(self.kind, len(self.classes or ()))

    def predict(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Label-unit values [B] (regression) or class probabilities [B, classes]."""
        return self.outputs(self.model.features(ids, mask))

    def outputs(self, pooled: torch.Tensor) -> torch.Tensor:
        """:meth:`predict` from the pooled vectors [B, D] (which predict also writes as embeddings)."""
        out = self.model.head(pooled).float()
        if self.kind == "regression":
            mean, std = self.target_scale
            return out[:, 0] * std + mean
        return out.softmax(-1)

    def losses(self, batch):
        out = self.model(batch["ids"], batch["mask"]).float()
        if self.kind == "regression":
            mean, std = self.target_scale
            return {"loss": F.mse_loss(out[:, 0], (batch["target"] - mean) / std)}
        return {"loss": F.cross_entropy(out, batch["target"])}

    def batch_size(self, batch) -> int:
        return len(batch["target"])

    def update_metrics(self, metrics, batch, stage: str) -> bool:
        with torch.no_grad():
            metrics.update(self.predict(batch["ids"], batch["mask"]), batch["target"])
        return True

    def predict_step(self, batch, batch_idx):
        return self.predict(batch["ids"], batch["mask"])
