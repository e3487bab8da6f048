"""Molecules: the bundled MOSES SMILES and the properties RDKit computes for them.

MOSES (Polykovskiy et al. 2020, 1.9 M drug-like molecules from ZINC) ships inside the PyPI
``molsets`` wheel as ``moses/dataset/data/{train,test}.csv.gz``. The package itself cannot be
installed here (it pins ``pomegranate==0.12``, which no longer builds), so the wheel is fetched
once (:func:`core.data.wheels.wheel_members`: ``pip download --no-deps`` from the package index),
its two files are copied into the cache (``genomics/moses/``) and the wheel is deleted; nothing
imports ``moses``.

Properties are RDKit's: QED (Bickerton's drug-likeness, 0-1) and Crippen logP. They are computed,
not measured, which is what the Regression Transformer's own QED experiments use.
"""
from __future__ import annotations

import gzip
from pathlib import Path

from core.data.reports import SkipReport
from core.data.splits import default_cache_dir
from core.data.wheels import wheel_members
from core.errors import DataError
from core.tokenizers import SmilesTokenizer

MOSES_WHEEL = "molsets==0.3.1"
MOSES_FILES = {"train": "moses/dataset/data/train.csv.gz", "test": "moses/dataset/data/test.csv.gz"}
PROPERTIES = ("qed", "logp")


def moses_file(split: str, cache_dir: str | Path | None = None) -> Path:
    """The cached MOSES ``train`` or ``test`` CSV (header ``SMILES``), fetched on first use."""
    root = Path(cache_dir or default_cache_dir()) / "genomics" / "moses"
    path = root / Path(MOSES_FILES[split]).name
    if not path.is_file():
        wheel_members(MOSES_WHEEL, {member: Path(member).name for member in MOSES_FILES.values()}, root)
    return path


def read_smiles(path: str | Path, report: SkipReport, limit: int | None = None) -> list[tuple[int, str]]:
    """``(line, SMILES)`` from a one-column CSV (gzip too) whose header is ``SMILES`` or ``smiles``;
    the first ``limit`` records. Strings the atom-level tokenizer cannot cut are skipped
    (``not SMILES``); RDKit's parse is checked where the molecule is used."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    out: list[tuple[int, str]] = []
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        header = f.readline().strip().split(",")[0]
        if header.lower() != "smiles":
            raise DataError(f"{path}: the first line must be the header SMILES (found {header[:40]!r})")
        for line, text in enumerate(f, start=2):
            if limit is not None and len(out) >= limit:
                break
            report.total += 1
            smiles = text.strip().split(",")[0]
            if not smiles:
                report.skip("empty SMILES", line)
            elif not SmilesTokenizer.is_tokenizable(smiles):
                report.skip("not SMILES", line)
            else:
                out.append((line, smiles))
    return out


def molecule_properties(smiles: str) -> dict[str, float] | None:
    """RDKit's QED and Crippen logP, or None when RDKit cannot parse ``smiles``."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import QED, Crippen

    RDLogger.DisableLog("rdApp.*")  # a bad SMILES is counted by the caller, not printed by RDKit
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    return {"qed": float(QED.qed(mol)), "logp": float(Crippen.MolLogP(mol))}


def canonical(smiles: str) -> str | None:
    """RDKit's canonical SMILES (for uniqueness and novelty), or None if it does not parse."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)
