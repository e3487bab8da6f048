"""Tokenizers over a fixed symbol inventory: characters, or whitespace-separated symbols.

Grapheme-to-phoneme is the typical use: the source word is spelled character
by character ("char"), the target is a sequence of ARPAbet phonemes separated
by spaces ("space"). The vocabulary is simply every symbol seen in training,
most frequent first; anything else encodes to ``UNK_ID``. No normalisation
(lowercasing, Unicode folding) happens here: the data pipeline owns that.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from core.tokenizers.base import (
    SPECIAL_IDS,
    SPECIAL_TOKENS,
    UNK_ID,
    Tokenizer,
    register_tokenizer,
)


class SymbolTokenizer(Tokenizer):
    """Shared logic: a list of symbols whose ids start right after the specials."""

    joiner: ClassVar[str]

    def __init__(self, symbols: Sequence[str]) -> None:
        specials = set(SPECIAL_TOKENS)
        if len(set(symbols)) != len(symbols) or specials & set(symbols):
            raise ValueError("symbols must be unique and must not contain the special tokens")
        self._id_to_symbol: list[str] = [*SPECIAL_TOKENS, *symbols]
        self._symbol_to_id: dict[str, int] = {s: i for i, s in enumerate(self._id_to_symbol)}

    @staticmethod
    @abstractmethod
    def split(text: str) -> list[str]:
        """Cut ``text`` into symbols."""

    @property
    def vocab_size(self) -> int:
        return len(self._id_to_symbol)

    @property
    def symbols(self) -> list[str]:
        """The non-special vocabulary, in id order."""
        return self._id_to_symbol[len(SPECIAL_TOKENS) :]

    def encode(self, text: str) -> list[int]:
        # Special-token spellings inside text are ordinary (unknown) symbols, never control ids.
        lookup = self._symbol_to_id
        return [i if (i := lookup.get(s, UNK_ID)) not in SPECIAL_IDS else UNK_ID for s in self.split(text)]

    def decode(self, ids: Sequence[int]) -> str:
        n = self.vocab_size
        return self.joiner.join(self._id_to_symbol[i] for i in map(int, ids) if i not in SPECIAL_IDS and 0 <= i < n)

    def id_to_token(self, token_id: int) -> str | None:
        return self._id_to_symbol[token_id] if 0 <= token_id < self.vocab_size else None

    def token_to_id(self, token: str) -> int | None:
        return self._symbol_to_id.get(token)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "symbols": self.symbols}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> SymbolTokenizer:
        return cls(state["symbols"])

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 1) -> SymbolTokenizer:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(cls.split(text))
        for special in SPECIAL_TOKENS:
            counts.pop(special, None)
        # Most frequent first, ties broken alphabetically, so training is deterministic.
        ranked = sorted((s for s, c in counts.items() if c >= min_frequency), key=lambda s: (-counts[s], s))
        return cls(ranked[: vocab_size - len(SPECIAL_TOKENS)])


@register_tokenizer("char")
class CharTokenizer(SymbolTokenizer):
    """Every Unicode code point is a symbol (spaces included); decode joins with ""."""

    joiner = ""

    @staticmethod
    def split(text: str) -> list[str]:
        return list(text)


@register_tokenizer("space")
class SpaceTokenizer(SymbolTokenizer):
    """Symbols are the whitespace-separated fields ("HH AH0 L OW1"); decode joins with " "."""

    joiner = " "

    @staticmethod
    def split(text: str) -> list[str]:
        return text.split()


#: atom-level SMILES pieces (Schwaller et al., Molecular Transformer): bracket atoms whole, the two
#: two-letter organic atoms, single atoms and aromatic atoms, bonds, branches, ring closures (%nn too)
SMILES_PATTERN = re.compile(r"\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|>|\*|\$|%[0-9]{2}|[0-9]")


@register_tokenizer("smiles")
class SmilesTokenizer(SymbolTokenizer):
    """Atom-level SMILES: ``[nH]``, ``Cl``, ``%12`` are one symbol each; decode joins with "".
    Characters no SMILES piece matches are dropped by :meth:`split`; :meth:`is_tokenizable`
    says whether a string is made of pieces only (data modules skip those that are not)."""

    joiner = ""

    @staticmethod
    def split(text: str) -> list[str]:
        return SMILES_PATTERN.findall(text)

    @staticmethod
    def is_tokenizable(text: str) -> bool:
        return "".join(SMILES_PATTERN.findall(text)) == text
