"""The segmentation LightningModule: SETR logits, cross-entropy over labelled pixels, mIoU and
pixel accuracy (torchmetrics, ``ignore_index`` pixels left out of both)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from apps.vision.seg.model import SETR, SETRConfig
from core.nn.modes import evaluating
from core.training import BaseTask, OptimConfig, as_config


class SegTask(BaseTask):
    runtime_options = ("classes",)

    def __init__(self, arch: SETRConfig = SETRConfig(), optim: OptimConfig | None = None,
                 ignore_index: int = 255, classes: list[str] | None = None):
        """``arch.num_classes``, ``ignore_index`` and ``classes`` (names, for legends) are linked from the
        datamodule by the CLI."""
        self.arch = as_config(SETRConfig, arch)
        self.ignore_index = ignore_index
        super().__init__(optim)
        self.classes = list(classes) if classes else [str(i) for i in range(self.arch.num_classes)]
        self.model = SETR(self.arch)
        self._eval_logits: torch.Tensor | None = None

    def configure_metrics(self):
        k, ignore = self.arch.num_classes, self.ignore_index
        return {"miou": MulticlassJaccardIndex(k, average="macro", ignore_index=ignore),
                "pixel_acc": MulticlassAccuracy(k, average="micro", ignore_index=ignore)}

    def forward(self, images: torch.Tensor, sizes: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(images, sizes)

    def losses(self, batch):
        logits = self.model(batch["images"], batch["sizes"])
        if not self.training:  # evaluation: the metrics reuse this forward
            self._eval_logits = logits.detach()
        return {"loss": F.cross_entropy(logits, batch["masks"], ignore_index=self.ignore_index)}

    def batch_size(self, batch) -> int:
        return batch["images"].shape[0]

    def update_metrics(self, metrics, batch, stage: str) -> bool:
        logits, self._eval_logits = self._eval_logits, None
        if logits is None:
            logits = self.model(batch["images"], batch["sizes"])
        metrics.update(logits.argmax(1), batch["masks"])
        return True

    def segment(self, images: torch.Tensor, sizes: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Class ids [h, w] (uint8 when they fit) of each image at its real size (``sizes``, or whole)."""
        with evaluating(self.model):
            labels = self.model(images, sizes).argmax(1)
        if sizes is None:
            sizes = torch.tensor([images.shape[2:]]).expand(images.shape[0], 2)
        dtype = torch.uint8 if self.arch.num_classes <= 256 else torch.int64
        return [lab[:h, :w].to(dtype) for lab, (h, w) in zip(labels, sizes.tolist())]

    def predict_step(self, batch, batch_idx):
        return [{"image": p, "mask": m.cpu().numpy()}
                for p, m in zip(batch["paths"], self.segment(batch["images"], batch["sizes"]))]
