"""``python -m apps.vision.train fit|validate|test|predict --config apps/vision/configs/omr.yaml``

A config names its model and data classes (``class_path``): today optical music recognition
(``apps.vision.omr.task.OMRTask`` + ``apps.vision.omr.data.OMRDataModule``).
"""
from __future__ import annotations

from core.training import BaseTask, run_cli

LINKS = (("data.vocab_size", "model.init_args.arch.vocab_size"),)


def main(args: list[str] | None = None, run: bool = True):
    import lightning as L

    return run_cli(BaseTask, L.LightningDataModule, args=args, links=LINKS, run=run,
                   subclass_mode_model=True, subclass_mode_data=True)


if __name__ == "__main__":
    main()
