"""OMR data: image + **kern pairs from JSONL manifests, batched by pixel count.

A manifest line is ``{"image": PATH, "kern": TEXT}`` (``"transcript"`` is accepted for ``kern``),
image paths relative to the manifest's folder. By default the data module builds the bundled
corpus (:mod:`apps.vision.omr.corpus`) into the cache folder on first use and reads its
``train/valid/test.jsonl``.

Validation (counted per file, one warning naming the file and lines, an error naming it when
nothing usable is left): unreadable or empty images, transcripts that are not **kern (no
``**kern`` header or no ``*-`` terminator), images larger than ``max_pixels`` alone, and
transcripts longer than the decoder's ``max_tokens``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from apps.vision.batching import pad_images, to_ink
from apps.vision.augment import Augment, AugmentConfig
from apps.vision.omr.corpus import build_omr_corpus
from apps.vision.omr.engrave import readable
from apps.vision.omr.kern import spine_error, tokenize
from core.data import BatchDataset, SplitDataModule, batch_loader, cost_batches, default_cache_dir, pad, read_jsonl
from core.data.reports import SkipReport
from core.errors import UserError
from core.tokenizers import SpaceTokenizer, tokenizer_from_json
from core.training import as_config


def read_image(path: Path) -> np.ndarray:
    """Grayscale uint8 [H, W]; a colour image is converted."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


@dataclass
class Example:
    image: Path
    kern: str
    #: bekern token ids (BOS ... EOS)
    ids: list[int]
    height: int
    width: int
    #: position in its manifest's valid records (predictions are written back in this order)
    index: int = 0


def collate(examples: list[Example], scale: float = 1.0, augment: Augment | None = None) -> dict[str, Any]:
    images = [to_ink(read_image(e.image), scale) for e in examples]
    if augment is not None:
        images = [augment(img) for img in images]
    batch, sizes = pad_images(images)
    return {"images": batch, "sizes": sizes, "tgt_ids": pad([e.ids for e in examples]),
            "kern": [e.kern for e in examples], "paths": [str(e.image) for e in examples],
            "index": [e.index for e in examples]}


