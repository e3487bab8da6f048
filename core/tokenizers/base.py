"""The tokenizer contract every model, data module and exporter relies on.

All tokenizers share four special ids so that models, losses and decoders can
hard-code them: padding is 0 (so ``torch.zeros`` is a valid padded batch), the
begin/end-of-sequence markers are 1 and 2, and unknown symbols map to 3.

Concrete tokenizers live in :mod:`core.tokenizers.symbols` (characters,
whitespace-separated symbols) and :mod:`core.tokenizers.subword` (trained
BPE/unigram models). Each registers itself under a ``kind`` name; that name is
the ``"type"`` field of its JSON form, which is how :func:`tokenizer_from_json`
knows which class to rebuild, and the ``kind`` argument of
:func:`train_tokenizer`.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from core.io import atomic_write_text

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
UNK_ID = 3
SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<s>", "</s>", "<unk>")
SPECIAL_IDS: frozenset[int] = frozenset(range(len(SPECIAL_TOKENS)))


class Tokenizer(ABC):
    """Maps text to ids and back; the special ids are fixed (see module docstring).

    ``encode`` never adds BOS/EOS: where those go (source gets EOS, target gets
    BOS...EOS) is a decision of the data pipeline, not of the tokenizer.
    """

    kind: ClassVar[str]
    pad_id: ClassVar[int] = PAD_ID
    bos_id: ClassVar[int] = BOS_ID
    eos_id: ClassVar[int] = EOS_ID
    unk_id: ClassVar[int] = UNK_ID

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, specials included; every id is in ``range(vocab_size)``."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` without BOS/EOS; symbols outside the vocabulary become ``UNK_ID``."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """Text for ``ids``, skipping special ids (and ids outside the vocabulary).

        It only filters: it does not stop at EOS, so callers cut generated
        sequences at EOS themselves when that is what they want.
        """

    @abstractmethod
    def id_to_token(self, token_id: int) -> str | None:
        """Vocabulary entry for ``token_id``, or ``None`` if there is none."""

    @abstractmethod
    def token_to_id(self, token: str) -> int | None:
        """Id of the vocabulary entry ``token``, or ``None`` if it is not one."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state; must contain ``"type": self.kind``."""

    @classmethod
    @abstractmethod
    def from_dict(cls, state: dict[str, Any]) -> Tokenizer:
        """Inverse of :meth:`to_dict`."""

    @classmethod
    @abstractmethod
    def train(cls, texts: Iterable[str], vocab_size: int, min_frequency: int) -> Tokenizer:
        """Learn a vocabulary from ``texts``."""

    def tokens(self, text: str) -> list[str]:
        """The vocabulary entries ``text`` is split into (unknown ones show as ``<unk>``)."""
        return [self.id_to_token(i) or SPECIAL_TOKENS[UNK_ID] for i in self.encode(text)]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode` over many texts; subclasses override it when they can go faster."""
        return [self.encode(text) for text in texts]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_json` to ``path`` atomically (readers never see half a file)."""
        atomic_write_text(path, self.to_json())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


_REGISTRY: dict[str, type[Tokenizer]] = {}
T = TypeVar("T", bound=type[Tokenizer])


def register_tokenizer(kind: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` buildable by name from JSON and from :func:`train_tokenizer`."""

    def decorate(cls: T) -> T:
        if kind in _REGISTRY:
            raise ValueError(f"tokenizer kind {kind!r} is registered twice")
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return decorate


def tokenizer_kinds() -> list[str]:
    return sorted(_REGISTRY)


def _tokenizer_class(kind: str) -> type[Tokenizer]:
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {tokenizer_kinds()}") from None


def train_tokenizer(kind: str, texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 1) -> Tokenizer:
    """Train a tokenizer of ``kind`` ("char", "space", "bpe", "unigram") on ``texts``.

    ``vocab_size`` counts the four specials. Symbol tokenizers keep at most
    that many entries (most frequent first); subword trainers aim for it.
    """
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}")
    return _tokenizer_class(kind).train(texts, vocab_size=vocab_size, min_frequency=min_frequency)


def tokenizer_from_json(s: str) -> Tokenizer:
    """Rebuild a tokenizer from :meth:`Tokenizer.to_json` output (dispatching on ``"type"``)."""
    state = json.loads(s)
    if not isinstance(state, dict) or "type" not in state:
        raise ValueError('tokenizer JSON must be an object with a "type" field')
    return _tokenizer_class(state["type"]).from_dict(state)


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    return tokenizer_from_json(Path(path).read_text(encoding="utf-8"))
