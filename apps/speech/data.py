"""Speech data: utterances from user corpora or the bundled espeak-ng corpus, batched by duration.

``python -m apps.speech.data espeak --out DIR`` synthesizes the default corpus (see
:mod:`apps.speech.corpus`) and prints how many utterances each split got.

:class:`SpeechDataModule` reads any format of :mod:`apps.speech.manifests`, validates every
utterance (bad ones are skipped and counted with one warning per file), and batches utterances of
similar duration so that little of a batch is padding. Transcripts become ASR targets through
:func:`~apps.speech.manifests.normalize_transcript` and a fixed character vocabulary (a-z,
apostrophe, space), so the same model reads every corpus.
"""
from __future__ import annotations

import argparse
import string
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from apps.speech.audio import SAMPLE_RATE, read_audio
from apps.speech.corpus import build_espeak_corpus
from apps.speech.manifests import Utterance, normalize_transcript, read_corpus, validate
from apps.speech.phonemes import phonemize
from core.data import BatchDataset, SplitDataModule, batch_loader, cost_batches, default_cache_dir, lengths, pad
from core.errors import UserError
from core.tokenizers import CharTokenizer, SpaceTokenizer, tokenizer_from_json

#: the ASR output symbols (after the tokenizer's specials; id 0 doubles as the blank)
TARGET_SYMBOLS = list(string.ascii_lowercase) + ["'", " "]
#: characters a transcript may hold: what normalize_transcript maps to targets or drops harmlessly
#: (punctuation, accents). Digits and other scripts are "unknown": "12" is "twelve" or "one two".
TEXT_ALPHABET = (set(string.ascii_lowercase) | set(string.punctuation) | set(string.whitespace)
                 | set("àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿœ") | set("\u2018\u2019\u201c\u201d\u2013\u2014\u2026"))
SPLITS = ("train", "valid", "test")


def target_tokenizer() -> CharTokenizer:
    return CharTokenizer(TARGET_SYMBOLS)


@dataclass(frozen=True)
class Example:
    utterance: Utterance
    target: str  # normalized transcript
    ids: list[int]


def collate(examples: list[Example], rate: int = SAMPLE_RATE) -> dict[str, Any]:
    """One batch, audio read from disk now (in a DataLoader worker): waveforms and target ids
    right-padded with 0, with their lengths."""
    audio = [read_audio(e.utterance.audio, rate) for e in examples]
    ids = [e.ids for e in examples]
    return {"audio": pad(audio), "audio_lens": lengths(audio), "targets": pad(ids, min_len=1),
            "target_lens": lengths(ids), "texts": [e.target for e in examples],
            "paths": [str(e.utterance.audio) for e in examples]}


class SpeechDataModule(SplitDataModule):
    """Utterances for ASR training and evaluation.

    Args:
        train, valid, test: corpora in any format :func:`~apps.speech.manifests.read_corpus` reads
            (JSONL manifest, LJSpeech folder, LibriSpeech tree). Left unset, the bundled espeak-ng
            corpus is used (built on first use into ``corpus_dir``).
        predict: a corpus whose utterances are transcribed by ``predict``.
        corpus_dir: where the bundled corpus lives (default ``<cache>/speech/espeak-<n_sentences>``,
            or ``espeak-<voice>-<n_sentences>``).
        n_sentences: size of the bundled corpus (before its 90/5/5 split).
        voice: build the bundled corpus with this one espeak-ng voice (single speaker, for TTS)
            instead of 12 voices at random rates and pitches.
        max_seconds: longer utterances are skipped (and counted).
        batch_seconds: padded audio per batch (longest utterance x batch size).
        max_batch: utterances per batch at most.
        train_limit, eval_limit: use only the first N utterances (tiny test configs).
        seed: orders the training batches of each epoch (``seed + epoch``); the order is saved in
            checkpoints, so a run resumed mid-epoch sees the batches an uninterrupted one would.
    """

    predict_split = "predict"

    def __init__(self, train: str | None = None, valid: str | None = None, test: str | None = None,
                 predict: str | None = None, corpus_dir: str | None = None, n_sentences: int = 2000,
                 voice: str | None = None,
                 max_seconds: float = 20.0, batch_seconds: float = 120.0, max_batch: int = 32,
                 train_limit: int | None = None, eval_limit: int | None = None, num_workers: int = 0,
                 seed: int = 0):
        super().__init__()
        if batch_seconds < max_seconds:
            raise UserError(f"batch_seconds={batch_seconds:g} must hold one utterance of max_seconds={max_seconds:g}")
        self.paths = {"train": train, "valid": valid, "test": test, "predict": predict}
        name = f"espeak-{voice}-{n_sentences}" if voice else f"espeak-{n_sentences}"
        self.corpus_dir = Path(corpus_dir) if corpus_dir else default_cache_dir() / "speech" / name
        self.n_sentences, self.voice = n_sentences, voice
        self.max_seconds, self.batch_seconds, self.max_batch = max_seconds, batch_seconds, max_batch
        self.limits = {"train": train_limit, "valid": eval_limit, "test": eval_limit, "predict": eval_limit}
        self.num_workers, self.seed = num_workers, seed
        self.tokenizer = target_tokenizer()
        self._utterances: dict[str, list[Utterance]] = {}
        self._splits: dict[str, list[Example]] = {}

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def _bundled(self) -> bool:
        return not any(self.paths[s] for s in SPLITS)

    def prepare_data(self) -> None:
        if self._bundled() and not (self.corpus_dir / "train.jsonl").exists():
            build_espeak_corpus(self.corpus_dir, self.n_sentences, voice=self.voice)

    def path(self, split: str) -> Path | None:
        if self.paths[split]:
            return Path(self.paths[split])
        return self.corpus_dir / f"{split}.jsonl" if self._bundled() and split in SPLITS else None

    def utterances(self, split: str) -> list[Utterance]:
        """The split's valid utterances (read and validated once: one warning per file)."""
        if split not in self._utterances:
            path = self.path(split)
            if path is None:
                raise UserError(f"no {split} corpus: set data.{split}")
            utterances, report = read_corpus(path)
            kept = validate(utterances, report, SAMPLE_RATE, self.max_seconds, TEXT_ALPHABET)
            self._utterances[split] = kept[: self.limits[split]]
        return self._utterances[split]

    def examples(self, split: str) -> list[Example]:
        if split not in self._splits:
            self._splits[split] = self.make_examples(self.utterances(split))
        return self._splits[split]

    def make_examples(self, utterances: list[Utterance]) -> list[Example]:
        """ASR targets: normalized transcripts as character ids (TTS data replaces this with phonemes)."""
        return [Example(u, t, self.tokenizer.encode(t)) for u in utterances for t in [normalize_transcript(u.text)]]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        examples = self.examples(split)
        batches = cost_batches([e.utterance.duration for e in examples], self.batch_seconds, self.max_batch,
                               option="batch_seconds")
        dataset = BatchDataset(examples, batches, partial(collate, rate=SAMPLE_RATE))
        return batch_loader(dataset, shuffle, self.seed, self.num_workers)


