"""A Hugging Face tokenizer already on disk (next to a Marian/BART/T5 checkpoint), behind the
:class:`~core.tokenizers.base.Tokenizer` interface.

Unlike the other kinds its special ids are the pretrained model's own (Marian pads with 58100,
T5 with 0 and ends with 1), so code that uses it must read ``pad_id``/``bos_id``/``eos_id`` from the
instance. ``bos_id`` is the model's ``decoder_start_token_id``: the token a decoder is fed first.
Loading is local only; nothing is downloaded.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from core.tokenizers.base import Tokenizer, register_tokenizer


@register_tokenizer("hf")
class HFTokenizer(Tokenizer):
    def __init__(self, path: str | Path):
        from transformers import AutoTokenizer

        self.path = str(Path(path).resolve())
        self.tok = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        config = Path(self.path) / "config.json"
        start = json.loads(config.read_text()).get("decoder_start_token_id") if config.exists() else None
        self.pad_id = self.tok.pad_token_id
        self.eos_id = self.tok.eos_token_id
        self.unk_id = self.tok.unk_token_id if self.tok.unk_token_id is not None else self.pad_id
        self.bos_id = start if start is not None else (self.tok.bos_token_id if self.tok.bos_token_id is not None else self.pad_id)
        if self.pad_id is None or self.eos_id is None:
            raise ValueError(f"the tokenizer in {self.path} needs a pad and an eos token")

    @property
    def vocab_size(self) -> int:
        return len(self.tok)

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)

    def id_to_token(self, token_id: int) -> str | None:
        return self.tok.convert_ids_to_tokens(token_id) if 0 <= token_id < self.vocab_size else None

    def token_to_id(self, token: str) -> int | None:
        i = self.tok.convert_tokens_to_ids(token)
        return None if i is None or i == self.tok.unk_token_id and token != self.tok.unk_token else i

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "path": self.path}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> "HFTokenizer":
        return cls(state["path"])

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, min_frequency: int) -> Tokenizer:
        raise ValueError('a Hugging Face tokenizer is loaded, not trained: use "hf:<checkpoint dir>"')


def load_or_train(spec: str, texts, vocab_size: int) -> Tokenizer:
    """``hf:<dir>`` loads the tokenizer saved beside a local HF checkpoint; any other kind is trained."""
    from core.tokenizers.base import train_tokenizer

    if spec.startswith("hf:"):
        return HFTokenizer(spec[3:])
    return train_tokenizer(spec, texts() if callable(texts) else texts, vocab_size=vocab_size)
