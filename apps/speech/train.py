"""``python -m apps.speech.train fit|validate|test|predict --config apps/speech/configs/asr_transducer.yaml``

One command for both tasks: a config names its model and data classes (``class_path``), ASR
(``SpeechRecognizer`` + ``SpeechDataModule``) or TTS (``SpeechSynthesizer`` + ``SynthesisDataModule``).
"""
from __future__ import annotations

from apps.speech.data import SpeechDataModule
from core.training import BaseTask, run_cli

LINKS = (("data.vocab_size", "model.init_args.arch.vocab_size"),)


def main(args: list[str] | None = None, run: bool = True):
    return run_cli(BaseTask, SpeechDataModule, args=args, links=LINKS, run=run,
                   subclass_mode_model=True, subclass_mode_data=True)


if __name__ == "__main__":
    main()
