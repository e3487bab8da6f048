"""Token-to-token encoder-decoder (the Transformer of Vaswani et al., with modern defaults)."""
from __future__ import annotations

import torch
from torch import nn

from core.models.config import Seq2SeqConfig
from core.models.decoder import Decoder
from core.models.encoder import Encoder
from core.models.state import DecoderState
from core.nn import TokenEmbedding
from core.tokenizers.base import BOS_ID, EOS_ID, PAD_ID


class EncoderDecoder(nn.Module):
    """``bos_id`` (the first decoder input) and ``eos_id`` belong to the model, so
    :func:`core.generation.generate` reads them from it."""

    def __init__(self, cfg: Seq2SeqConfig, pad_id: int = PAD_ID, bos_id: int = BOS_ID, eos_id: int = EOS_ID):
        super().__init__()
        self.cfg, self.pad_id, self.bos_id, self.eos_id = cfg, pad_id, bos_id, eos_id
        d = cfg.decoder.d_model
        self.src_embed = TokenEmbedding(cfg.src_vocab_size, d, padding_idx=pad_id)
        self.tgt_embed = self.src_embed if cfg.share_embeddings else TokenEmbedding(cfg.tgt_vocab_size, d, padding_idx=pad_id)
        self.encoder = Encoder(cfg.encoder)
        self.decoder = Decoder(cfg.decoder, cross_attention=True)
        self.head = nn.Linear(d, cfg.tgt_vocab_size, bias=False)
        if cfg.tie_output:
            self.head.weight = self.tgt_embed.weight

    def encode(self, src_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = src_ids != self.pad_id
        return self.encoder(self.src_embed(src_ids), mask), mask

    def features(self, src_ids: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Decoder hidden states [B, T, D] for teacher forcing; callers project only the positions
        they score, which saves the vocabulary matmul on padding."""
        memory, mask = self.encode(src_ids)
        return self.decoder(self.tgt_embed(tgt_in), memory=self.decoder.memory_states(memory, mask),
                            real=tgt_in != self.pad_id)[0]

    def forward(self, src_ids: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits [B, T, V]; ``tgt_in`` starts with BOS."""
        return self.head(self.features(src_ids, tgt_in))

    def start(self, src_ids: torch.Tensor) -> DecoderState:
        """Encode once and return the decoding state (empty caches + encoder keys/values)."""
        memory, mask = self.encode(src_ids)
        return self.decoder.init_state(src_ids.shape[0], memory.device, memory.dtype,
                                       self.decoder.memory_states(memory, mask))

    def step(self, ids: torch.Tensor, state: DecoderState):
        h, state = self.decoder(self.tgt_embed(ids), state=state)
        return self.head(h), state