class OMRDataModule(SplitDataModule):
    def __init__(self, corpus_dir: str | None = None, train: str | None = None, valid: str | None = None,
                 test: str | None = None, measures: int = 3, build_limit: int | None = None,
                 max_pixels: int = 6_000_000, max_batch: int = 16, image_scale: float = 0.5,
                 max_tokens: int = 2000, train_limit: int | None = None, eval_limit: int | None = None,
                 augment: AugmentConfig | None = None, num_workers: int = 0, seed: int = 0):
        """``train/valid/test``: manifests of your own; left out, the bundled corpus in ``corpus_dir``
        (default ``<cache>/vision/omr-<measures>``, built from the first ``build_limit`` scores on first
        use). ``max_pixels``: batch size x its largest image's pixels (after ``image_scale``).
        ``augment``: distortions of training images (scan and camera-like, :mod:`apps.vision.augment`);
        None: clean engravings."""
        super().__init__()
        if image_scale <= 0:
            raise UserError(f"image_scale must be positive, got {image_scale}")
        self.save_hyperparameters()
        bundled = default_cache_dir() / "vision" / f"omr-{measures}{'' if build_limit is None else f'-first{build_limit}'}"
        self.corpus_dir = Path(corpus_dir) if corpus_dir else bundled
        self.paths = {"train": train, "valid": valid, "test": test}
        self.tokenizer: SpaceTokenizer | None = None
        self.augment = Augment(as_config(AugmentConfig, augment)) if augment is not None else None
        self._valid: dict[str, list[tuple[Path, str, int, int]]] = {}
        self._examples: dict[str, list[Example]] = {}

    @property
    def _bundled(self) -> bool:
        return not any(self.paths.values())

    def prepare_data(self) -> None:
        if self._bundled and not (self.corpus_dir / "train.jsonl").is_file():
            build_omr_corpus(self.corpus_dir, self.hparams.measures, self.hparams.build_limit, jobs=2, progress=False)

    def manifest(self, split: str) -> Path:
        if self._bundled:
            self.prepare_data()
            return self.corpus_dir / f"{split}.jsonl"
        if self.paths[split] is None:
            raise UserError(f"no {split} manifest: set data.init_args.{split}")
        return Path(self.paths[split])

    def _records(self, split: str) -> list[tuple[Path, str, int, int]]:
        """Valid (image, kern, height, width) of a split, read and validated once."""
        if split not in self._valid:
            self._valid[split] = self._read(split)
        return self._valid[split]

    def _read(self, split: str) -> list[tuple[Path, str, int, int]]:
        path = self.manifest(split)
        limit = self.hparams.train_limit if split == "train" else self.hparams.eval_limit
        rows, report = read_jsonl(path, keys=["image", ("kern", "transcript")], limit=limit)
        records = []
        for lineno, row in rows:
            kern = str(row["kern"])
            image = path.parent / str(row["image"])
            if not kern.startswith("**kern") or "*-" not in kern:
                report.skip("not **kern", lineno)
            elif spine_error(kern):
                report.skip("broken spines", lineno)
            elif not self._bundled and not readable(kern):  # the bundled systems were engraved when built
                report.skip("**kern Verovio cannot read", lineno)
            elif not image.is_file():
                report.skip("missing image", lineno)
            else:
                records.append((lineno, image, kern))
        kept = self._validate(records, report)
        report.warn()
        report.require(len(kept))
        return kept

    def _validate(self, records, report: SkipReport) -> list[tuple[Path, str, int, int]]:
        scale, kept = self.hparams.image_scale, []
        for lineno, image, kern in records:
            try:
                h, w = read_image(image).shape
            except Exception:  # PIL raises many kinds for a broken file
                report.skip("unreadable image", lineno)
                continue
            if h * w * scale * scale > self.hparams.max_pixels:
                report.skip("image over max_pixels", lineno)
            elif len(tokenize(kern)) + 2 > self.hparams.max_tokens:
                report.skip("over max_tokens", lineno)
            else:
                kept.append((image, kern, round(h * scale), round(w * scale)))
        return kept

    def bekern_tokenizer(self) -> SpaceTokenizer:
        if self.tokenizer is None:  # the vocabulary comes from the training split
            self.tokenizer = SpaceTokenizer.train(" ".join(tokenize(k)) for _, k, _, _ in self._records("train"))
        return self.tokenizer

    @property
    def vocab_size(self) -> int:
        return self.bekern_tokenizer().vocab_size

    def tokenizers_json(self) -> dict[str, str]:
        return {"bekern": self.bekern_tokenizer().to_json()}

    def use_tokenizers_json(self, tokenizers: dict[str, str]) -> None:
        self.tokenizer = tokenizer_from_json(tokenizers["bekern"])
        self._examples.clear()

    def examples(self, split: str) -> list[Example]:
        if split not in self._examples:
            tok = self.bekern_tokenizer()
            self._examples[split] = [
                Example(image, kern, [tok.bos_id, *tok.encode(" ".join(tokenize(kern))), tok.eos_id], h, w, n)
                for n, (image, kern, h, w) in enumerate(self._records(split))]
        return self._examples[split]

    def _loader(self, split: str, shuffle: bool):
        examples = self.examples(split)
        # cost: batch size x its largest image's pixels (images sorted by size, so padding stays small)
        batches = cost_batches([e.height * e.width for e in examples], self.hparams.max_pixels,
                               self.hparams.max_batch, seed=self.hparams.seed if shuffle else None,
                               option="max_pixels")
        scale, augment = self.hparams.image_scale, self.augment if shuffle else None
        dataset = BatchDataset(examples, batches, lambda items: collate(items, scale, augment))
        return batch_loader(dataset, shuffle, self.hparams.seed, self.hparams.num_workers)
