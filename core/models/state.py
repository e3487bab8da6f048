"""Decoding state shared by every decoder: one entry per layer, whatever the mixer.

Attention layers hold growing KV caches, recurrent layers fixed-size states; both are dicts of
tensors with the batch on dim 0, so beam search reorders all of them with one ``index_select``.

The encoder's keys/values (``memory``) are the same for every hypothesis of one source, and for
image or speech sources they are the biggest tensors in the state. Beam search therefore keeps one
copy per source: after :meth:`DecoderState.expand` each memory row serves ``beams`` consecutive
decoder rows, :meth:`DecoderState.reorder` (hypotheses move only within their own source)
never touches it, and :meth:`DecoderState.keep_sources` drops finished sources whole. Cross-attention folds the beams into its query length to read that copy.
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
    #: consecutive decoder rows that share one memory row (beam hypotheses of one source)
    beams: int = 1

    def index_select(self, index: torch.Tensor) -> "DecoderState":
        """Keep/reorder/duplicate batch rows (any rows: e.g. dropping finished ones); every row
        gets its own memory row again."""
        memory = None
        if self.memory is not None:
            rows = index if self.beams == 1 else torch.div(index, self.beams, rounding_mode="floor")
            memory = [_select(m, rows) for m in self.memory]
        return DecoderState([_select(s, index) for s in self.layers], memory, self.offset)

    def expand(self, k: int) -> "DecoderState":
        """Every row becomes ``k`` consecutive rows (hypotheses) that share its memory row."""
        index = torch.arange(self.batch_size, device=self.device).repeat_interleave(k)
        return DecoderState([_select(s, index) for s in self.layers], self.memory, self.offset, self.beams * k)

    def reorder(self, index: torch.Tensor) -> "DecoderState":
        """Beam reordering: ``index[i]`` must lie in row i's own group of ``beams`` rows, so the
        shared memory stays as it is."""
        return DecoderState([_select(s, index) for s in self.layers], self.memory, self.offset, self.beams)

    def keep_sources(self, sources: torch.Tensor) -> "DecoderState":
        """Keep these sources (positions among the groups of ``beams`` rows), all their rows and
        their memory: beam search dropping the sources that are done."""
        rows = (sources[:, None] * self.beams + torch.arange(self.beams, device=sources.device)).flatten()
        memory = None if self.memory is None else [_select(m, sources) for m in self.memory]
        return DecoderState([_select(s, rows) for s in self.layers], memory, self.offset, self.beams)

    @property
    def device(self) -> torch.device:
        first = self.layers[0] if self.layers and self.layers[0] else self.memory[0]
        return next(iter(first.values())).device

    @property
    def batch_size(self) -> int:
        if self.layers and self.layers[0]:
            return next(iter(self.layers[0].values())).shape[0]
        return next(iter(self.memory[0].values())).shape[0] * self.beams
