"""``python -m apps.translation.train fit|validate|test|predict --config apps/translation/configs/g2p.yaml``"""
from __future__ import annotations

from apps.translation.data import TranslationDataModule
from apps.translation.task import TranslationModel
from core.training import run_cli

LINKS = (("data.src_vocab_size", "model.arch.src_vocab_size"), ("data.tgt_vocab_size", "model.arch.tgt_vocab_size"))


def main(args: list[str] | None = None, run: bool = True):
    return run_cli(TranslationModel, TranslationDataModule, args=args, links=LINKS, run=run)


if __name__ == "__main__":
    main()
