"""Per-nucleotide gene labels: coding or not, which strand, which codon position.

Seven classes, so that one label says everything a gene finder decides about a base:

    0 non-coding | 1-3 forward-strand codon position 1, 2, 3 | 4-6 reverse-strand codon position 1, 2, 3

(codon positions are counted from the gene's start codon on its own strand). The labels come
from a GFF3 file's ``CDS`` features, or, for the bundled genome, from running the ``pyrodigal``
gene finder on it: the model then learns to reproduce a rule-based annotator. Where genes
overlap, the first one written keeps the bases (pyrodigal's overlaps are a few bases long).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from core.data.reports import SkipReport, text_lines

GENE_LABELS = ("non-coding", "+1", "+2", "+3", "-1", "-2", "-3")
NON_CODING = 0
#: label of the same base read on the other strand (reverse-complement augmentation)
SWAP_STRAND = np.array([0, 4, 5, 6, 1, 2, 3], dtype=np.int64)


def paint_cds(labels: np.ndarray, start: int, end: int, strand: int, phase: int = 0) -> None:
    """Label bases ``start..end`` (0-based, inclusive) as one coding stretch, where still free.
    ``phase``: bases before the first complete codon (GFF3 column 8), counted on ``strand``."""
    pos = np.arange(start, end + 1)
    codon = (pos - start - phase) % 3 if strand > 0 else (end - phase - pos) % 3
    free = labels[start:end + 1] == NON_CODING
    labels[start:end + 1][free] = (codon + (1 if strand > 0 else 4))[free]


def pyrodigal_labels(sequence: str) -> tuple[np.ndarray, int]:
    """Labels from pyrodigal's single-genome mode (trained on this sequence) and the gene count."""
    import pyrodigal

    finder = pyrodigal.GeneFinder()
    finder.train(sequence)
    labels = np.zeros(len(sequence), dtype=np.int64)
    genes = finder.find_genes(sequence)
    for gene in genes:  # 1-based inclusive coordinates; a gene on -1 starts at ``end``
        paint_cds(labels, gene.begin - 1, gene.end - 1, gene.strand)
    return labels, len(genes)


def read_cds_labels(path: str | Path, lengths: Mapping[str, int]) -> tuple[dict[str, np.ndarray], SkipReport]:
    """Per-sequence labels from an annotation file: GFF3 (its ``CDS`` lines; other feature types
    are read and ignored) or, for ``.bed`` / ``.bed.gz``, BED6+ lines each holding one CDS
    (``chrom start end name score strand``, 0-based half-open; with BED12's ``thickStart thickEnd``
    the coding part is the thick one; phase 0 at the feature's start on its strand). Skips:
    ``not 9 tab-separated columns`` (GFF) or ``fewer than 6 columns`` (BED), ``unknown sequence
    id`` (not in the FASTA), ``bad coordinates`` (not integers, start > end, or beyond the
    sequence), ``bad strand`` (not + or -), ``bad phase`` (GFF: not 0, 1, 2)."""
    path = Path(path)
    bed = path.name.lower().endswith((".bed", ".bed.gz"))
    report = SkipReport(str(path))
    labels = {name: np.zeros(n, dtype=np.int64) for name, n in lengths.items()}
    for lineno, text in text_lines(path, report):
        if text.startswith("#") or (bed and text.startswith(("track", "browser"))):
            report.total -= 1  # directives, headers and comments are not records
            if text.startswith("##FASTA"):
                break  # an embedded FASTA section follows: no more features
            continue
        fields = text.rstrip("\n").split("\t")
        if bed:
            if len(fields) < 6:
                report.skip("fewer than 6 columns", lineno, "chrom start end name score strand")
                continue
            seqid, start, end, strand, phase = fields[0], fields[1], fields[2], fields[5], "0"
            if len(fields) >= 8:
                start, end = fields[6], fields[7]
            start = str(int(start) + 1) if start.isdigit() else start  # to GFF's 1-based inclusive
        else:
            if len(fields) != 9:
                report.skip("not 9 tab-separated columns", lineno)
                continue
            seqid, _, kind, start, end, _, strand, phase, _ = fields
            if kind != "CDS":
                continue
        if seqid not in labels:
            report.skip("unknown sequence id", lineno, "not in the FASTA file")
            continue
        try:
            begin, stop = int(start) - 1, int(end) - 1
        except ValueError:
            begin = stop = -1
        if not 0 <= begin <= stop < lengths[seqid]:
            report.skip("bad coordinates", lineno)
            continue
        if strand not in ("+", "-"):
            report.skip("bad strand", lineno, "+ or - for a CDS")
            continue
        if phase not in ("0", "1", "2"):
            report.skip("bad phase", lineno, "0, 1 or 2 for a CDS")
            continue
        paint_cds(labels[seqid], begin, stop, 1 if strand == "+" else -1, int(phase))
    return labels, report


def coding_stretches(labels: np.ndarray, min_length: int = 1) -> list[tuple[int, int, int, int]]:
    """The CDS features a label track describes, the inverse of :func:`paint_cds`: maximal runs
    of one strand's labels whose codon position advances base by base, as ``(start, end, strand,
    phase)`` (0-based inclusive; phase from the codon position of the run's first base on its
    strand). A frame shift starts a new feature, so every feature has one reading frame. Runs
    shorter than ``min_length`` are dropped: a tagger's stray coding calls are not genes."""
    labels = np.asarray(labels)
    strand = np.where((labels >= 1) & (labels <= 3), 1, np.where(labels >= 4, -1, 0))
    codon = np.where(strand > 0, labels - 1, labels - 4)
    # along the genome a + gene's codon position goes 0 1 2 0 ..., a - gene's 2 1 0 2 ...
    follows = (strand[1:] == strand[:-1]) & ((codon[1:] - codon[:-1] - strand[1:]) % 3 == 0)
    edges = np.flatnonzero(~follows) + 1
    out = []
    for a, b in zip(np.r_[0, edges], np.r_[edges, len(labels)]):
        s = int(strand[a])
        if s == 0 or b - a < min_length:
            continue
        first = int(codon[a] if s > 0 else codon[b - 1])  # the gene's first base on its own strand
        out.append((int(a), int(b - 1), s, (-first) % 3))
    return out


def gff3_lines(seqid: str, stretches: list[tuple[int, int, int, int]], source: str = "seqlab") -> list[str]:
    """GFF3 ``CDS`` lines (1-based coordinates) for :func:`coding_stretches`' output."""
    return [f"{seqid}\t{source}\tCDS\t{a + 1}\t{b + 1}\t.\t{'+' if s > 0 else '-'}\t{phase}\t"
            f"ID={seqid}_cds{k + 1}\n" for k, (a, b, s, phase) in enumerate(stretches)]
