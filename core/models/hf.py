"""A local Hugging Face seq2seq checkpoint (Marian, BART, T5 ...) behind the same interface as
:class:`core.models.EncoderDecoder`, so apps can fine-tune and decode it with core's training
and search code. Loads from disk only (``local_files_only=True``): nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class HFDecoderState:
    """Encoder output + the HF cache object; satisfies core.generation's state protocol."""

    encoder_hidden: torch.Tensor
    encoder_mask: torch.Tensor
    past: Any = None  # transformers Cache (None before the first step)
    offset: int = 0
    #: rows per source after ``expand`` (every row keeps its own copy of the encoder output)
    beams: int = 1

    def index_select(self, index: torch.Tensor) -> "HFDecoderState":
        if self.past is not None:
            self.past.reorder_cache(index)  # in place: the searches never reuse the old state
        return HFDecoderState(self.encoder_hidden.index_select(0, index), self.encoder_mask.index_select(0, index),
                              self.past, self.offset, self.beams)

    def expand(self, k: int) -> "HFDecoderState":
        """(The HF cache keeps its cross-attention keys per row, so the encoder output is repeated.)"""
        expanded = self.index_select(torch.arange(self.batch_size, device=self.device).repeat_interleave(k))
        expanded.beams = self.beams * k
        return expanded

    def reorder(self, index: torch.Tensor) -> "HFDecoderState":
        return self.index_select(index)

    def keep_sources(self, sources: torch.Tensor) -> "HFDecoderState":
        return self.index_select((sources[:, None] * self.beams + torch.arange(self.beams, device=sources.device)).flatten())

    @property
    def batch_size(self) -> int:
        return self.encoder_hidden.shape[0]

    @property
    def device(self) -> torch.device:
        return self.encoder_hidden.device


class HFEncoderDecoder(nn.Module):
    """``features`` returns logits (HF heads differ: Marian adds a bias, T5 rescales), so ``head``
    is the identity and the training loss code stays the same for both model families."""

    def __init__(self, path: str):
        super().__init__()
        from transformers import AutoModelForSeq2SeqLM

        # from_pretrained returns the model in eval mode, and Lightning keeps the modes it finds:
        # without train() here, fine-tuning would run with dropout off
        self.hf = AutoModelForSeq2SeqLM.from_pretrained(path, local_files_only=True).train()
        cfg = self.hf.config
        self.pad_id = cfg.pad_token_id
        self.eos_id = cfg.eos_token_id
        self.bos_id = cfg.decoder_start_token_id if cfg.decoder_start_token_id is not None else cfg.pad_token_id
        self.head = nn.Identity()

    def features(self, src_ids: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.hf(input_ids=src_ids, attention_mask=(src_ids != self.pad_id).long(), decoder_input_ids=tgt_in,
                       use_cache=False).logits

    def forward(self, src_ids: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.features(src_ids, tgt_in)

    def start(self, src_ids: torch.Tensor) -> HFDecoderState:
        mask = (src_ids != self.pad_id).long()
        hidden = self.hf.get_encoder()(input_ids=src_ids, attention_mask=mask).last_hidden_state
        return HFDecoderState(hidden, mask)

    def step(self, ids: torch.Tensor, state: HFDecoderState):
        out = self.hf(encoder_outputs=(state.encoder_hidden,), attention_mask=state.encoder_mask, decoder_input_ids=ids,
                      past_key_values=state.past, use_cache=True)
        return out.logits, HFDecoderState(state.encoder_hidden, state.encoder_mask, out.past_key_values,
                                          state.offset + ids.shape[1], state.beams)
