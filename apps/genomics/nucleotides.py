"""Single-nucleotide tokens, as HyenaDNA uses them: one token per base, nothing learned.

A genome is millions of characters, so encoding goes through a byte lookup table (numpy), not a
Python loop. IUPAC ambiguity codes (R, Y, K, ...) are real DNA and become ``N``; anything else in
a sequence is an error the data module reports. Lowercase (soft-masked repeats) folds to upper
case unless ``keep_case``, which gives the masked bases their own tokens.
"""
from __future__ import annotations

import numpy as np

from core.tokenizers import CharTokenizer
from core.tokenizers.base import UNK_ID

BASES = "ACGTN"
#: IUPAC codes other than ACGTN: ambiguous bases, read as N
AMBIGUOUS = "RYKMSWBDHVU"
#: every character a DNA sequence may hold (both cases)
ALPHABET = frozenset(BASES + AMBIGUOUS + (BASES + AMBIGUOUS).lower())
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}


def dna_tokenizer(keep_case: bool = False) -> CharTokenizer:
    """Ids 4-8 are A C G T N (after core's four specials); with ``keep_case`` 9-13 are a c g t n."""
    return CharTokenizer(list(BASES) + (list(BASES.lower()) if keep_case else []))


def encoder_table(tokenizer: CharTokenizer) -> np.ndarray:
    """byte -> token id for every byte (UNK for bytes outside the alphabet)."""
    keep_case = tokenizer.token_to_id("a") is not None
    table = np.full(256, UNK_ID, dtype=np.int64)
    for char in ALPHABET:
        base = "N" if char.upper() in AMBIGUOUS else char.upper()
        if keep_case and char.islower():
            base = base.lower()
        table[ord(char)] = tokenizer.token_to_id(base)
    return table


def encode_sequence(sequence: str, table: np.ndarray) -> np.ndarray:
    """A DNA string -> int64 token ids, one per base."""
    return table[np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)]


def complement_table(tokenizer: CharTokenizer) -> np.ndarray:
    """token id -> id of the complementary base (specials map to themselves)."""
    table = np.arange(tokenizer.vocab_size, dtype=np.int64)
    for base, other in COMPLEMENT.items():
        for a, b in ((base, other), (base.lower(), other.lower())):
            i, j = tokenizer.token_to_id(a), tokenizer.token_to_id(b)
            if i is not None and j is not None:
                table[i] = j
    return table
