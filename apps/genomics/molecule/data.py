"""Molecules for the Regression Transformer: SMILES with their RDKit properties written as digit
tokens (:mod:`apps.genomics.molecule.numbers`).

Default: the MOSES benchmark (:mod:`apps.genomics.molecules`): the first ``train_limit`` training
molecules (the last ``valid_size`` of them are validation) and the first ``test_limit`` test ones.
Or ``train``/``test``: CSV files whose first column is SMILES (header ``SMILES``). Properties are
always RDKit's, computed once and cached beside the MOSES files.

Skipped with one warning per file naming the lines: strings that are not SMILES, SMILES RDKit
cannot parse, molecules longer than ``max_length`` tokens, and (outside training) tokens the
training vocabulary lacks.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from apps.genomics.molecule.numbers import FORMATS, MASK, SEPARATOR
from apps.genomics.molecules import PROPERTIES, molecule_properties, moses_file, read_smiles
from core.data import SplitDataModule
from core.data.reports import DataWarning, SkipReport
from core.data.splits import default_cache_dir
from core.errors import DataError, UserError
from core.io import atomic_write_text
from core.tokenizers import SmilesTokenizer, SpaceTokenizer, tokenizer_from_json
from core.tokenizers.base import UNK_ID


@dataclass
class Molecule:
    smiles: str
    values: dict[str, float]
    ids: np.ndarray  # int64: property prefix, separator, SMILES tokens
    origin: str


def prefix_tokens(properties: list[str], values: dict[str, float]) -> list[str]:
    out: list[str] = []
    for name in properties:
        out += FORMATS[name].tokens(values[name])
    return out + [SEPARATOR]


def collate(items: list[Molecule], prefix: int, pad_id: int = 0) -> dict[str, torch.Tensor]:
    """ids/mask [B, L]; ``is_smiles`` marks the SMILES positions (what generation may rewrite)."""
    width = max(len(m.ids) for m in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    for r, m in enumerate(items):
        ids[r, :len(m.ids)] = torch.from_numpy(m.ids)
    mask = ids != pad_id
    is_smiles = mask.clone()
    is_smiles[:, :prefix] = False
    return {"ids": ids, "mask": mask, "is_smiles": is_smiles}


class MoleculeDataModule(SplitDataModule):
    def __init__(self, targets: list[str] | None = None, train: str | None = None, test: str | None = None,
                 train_limit: int = 100_000, valid_size: int = 2_000, test_limit: int = 5_000, max_length: int = 100,
                 vocab_size: int = 120, batch_size: int = 64, cache_dir: str | None = None, num_workers: int = 0):
        """``targets``: the properties each prefix holds, in order (``qed``, ``logp``)."""
        super().__init__()
        self.save_hyperparameters()  # in checkpoints: predict and export read the same data
        self.properties = list(targets or ["qed"])
        unknown = [p for p in self.properties if p not in PROPERTIES]
        if unknown or len(set(self.properties)) != len(self.properties):
            raise UserError(f"targets must be distinct names from {', '.join(PROPERTIES)}, got {self.properties}")
        if (train is None) != (test is None):
            raise UserError("give both train and test SMILES files, or neither (MOSES)")
        if min(train_limit, test_limit, max_length) < 1 or not 0 <= valid_size < train_limit:
            raise UserError("train_limit, test_limit and max_length must be positive and valid_size below train_limit")
        self.files = {"train": train, "test": test}
        self.train_limit, self.valid_size, self.test_limit = train_limit, valid_size, test_limit
        self.max_length, self.vocab_size_limit = max_length, vocab_size
        self.batch_size, self.cache_dir, self.num_workers = batch_size, cache_dir, num_workers
        self.tokenizer: SpaceTokenizer | None = None
        self._splits: dict[str, list[Molecule]] | None = None

    # ------------------------------------------------------------------ sizes the model needs

    @property
    def prefix_length(self) -> int:
        return len(prefix_tokens(self.properties, {p: 0.0 for p in self.properties}))

    @property
    def vocab_size(self) -> int:
        self.splits()
        return self.tokenizer.vocab_size

    def tokenizers_json(self) -> dict[str, str]:
        self.splits()
        return {"molecule": self.tokenizer.to_json()}

    def use_tokenizers_json(self, tokenizers: dict[str, str]) -> None:
        self.tokenizer = tokenizer_from_json(tokenizers["molecule"])
        self._splits = None

    # ------------------------------------------------------------------ molecules

    def _read(self, split: str) -> list[tuple[str, str, dict[str, float]]]:
        """(origin, SMILES, properties) of the parseable molecules of one file."""
        path = Path(self.files[split]) if self.files[split] else moses_file(split, self.cache_dir)
        limit = self.train_limit if split == "train" else self.test_limit
        report = SkipReport(str(path))
        rows = read_smiles(path, report, limit)
        values = self._properties([s for _, s in rows])
        out = []
        for (line, smiles), props in zip(rows, values):
            if props is None:
                report.skip("RDKit cannot parse", line)
            else:
                out.append((f"{path}:{line}", smiles, props))
        report.warn()
        report.require(len(out))
        return out

    def _properties(self, smiles: list[str]) -> list[dict[str, float] | None]:
        """RDKit's values, cached by the list's digest (QED takes about a millisecond a molecule)."""
        digest = hashlib.sha1("\n".join(smiles).encode()).hexdigest()[:16]
        path = Path(self.cache_dir or default_cache_dir()) / "genomics" / "moses" / f"properties-{digest}.tsv"
        if path.is_file():
            lines = path.read_text().splitlines()
            if len(lines) == len(smiles):
                return [None if line == "-" else dict(zip(PROPERTIES, map(float, line.split("\t")))) for line in lines]
        values = [molecule_properties(s) for s in smiles]
        atomic_write_text(path, "".join("-\n" if v is None else "\t".join(f"{v[p]:.6f}" for p in PROPERTIES) + "\n"
                                        for v in values))
        return values

    def splits(self) -> dict[str, list[Molecule]]:
        if self._splits is not None:
            return self._splits
        train_rows, test_rows = self._read("train"), self._read("test")
        if self.valid_size >= len(train_rows):
            raise DataError(f"{train_rows[0][0].rsplit(':', 1)[0]}: {len(train_rows)} usable molecules, "
                            f"valid_size is {self.valid_size}")
        cut = len(train_rows) - self.valid_size
        if self.tokenizer is None:
            learned = SmilesTokenizer.train((s for _, s, _ in train_rows[:cut]),
                                            vocab_size=self.vocab_size_limit)
            fixed = list(dict.fromkeys([t for name in self.properties for t in FORMATS[name].vocabulary()]
                                       + [SEPARATOR, MASK]))  # (properties share the digits of a place)
            self.tokenizer = SpaceTokenizer(fixed + [s for s in learned.symbols if s not in fixed])
        self._splits = {"train": self._encode(train_rows[:cut], "train"),
                        "valid": self._encode(train_rows[cut:], "valid"),
                        "test": self._encode(test_rows, "test")}
        if not self._splits["train"]:
            raise DataError("no training molecules left (all longer than max_length?)")
        return self._splits

    def _encode(self, rows, split: str) -> list[Molecule]:
        out, skipped = [], {"longer than max_length": [], "token not in the training vocabulary": []}
        for origin, smiles, values in rows:
            pieces = SmilesTokenizer.split(smiles)
            if len(pieces) > self.max_length:
                skipped["longer than max_length"].append(origin)
                continue
            ids = self.tokenizer.encode(" ".join(prefix_tokens(self.properties, values) + pieces))
            if UNK_ID in ids:
                skipped["token not in the training vocabulary"].append(origin)
                continue
            out.append(Molecule(smiles, values, np.array(ids, dtype=np.int64), origin))
        for reason, where in skipped.items():
            if where:
                warnings.warn(f"{where[0]}: skipped {len(where)} {split} molecule(s) ({reason}, "
                              f"max_length {self.max_length})", DataWarning)
        return out

    # ------------------------------------------------------------------ loaders

    def setup(self, stage: str | None = None) -> None:
        self.splits()

    def _loader(self, split: str, shuffle: bool):
        data = self.splits()[split]
        if not data:
            raise UserError(f"the {split} split is empty")
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          collate_fn=partial(collate, prefix=self.prefix_length))
