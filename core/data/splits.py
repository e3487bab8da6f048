"""Where built corpora live, and deterministic train/valid/test splits.

Splits hash a stable key (a word, a verse reference, an utterance's text) with MD5, so they do not
depend on the Python hash seed, the order of the source or the machine, and every record sharing a
key (all pronunciations of a word, all voices reading one sentence) lands in the same split.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

SPLITS = ("train", "valid", "test")


def default_cache_dir() -> Path:
    """``$SEQLAB_CACHE`` if set, else ``~/.cache/seqlab``: built corpora and trained tokenizers live here."""
    return Path(os.environ.get("SEQLAB_CACHE") or Path.home() / ".cache" / "seqlab")


def split_of(key: str, percent: Sequence[int]) -> str:
    """Deterministic split name for ``key``; ``percent`` gives train/valid/test shares summing to 100."""
    if sum(percent) != 100 or len(percent) != len(SPLITS):
        raise ValueError(f"percent must be three shares summing to 100, got {percent}")
    bucket = int.from_bytes(hashlib.md5(key.encode("utf-8")).digest()[:8], "big") % 100
    for name, share in zip(SPLITS, percent):
        if bucket < share:
            return name
        bucket -= share
    raise AssertionError("unreachable: shares sum to 100")
