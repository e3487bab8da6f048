"""Several models decoding as one: at each step the mean of their next-token probabilities.

Checkpoints of one run (or runs with different seeds) make different mistakes; averaging their
distributions (fairseq's ``--path a.pt:b.pt``) fixes some of them at decode time, where averaging
the weights (:mod:`core.training.average`) needs the checkpoints to lie in one basin. The cost is one
decoder step per member.

The ensemble's :class:`~core.models.state.DecoderState` is its members' states laid end to end
(``layers`` and ``memory`` concatenated). Every state operation the searches use (``index_select``,
``expand``, ``reorder``, ``keep_sources``) acts layer by layer, so the concatenated state is reordered
and pruned exactly as each member's own would be, with no code of its own.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from core.models.state import DecoderState


class Ensemble(nn.Module):
    """Members must share the target vocabulary and its BOS/EOS ids (checked here) and the source
    encoding (the caller's job: same tokenizers). ``step`` returns log-probabilities, which the
    searches' own ``log_softmax`` leaves as they are."""

    def __init__(self, models: list[nn.Module]):
        super().__init__()
        if not models:
            raise ValueError("an ensemble needs at least one model")
        ids = {(m.bos_id, m.eos_id) for m in models}
        if len(ids) > 1:
            raise ValueError(f"ensemble members disagree on (bos_id, eos_id): {sorted(ids)}")
        self.members = nn.ModuleList(models)
        self.bos_id, self.eos_id = ids.pop()
        self._sizes: list[int] = []

    def start(self, *args, **kwargs) -> DecoderState:
        states = [m.start(*args, **kwargs) for m in self.members]
        if len({s.memory is None for s in states}) > 1:
            raise ValueError("ensemble members mix encoder-decoder and decoder-only models")
        self._sizes = [len(s.layers) for s in states]
        return _join(states, states[0].beams)

    def _split(self, state: DecoderState) -> list[DecoderState]:
        if sum(self._sizes) != len(state.layers):
            raise ValueError("decode an ensemble from its own start(): the state does not match its members")
        out, at = [], 0
        for n in self._sizes:
            memory = None if state.memory is None else state.memory[at:at + n]
            out.append(DecoderState(state.layers[at:at + n], memory, state.offset, state.beams))
            at += n
        return out

    def step(self, ids: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        logps, states = [], []
        for model, sub in zip(self.members, self._split(state)):
            logits, new = model.step(ids, sub)
            logps.append(torch.log_softmax(logits.float(), dim=-1))
            states.append(new)
        mean = torch.logsumexp(torch.stack(logps), dim=0) - math.log(len(logps))
        return mean, _join(states, state.beams)


def _join(states: list[DecoderState], beams: int) -> DecoderState:
    """The members' states end to end (the inverse of ``Ensemble._split``)."""
    memory = None if states[0].memory is None else [m for s in states for m in s.memory]
    return DecoderState([layer for s in states for layer in s.layers], memory, states[0].offset, beams)


__all__ = ["Ensemble"]
