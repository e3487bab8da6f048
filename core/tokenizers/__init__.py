"""Tokenizers with fixed special ids (pad 0, bos 1, eos 2, unk 3), JSON save/load and training.

Importing this package registers every kind ("char", "space", "smiles", "bpe",
"unigram") so that :func:`tokenizer_from_json` and :func:`train_tokenizer`
can find them by name.
"""

from core.tokenizers.base import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    Tokenizer,
    atomic_write_text,
    load_tokenizer,
    tokenizer_from_json,
    tokenizer_kinds,
    train_tokenizer,
)
from core.tokenizers.hf import HFTokenizer, load_or_train
from core.tokenizers.subword import BPETokenizer, SubwordTokenizer, UnigramTokenizer
from core.tokenizers.symbols import CharTokenizer, SmilesTokenizer, SpaceTokenizer, SymbolTokenizer

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "SPECIAL_TOKENS",
    "UNK_ID",
    "BPETokenizer",
    "CharTokenizer",
    "HFTokenizer",
    "SmilesTokenizer",
    "SpaceTokenizer",
    "SubwordTokenizer",
    "SymbolTokenizer",
    "Tokenizer",
    "UnigramTokenizer",
    "atomic_write_text",
    "load_or_train",
    "load_tokenizer",
    "tokenizer_from_json",
    "tokenizer_kinds",
    "train_tokenizer",
]
