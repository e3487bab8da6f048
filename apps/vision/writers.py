"""``predict`` outputs of the vision tasks, as Lightning prediction writers (``trainer.callbacks``).

    python -m apps.vision.train predict --config apps/vision/configs/omr.yaml --ckpt_path CKPT \
        --trainer.callbacks+=apps.vision.writers.WriteTranscriptions --trainer.callbacks.path out.jsonl
    python -m apps.vision.train predict --config apps/vision/configs/seg.yaml --ckpt_path CKPT \
        --trainer.callbacks+=apps.vision.writers.WriteMasks --trainer.callbacks.folder masks/

Batches are grouped by image size, so predictions come out of order; the writers put them back:
one JSONL row per manifest record in manifest order, one label PNG per image named after it.
"""
from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch.callbacks import BasePredictionWriter

from core.errors import UserError
from core.io import atomic_write_text


class WriteTranscriptions(BasePredictionWriter):
    """OMR: ``{"image": PATH, "kern": TEXT}`` per line, in the order of the predicted manifest
    (a manifest the data module reads back), to ``path`` or stdout."""

    def __init__(self, path: str | None = None):
        super().__init__(write_interval="epoch")
        self.path = path

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        rows = sorted((r for batch in predictions for r in batch), key=lambda r: r["index"])
        text = "".join(json.dumps({"image": r["image"], "kern": r["kern"]}) + "\n" for r in rows)
        if self.path is None:
            print(text, end="")
        else:
            atomic_write_text(self.path, text)


class WriteMasks(BasePredictionWriter):
    """Segmentation: ``folder/<image stem>.png``, palette PNGs at the image's size whose pixel
    values are class ids (what ``python -m apps.vision.segment -o`` writes). The folder must be new
    or empty."""

    def __init__(self, folder: str):
        super().__init__(write_interval="batch")
        self.folder = Path(folder)

    def on_predict_start(self, trainer, pl_module) -> None:
        if self.folder.exists() and (not self.folder.is_dir() or any(self.folder.iterdir())):
            raise UserError(f"{self.folder} is not empty; choose a new folder (nothing is overwritten)")
        self.folder.mkdir(parents=True, exist_ok=True)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        import torch
        from PIL import Image

        from apps.vision.segment import full_size, palette, save_labels

        colours = palette(pl_module.arch.num_classes)
        for row in prediction:
            with Image.open(row["image"]) as image:  # the mask takes the image's own size
                shape = (image.height, image.width)
            labels = full_size(torch.as_tensor(row["mask"]), shape)
            save_labels(self.folder / f"{Path(row['image']).stem}.png", labels, colours)
