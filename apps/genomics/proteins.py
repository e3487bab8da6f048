"""Proteins: residue tokens, computed properties, and the bundled protein set.

The bundled set is every gene pyrodigal calls on the bundled genome (the same calls the gene
tagger learns), translated with the genome's translation table. Each protein's labels come from
Biopython's ProtParam, i.e. they are COMPUTED from the sequence by published formulas
(isoelectric point, Kyte-Doolittle GRAVY, Guruprasad's instability index), not measured in a lab:
a model that learns them shows the pipeline and compares backbones on real protein sequences.
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apps.genomics.genome import bundled_fasta
from core.data.readers import read_fasta
from core.data.splits import default_cache_dir
from core.io import atomic_write_text
from core.tokenizers import CharTokenizer
from core.tokenizers.base import UNK_ID

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
#: IUPAC codes beyond the twenty (unknown, Asx, Glx, Xle, selenocysteine, pyrrolysine): read as X
UNUSUAL = "XBZJUO"
#: every character a protein sequence may hold (both cases; a trailing stop ``*`` is dropped first)
PROTEIN_ALPHABET = frozenset(AMINO_ACIDS + UNUSUAL + (AMINO_ACIDS + UNUSUAL).lower())
#: ProtParam's threshold: an instability index below 40 predicts a stable protein
STABLE_BELOW = 40.0
PROPERTIES = ("isoelectric_point", "gravy", "instability_index", "stability")


def protein_tokenizer() -> CharTokenizer:
    """Ids 4-23 are the twenty residues, 24 is X."""
    return CharTokenizer(list(AMINO_ACIDS) + ["X"])


def protein_table(tokenizer: CharTokenizer) -> np.ndarray:
    """byte -> token id (lowercase folded, unusual residues as X, UNK outside the alphabet)."""
    table = np.full(256, UNK_ID, dtype=np.int64)
    for char in PROTEIN_ALPHABET:
        table[ord(char)] = tokenizer.token_to_id("X" if char.upper() in UNUSUAL else char.upper())
    return table


def protparam(sequence: str) -> dict[str, float | str]:
    """The bundled labels of one protein. ProtParam's tables cover the twenty residues only, so
    unusual ones are left out of the computation (as ExPASy's ProtParam does)."""
    from Bio.SeqUtils.ProtParam import ProteinAnalysis

    clean = "".join(c for c in sequence.upper() if c in AMINO_ACIDS)
    analysis = ProteinAnalysis(clean)
    instability = float(analysis.instability_index())
    return {"isoelectric_point": float(analysis.isoelectric_point()), "gravy": float(analysis.gravy()),
            "instability_index": instability, "stability": "stable" if instability < STABLE_BELOW else "unstable"}


@dataclass(frozen=True)
class Protein:
    id: str
    sequence: str
    #: 0-based genome position of the gene's first base (the bundled set splits by region)
    position: int
    genome_length: int


def bundled_proteins(cache_dir: str | Path | None = None) -> list[Protein]:
    """The bundled genome's proteins, in genome order. pyrodigal takes ~15 s, so the table is
    built once into the cache (``genomics/<genome digest>.proteins.tsv``)."""
    records, _ = read_fasta(bundled_fasta())
    record = records[0]
    digest = hashlib.sha1(record.sequence.encode("ascii")).hexdigest()[:16]
    path = Path(cache_dir or default_cache_dir()) / "genomics" / f"{digest}.proteins.tsv"
    if not path.is_file():
        atomic_write_text(path, _protein_table(record.id, record.sequence))
    rows = list(csv.reader(io.StringIO(path.read_text()), delimiter="\t"))
    return [Protein(name, seq, int(pos), len(record.sequence)) for name, pos, seq in rows[1:]]


def _protein_table(record: str, sequence: str) -> str:
    import pyrodigal

    finder = pyrodigal.GeneFinder()
    finder.train(sequence)
    lines = ["id\tposition\tsequence"]
    for k, gene in enumerate(finder.find_genes(sequence)):
        protein = gene.translate(include_stop=False)
        if not gene.partial_begin:  # a start codon codes for methionine whatever it reads elsewhere
            protein = "M" + protein[1:]
        lines.append(f"{record}_{k + 1}\t{min(gene.begin, gene.end) - 1}\t{protein}")
    return "\n".join(lines) + "\n"
