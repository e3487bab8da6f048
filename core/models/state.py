"""Decoding state shared by every decoder: one entry per layer, whatever the mixer.

Attention layers hold growing KV caches, recurrent layers fixed-size states; both are dicts of
tensors with the batch on dim 0, so beam search reorders all of them with one ``index_select``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from core.mixers import State


def _select(state: State, index: torch.Tensor) -> State:
    return {name: t.index_select(0, index) for name, t in state.items()}


@dataclass
class DecoderState:
    #: per-layer self-mixer state (KV cache or recurrent state)
    layers: list[State]
    #: per-layer cross-attention keys/values of the encoder output (None for decoder-only models)
    memory: list[State] | None = None
    #: number of target positions consumed so far (absolute position of the next token)
    offset: int | torch.Tensor = 0  # a tensor inside exported graphs

    def index_select(self, index: torch.Tensor) -> "DecoderState":
        """Keep/reorder/duplicate batch rows (beam expansion and beam reordering)."""
        memory = None if self.memory is None else [_select(m, index) for m in self.memory]
        return DecoderState([_select(s, index) for s in self.layers], memory, self.offset)

    @property
    def batch_size(self) -> int:
        first = self.layers[0] if self.layers and self.layers[0] else (self.memory or [{}])[0]
        return next(iter(first.values())).shape[0]
