"""Sequences with one label each (a protein's property, a DNA sequence's class), for PeptideBERT-style
classification and regression over a pooled encoder.

Where the examples come from, first match wins:

* ``train`` (and optionally ``valid``, ``test``): CSV files with a header holding ``sequence`` and
  ``label`` columns (quoted fields allowed), or FASTA files (``.fa``, ``.fasta``, ``.fna``,
  ``.faa``, gzip too) whose records take their label from ``labels``, a CSV of ``id,label``.
  Splits a user does not give are carved out of ``train`` by a hash of the sequence
  (``split_percent``), so repeated sequences stay together.
* ``folder``: a GenomicBenchmarks-style tree, ``<folder>/{train,test}/<class>/*.txt`` with one
  sequence per file; the class is the folder name. Validation is carved from ``train`` by file name.
* neither: the bundled proteins (:mod:`apps.genomics.proteins`) with the ProtParam ``target``;
  the genome's last 10 % of genes are test and the 5 % before them validation, as for DNA.

Bad records (characters outside the alphabet, empty or over-long sequences, labels that are not
finite numbers for regression, classes training never saw) are skipped and counted with one
warning per file naming the lines; nothing usable is one clear error.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from apps.genomics.nucleotides import ALPHABET as DNA_ALPHABET
from apps.genomics.nucleotides import dna_tokenizer, encode_sequence, encoder_table
from apps.genomics.proteins import PROPERTIES, PROTEIN_ALPHABET, bundled_proteins, protein_table, protein_tokenizer, protparam
from core.data import SplitDataModule
from core.data.readers import delimited_rows, fasta_records
from core.data.reports import DataWarning, SkipReport
from core.data.splits import SPLITS, split_of
from core.errors import DataError, UserError
from core.tokenizers import tokenizer_from_json

KINDS = ("regression", "classification")
ALPHABETS = ("protein", "dna")


def is_fasta(path: str | Path) -> bool:
    return str(path).lower().removesuffix(".gz").endswith((".fa", ".fasta", ".fna", ".faa"))


@dataclass
class Example:
    ids: np.ndarray  # int64 [n]
    label: float | str
    origin: str  # "file:line", for the user's reports


class Alphabet:
    """Tokenizer, byte table and the characters a sequence may hold, for one kind of sequence."""

    def __init__(self, name: str, tokenizer=None):
        if name not in ALPHABETS:
            raise UserError(f"alphabet must be one of {', '.join(ALPHABETS)}, got {name!r}")
        self.name = name
        self.tokenizer = tokenizer or (protein_tokenizer() if name == "protein" else dna_tokenizer())
        self.allowed = PROTEIN_ALPHABET if name == "protein" else DNA_ALPHABET
        self.table = protein_table(self.tokenizer) if name == "protein" else encoder_table(self.tokenizer)

    def clean(self, sequence: str) -> str:
        """A protein's trailing stop (``*``, as translators write it) is not a residue."""
        return sequence.rstrip("*") if self.name == "protein" else sequence

    def problem(self, sequence: str, max_length: int) -> str | None:
        """Why ``sequence`` cannot be used, or None."""
        sequence = self.clean(sequence)
        if not sequence:
            return "empty sequence"
        bad = set(sequence) - self.allowed
        if bad:
            return f"not {'a protein' if self.name == 'protein' else 'DNA'}"
        if len(sequence) > max_length:
            return f"longer than max_length {max_length}"
        return None

    def encode(self, sequence: str) -> np.ndarray:
        return encode_sequence(self.clean(sequence), self.table)


