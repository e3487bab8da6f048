"""Translation batches: tokenized examples, their token-budget buckets and the padded batch layout.

A batch is a dict::

    src_ids  LongTensor[B, S]  source ids + EOS, right-padded with PAD (0)
    tgt_ids  LongTensor[B, T]  BOS + target ids + EOS, right-padded (models shift it themselves)
    index    LongTensor[B]     record position within its split
    src_text list[str]         the source text
    refs     list[list[str]]   every reference for the record (training: just its target)

Prediction batches carry only ``src_ids``, ``src_text`` and ``index``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from core.data import cost_batches, pad
from core.tokenizers import BOS_ID, EOS_ID, PAD_ID, Tokenizer


@dataclass(frozen=True)
class Example:
    """A tokenized record, ready for collation (``tgt_ids`` is None for prediction)."""

    index: int
    src_ids: list[int]
    tgt_ids: list[int] | None
    src_text: str
    refs: tuple[str, ...] = ()


def token_budget_batches(
    src_lens: Sequence[int], tgt_lens: Sequence[int], max_tokens: int, seed: int | None = None
) -> list[list[int]]:
    """Record indices in batches whose padded size ``B*max(S) + B*max(T)`` fits ``max_tokens``.

    Lengths are the padded tensor lengths (EOS/BOS included); see :func:`core.data.cost_batches`
    (a ``seed`` mixes records of equal length into different batches).
    """
    return cost_batches(list(zip(src_lens, tgt_lens)), max_tokens, seed=seed, option="max_tokens")


@dataclass(frozen=True)
class SpecialIds:
    """Where padding/BOS/EOS go. Core tokenizers all use 0/1/2; a pretrained Hugging Face
    tokenizer (``hf:<dir>``) brings its model's own ids."""

    src_pad: int = PAD_ID
    src_eos: int = EOS_ID
    tgt_pad: int = PAD_ID
    tgt_bos: int = BOS_ID
    tgt_eos: int = EOS_ID

    @classmethod
    def of(cls, src: Tokenizer, tgt: Tokenizer) -> "SpecialIds":
        return cls(src.pad_id, src.eos_id, tgt.pad_id, tgt.bos_id, tgt.eos_id)


def collate(examples: Sequence[Example], ids: SpecialIds = SpecialIds()) -> dict[str, Any]:
    """Pad one batch: source + EOS, BOS + target + EOS (the layout is in the module docstring)."""
    batch: dict[str, Any] = {
        "src_ids": pad([[*e.src_ids, ids.src_eos] for e in examples], ids.src_pad),
        "index": torch.tensor([e.index for e in examples], dtype=torch.long),
        "src_text": [e.src_text for e in examples],
    }
    if all(e.tgt_ids is not None for e in examples):
        batch["tgt_ids"] = pad([[ids.tgt_bos, *e.tgt_ids, ids.tgt_eos] for e in examples], ids.tgt_pad)  # type: ignore[misc]
        batch["refs"] = [list(e.refs) for e in examples]
    return batch


@dataclass
class EncodedSplit:
    """One split after tokenization and length filtering, with its batches."""

    examples: list[Example]
    batches: list[list[int]]
