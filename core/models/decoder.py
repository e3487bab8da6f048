"""Causal decoder stack (optionally with cross-attention to an encoder) and the decoder-only LM."""
from __future__ import annotations

import torch
from torch import nn

from core.mixers import State
from core.models.blocks import Stack
from core.models.config import BackboneConfig, LMConfig
from core.models.state import DecoderState
from core.nn import TokenEmbedding
from core.tokenizers.base import BOS_ID, EOS_ID


class Decoder(nn.Module):
    """Features in, features out, causal. With ``cross_attention`` every block also attends to
    the encoder output, passed as per-layer key/value states (see :meth:`memory_states`)."""

    def __init__(self, cfg: BackboneConfig, cross_attention: bool = False):
        super().__init__()
        self.cross_attention = cross_attention
        self.stack = Stack(cfg, causal=True, cross=cross_attention)

    def memory_states(self, memory: torch.Tensor, memory_mask: torch.Tensor | None) -> list[State]:
        return [layer.cross.memory_state(memory, memory_mask) for layer in self.stack.layers]

    def init_state(self, batch: int, device, dtype, memory: list[State] | None = None) -> DecoderState:
        return DecoderState(self.stack.init_state(batch, device, dtype), memory, 0)

    def forward(self, x: torch.Tensor, memory: list[State] | None = None, state: DecoderState | None = None,
                mask: torch.Tensor | None = None, real: torch.Tensor | None = None):
        """Training: ``state=None`` -> (hidden, None). Decoding: continues ``state`` -> (hidden, new state).
        ``mask`` is key padding (left-padded prompts); ``real`` marks positions whose outputs are used
        (right padding needs no mask under causal attention, but skipping its MLP rows saves time)."""
        if state is None:
            return self.stack(x, mask=mask, memory=memory, real=real if real is not None else mask)[0], None
        h, layers = self.stack(x, mask=mask, states=state.layers, offset=state.offset, memory=state.memory)
        return h, DecoderState(layers, state.memory, state.offset + x.shape[1], state.beams)


class DecoderLM(nn.Module):
    """Causal language model: tokens -> next-token logits. ``bos_id``/``eos_id`` are the model's
    (:func:`core.generation.generate` reads them)."""

    def __init__(self, cfg: LMConfig, bos_id: int = BOS_ID, eos_id: int = EOS_ID):
        super().__init__()
        self.cfg, self.bos_id, self.eos_id = cfg, bos_id, eos_id
        self.embed = TokenEmbedding(cfg.vocab_size, cfg.decoder.d_model)
        self.decoder = Decoder(cfg.decoder)
        self.head = nn.Linear(cfg.decoder.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_output:
            self.head.weight = self.embed.weight

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.decoder(self.embed(ids), mask=mask)[0])

    def start(self, batch: int, device=None, dtype=None) -> DecoderState:
        p = self.head.weight
        return self.decoder.init_state(batch, device or p.device, dtype or p.dtype)

    def step(self, ids: torch.Tensor, state: DecoderState):
        """Consume ``ids`` [B, T] (a prompt chunk or one token) -> logits [B, T, V], new state."""
        h, state = self.decoder(self.embed(ids), state=state)
        return self.head(h), state