def collate(items: list[Example], classes: list[str] | None, pad_id: int = 0) -> dict[str, torch.Tensor]:
    width = max(len(e.ids) for e in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    for r, e in enumerate(items):
        ids[r, :len(e.ids)] = torch.from_numpy(e.ids)
    if classes is None:
        target = torch.tensor([float(e.label) for e in items], dtype=torch.float32)
    else:
        target = torch.tensor([classes.index(e.label) for e in items], dtype=torch.long)
    return {"ids": ids, "mask": ids != pad_id, "target": target}


class PropertyDataModule(SplitDataModule):
    def __init__(self, alphabet: str = "protein", label_kind: str = "regression", target: str = "gravy",
                 train: str | None = None, valid: str | None = None, test: str | None = None,
                 labels: str | None = None, folder: str | None = None, split_percent: tuple[int, int, int] = (80, 10, 10),
                 max_length: int = 1000, batch_size: int = 32, cache_dir: str | None = None, num_workers: int = 0):
        """``label_kind`` says what ``label`` holds for CSV input (numbers, or class names); the bundled
        set's kind follows from ``target`` (``stability`` is the one class label) and a folder's is
        classification. ``max_length`` must not exceed the model's ``max_len``."""
        super().__init__()
        self.save_hyperparameters()  # in checkpoints: predict and export read the same data
        kind = label_kind
        if kind not in KINDS:
            raise UserError(f"label_kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if train is None and folder is None:
            if target not in PROPERTIES:
                raise UserError(f"target must be one of {', '.join(PROPERTIES)} for the bundled proteins, got {target!r}")
            if alphabet != "protein":
                raise UserError("the bundled set is proteins: alphabet protein, or bring train/folder data")
            kind = "classification" if target == "stability" else "regression"
        elif folder is not None and train is None:
            kind = "classification"
        if (valid or test) and train is None:
            raise UserError("valid and test files need a train file")
        fasta = [f for f in (train, valid, test) if f is not None and is_fasta(f)]
        if fasta and labels is None:
            raise UserError(f"{fasta[0]}: a FASTA file's labels come from a CSV of id,label (data.labels)")
        if sum(split_percent) != 100 or len(split_percent) != 3 or min(split_percent) < 0:
            raise UserError(f"split_percent must be three shares summing to 100, got {list(split_percent)}")
        if max_length < 1:
            raise UserError(f"max_length must be at least 1, got {max_length}")
        self.alphabet = Alphabet(alphabet)
        self.kind, self.target = kind, target
        self.files = {"train": train, "valid": valid, "test": test}
        self.labels_file = labels
        self.folder, self.split_percent, self.max_length = folder, tuple(split_percent), max_length
        self.batch_size, self.cache_dir, self.num_workers = batch_size, cache_dir, num_workers
        self._splits: dict[str, list[Example]] | None = None

    # ------------------------------------------------------------------ sizes the model needs

    @property
    def vocab_size(self) -> int:
        return self.alphabet.tokenizer.vocab_size

    @property
    def classes(self) -> list[str] | None:
        if self.kind != "classification":
            return None
        return sorted({str(e.label) for e in self.splits()["train"]})

    @property
    def num_outputs(self) -> int:
        return 1 if self.kind == "regression" else len(self.classes)

    @property
    def target_scale(self) -> tuple[float, float]:
        """(mean, std) of the training labels: a regression head predicts standardised values."""
        if self.kind != "regression":
            return (0.0, 1.0)
        y = np.array([float(e.label) for e in self.splits()["train"]])
        return (float(y.mean()), float(y.std()) or 1.0)

    def tokenizers_json(self) -> dict[str, str]:
        return {"sequence": self.alphabet.tokenizer.to_json()}

    def use_tokenizers_json(self, tokenizers: dict[str, str]) -> None:
        self.alphabet = Alphabet(self.alphabet.name, tokenizer_from_json(tokenizers["sequence"]))

    # ------------------------------------------------------------------ examples

    def splits(self) -> dict[str, list[Example]]:
        if self._splits is None:
            if self.files["train"] is not None:
                self._splits = self._from_csv()
            elif self.folder is not None:
                self._splits = self._from_folder(Path(self.folder))
            else:
                self._splits = self._bundled()
            if not self._splits["train"]:
                raise DataError(f"{self.files['train'] or self.folder or 'bundled proteins'}: no training examples")
            if self.kind == "classification" and len({e.label for e in self._splits["train"]}) < 2:
                raise DataError(f"{self.files['train'] or self.folder}: classification needs at least two classes")
            self._drop_unseen_classes()
        return self._splits

    def _bundled(self) -> dict[str, list[Example]]:
        out: dict[str, list[Example]] = {s: [] for s in SPLITS}
        report = SkipReport("bundled proteins", unit="protein #")
        for k, protein in enumerate(bundled_proteins(self.cache_dir)):
            report.total += 1
            why = self.alphabet.problem(protein.sequence, self.max_length)
            if why:
                report.skip(why, k + 1)
                continue
            where = protein.position / protein.genome_length
            split = "test" if where >= 0.9 else "valid" if where >= 0.85 else "train"
            out[split].append(Example(self.alphabet.encode(protein.sequence), protparam(protein.sequence)[self.target],
                                      f"{protein.id}"))
        report.warn()
        return out

    def _from_csv(self) -> dict[str, list[Example]]:
        out: dict[str, list[Example]] = {s: [] for s in SPLITS}
        for split, path in self.files.items():
            if path is None:
                continue
            report, kept = SkipReport(str(path)), 0
            for line, seq, label in self._records(Path(path), report):
                why = self.alphabet.problem(seq, self.max_length) or self._label_problem(label)
                if why:
                    report.skip(why, line)
                    continue
                ex = Example(self.alphabet.encode(seq), float(label) if self.kind == "regression" else label,
                             f"{path}:{line}")
                out[self._carve(seq) if split == "train" else split].append(ex)
                kept += 1
            report.warn()
            report.require(kept)
        return out

    def _records(self, path: Path, report: SkipReport):
        """(line, sequence, label) of a CSV file, or of a FASTA file labelled by ``labels``."""
        if not is_fasta(path):
            for line, row in delimited_rows(path, report, ",", ["sequence", "label"], quote='"'):
                yield line, row["sequence"].strip(), row["label"].strip()
            return
        table = self._label_table()
        for rec in fasta_records(path, report):
            if rec.id not in table:
                report.skip("no label", rec.line, f"id not in {self.labels_file}")
                continue
            yield rec.line, rec.sequence, table[rec.id]

    def _label_table(self) -> dict[str, str]:
        report, table = SkipReport(str(self.labels_file)), {}
        for line, row in delimited_rows(Path(self.labels_file), report, ",", ["id", "label"], quote='"'):
            key = row["id"].strip()
            if key in table:
                report.skip("repeated id", line)
            else:
                table[key] = row["label"].strip()
        report.warn()
        report.require(len(table))
        return table

    def _carve(self, key: str) -> str:
        """A train-file example's split: train, unless that split has no file of its own."""
        split = split_of(key, self.split_percent)
        return split if split != "train" and self.files[split] is None else "train"

    def _label_problem(self, label: str) -> str | None:
        if self.kind == "classification":
            return "empty label" if not label else None
        try:
            value = float(label)
        except ValueError:
            return "label not a number"
        return None if math.isfinite(value) else "label not a finite number"

    def _from_folder(self, root: Path) -> dict[str, list[Example]]:
        if not (root / "train").is_dir():
            raise DataError(f"{root}: no train/ folder (expected {root}/train/<class>/*.txt)")
        out: dict[str, list[Example]] = {s: [] for s in SPLITS}
        for part in ("train", "test"):
            for class_dir in sorted(p for p in (root / part).glob("*") if p.is_dir()):
                report = SkipReport(str(class_dir), unit="file #")  # (files counted in name order)
                for k, file in enumerate(sorted(class_dir.glob("*.txt"))):
                    report.total += 1
                    try:
                        seq = "".join(file.read_text(encoding="utf-8").split())
                    except UnicodeDecodeError:
                        report.skip("invalid UTF-8", k + 1)
                        continue
                    why = self.alphabet.problem(seq, self.max_length)
                    if why:
                        report.skip(why, k + 1)
                        continue
                    split = part
                    if part == "train":
                        carved = split_of(file.name, self.split_percent)
                        split = "valid" if carved != "train" else "train"
                    out[split].append(Example(self.alphabet.encode(seq), class_dir.name, str(file)))
                report.warn()
        return out

    def _drop_unseen_classes(self) -> None:
        if self.kind != "classification":
            return
        known = {e.label for e in self._splits["train"]}
        for split in ("valid", "test"):
            unseen = [e for e in self._splits[split] if e.label not in known]
            if unseen:
                warnings.warn(f"{unseen[0].origin}: skipped {len(unseen)} {split} example(s) of classes training "
                              f"never saw ({', '.join(sorted({str(e.label) for e in unseen})[:5])})", DataWarning)
                self._splits[split] = [e for e in self._splits[split] if e.label in known]

    # ------------------------------------------------------------------ loaders

    def setup(self, stage: str | None = None) -> None:
        self.splits()

    def _loader(self, split: str, shuffle: bool):
        data = self.splits()[split]
        if not data:
            raise UserError(f"the {split} split is empty: give a {split} file or raise its share in split_percent")
        classes = self.classes
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          collate_fn=partial(collate, classes=classes))
