"""Trained subword tokenizers (BPE, unigram) backed by Hugging Face ``tokenizers``.

Both are set up so that ``decode(encode(text)) == text`` for ordinary
detokenized text, because BLEU/chrF are computed on detokenized output:

* "bpe" is byte-level (GPT-2 style): every string is representable from the
  256 byte symbols, so nothing is ever unknown and spacing, punctuation and
  accents come back exactly.
* "unigram" uses Metaspace (SentencePiece style, spaces become "▁"); characters
  never seen in training become ``<unk>`` and runs of spaces collapse to one.

The specials ``<pad> <s> </s> <unk>`` are given to the trainers first, which
puts them at ids 0..3 as :mod:`core.tokenizers.base` requires.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from core.tokenizers.base import (
    SPECIAL_IDS,
    SPECIAL_TOKENS,
    UNK_ID,
    Tokenizer,
    register_tokenizer,
)


class SubwordTokenizer(Tokenizer):
    """Wraps a trained ``tokenizers.Tokenizer``; its JSON form embeds the HF JSON."""

    def __init__(self, hf: HFTokenizer) -> None:
        # Freshly trained unigram scores lose their last float digit in a JSON round trip;
        # normalising through JSON here makes a trained tokenizer identical to its reloaded copy.
        hf = HFTokenizer.from_str(hf.to_str())
        for i, token in enumerate(SPECIAL_TOKENS):
            if hf.token_to_id(token) != i:
                raise ValueError(f"special token {token!r} must have id {i}, has {hf.token_to_id(token)}")
        self._hf = hf

    @property
    def vocab_size(self) -> int:
        return self._hf.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self._hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._hf.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        n = self.vocab_size
        return self._hf.decode([i for i in map(int, ids) if i not in SPECIAL_IDS and 0 <= i < n])

    def id_to_token(self, token_id: int) -> str | None:
        return self._hf.id_to_token(token_id)

    def token_to_id(self, token: str) -> int | None:
        return self._hf.token_to_id(token)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "hf": json.loads(self._hf.to_str())}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> SubwordTokenizer:
        return cls(HFTokenizer.from_str(json.dumps(state["hf"])))


@register_tokenizer("bpe")
class BPETokenizer(SubwordTokenizer):
    """Byte-level BPE: merges learned over UTF-8 bytes, lossless round trip."""

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 1) -> BPETokenizer:
        hf = HFTokenizer(models.BPE(unk_token=SPECIAL_TOKENS[UNK_ID]))
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        hf.train_from_iterator(texts, trainer=trainer)
        return cls(hf)


@register_tokenizer("unigram")
class UnigramTokenizer(SubwordTokenizer):
    """SentencePiece-style unigram LM over Metaspace pieces.

    The HF unigram trainer has no frequency cut-off, so ``min_frequency`` is
    accepted for a uniform signature and ignored.
    """

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 1) -> UnigramTokenizer:
        hf = HFTokenizer(models.Unigram())
        hf.pre_tokenizer = pre_tokenizers.Metaspace()
        hf.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size,
            special_tokens=list(SPECIAL_TOKENS),
            unk_token=SPECIAL_TOKENS[UNK_ID],
            show_progress=False,
        )
        hf.train_from_iterator(texts, trainer=trainer)
        return cls(hf)