class SynthesisDataModule(SpeechDataModule):
    """Utterances for TTS: the same corpora, with each transcript turned into espeak-ng phonemes
    (:mod:`apps.speech.phonemes`) over a phoneme vocabulary built from the training split. The
    batch's ``targets`` are then phoneme ids; audio becomes log-mel targets in the model."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._phonemes: dict[str, str] = {}
        self.tokenizer = None

    def _phonemize(self, utterances: list[Utterance]) -> list[str]:
        todo = sorted({u.text for u in utterances} - set(self._phonemes))
        self._phonemes.update(zip(todo, phonemize(todo)))
        return [self._phonemes[u.text] for u in utterances]

    def phoneme_tokenizer(self) -> SpaceTokenizer:
        if self.tokenizer is None:  # the phoneme vocabulary comes from the training split
            self.prepare_data()  # (asked for by the CLI's vocabulary link, before Lightning prepares the data)
            self.tokenizer = SpaceTokenizer.train(self._phonemize(self.utterances("train")))
        return self.tokenizer

    @property
    def vocab_size(self) -> int:
        return self.phoneme_tokenizer().vocab_size

    def tokenizers_json(self) -> dict[str, str]:
        """What the task stores in its checkpoints (core.training.BaseTask)."""
        return {"phonemes": self.phoneme_tokenizer().to_json()}

    def use_tokenizers_json(self, tokenizers: dict[str, str]) -> None:
        """A checkpoint's phoneme vocabulary replaces the one built from this corpus."""
        self.tokenizer = tokenizer_from_json(tokenizers["phonemes"])

    def make_examples(self, utterances: list[Utterance]) -> list[Example]:
        tokenizer = self.phoneme_tokenizer()
        return [Example(u, p, tokenizer.encode(p)) for u, p in zip(utterances, self._phonemize(utterances))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m apps.speech.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    espeak = commands.add_parser("espeak", help="synthesize the default corpus with espeak-ng from Bible verses")
    espeak.add_argument("--out", required=True, help="folder for wavs/, {train,valid,test}.jsonl and README.txt")
    espeak.add_argument("--n-sentences", type=int, default=2000)
    espeak.add_argument("--seed", type=int, default=0)
    espeak.add_argument("--voice", help="one espeak-ng voice for every verse (e.g. en-us: a single-speaker TTS corpus)")
    espeak.add_argument("--jobs", type=int, default=2, help="espeak-ng processes run at once")
    espeak.add_argument("--overwrite", action="store_true", help="rebuild even if --out is not empty")
    args = parser.parse_args(argv)

    summary = build_espeak_corpus(args.out, args.n_sentences, args.seed, jobs=args.jobs, overwrite=args.overwrite,
                                  voice=args.voice)
    splits = ", ".join(f"{name} {n}" for name, n in summary["utterances"].items())
    print(f"{summary['out']}: {splits} utterances, {summary['hours']:.2f} hours, {summary['skipped']} skipped")


if __name__ == "__main__":
    main()
