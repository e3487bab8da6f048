"""``python -m apps.speech.train fit|validate|test|predict --config apps/speech/configs/asr_transducer.yaml``"""
from __future__ import annotations

from apps.speech.data import SpeechDataModule
from apps.speech.model import SpeechRecognizer
from core.training import run_cli

LINKS = (("data.vocab_size", "model.vocab_size"),)


def main(args: list[str] | None = None, run: bool = True):
    return run_cli(SpeechRecognizer, SpeechDataModule, args=args, links=LINKS, run=run)


if __name__ == "__main__":
    main()
