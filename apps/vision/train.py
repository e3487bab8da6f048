"""``python -m apps.vision.train fit|validate|test|predict --config apps/vision/configs/omr.yaml``

A config names its model and data classes (``class_path``): optical music recognition
(``apps.vision.omr.task.OMRTask`` + ``apps.vision.omr.data.OMRDataModule``) or semantic
segmentation (``apps.vision.seg.task.SegTask`` + ``apps.vision.seg.data.SegDataModule``).
"""
from __future__ import annotations

from core.training import BaseTask, run_cli

#: data-derived sizes copied into the model; a link whose source the datamodule lacks, or whose
#: target the task lacks (OMR has no classes, segmentation no vocabulary), is skipped by jsonargparse
LINKS = (
    ("data.vocab_size", "model.init_args.arch.vocab_size"),    # OMR
    ("data.num_classes", "model.init_args.arch.num_classes"),  # segmentation
    ("data.ignore_index", "model.init_args.ignore_index"),
    ("data.classes", "model.init_args.classes"),
)


def main(args: list[str] | None = None, run: bool = True):
    import lightning as L

    return run_cli(BaseTask, L.LightningDataModule, args=args, links=LINKS, run=run,
                   subclass_mode_model=True, subclass_mode_data=True)


if __name__ == "__main__":
    main()
