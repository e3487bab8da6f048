"""The mixer contract and the registry that turns a config string into a mixer.

A *mixer* moves information along the sequence axis (attention, SSMs, linear recurrences):

    y, state = mixer(x, state=None, mask=None, offset=0)

* ``x``: [B, T, D] features. ``y``: [B, T, D].
* ``state``: ``None`` in training (nothing is cached and ``None`` comes back), or a dict of tensors
  from :meth:`Mixer.init_state` / a previous call, in which case the call continues from it
  (chunked prefill or single-token decoding) and returns the updated dict. Every tensor in a state
  dict has the batch on dim 0, so beam search reorders any mixer's state the same way.
* ``mask``: optional [B, T] bool, ``True`` for real tokens, ``False`` for padding.
* ``offset``: absolute position of ``x[:, 0]`` (for position-aware mixers).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

if TYPE_CHECKING:
    from core.models.config import BackboneConfig

State = dict[str, torch.Tensor]


class Mixer(nn.Module):
    """Base class: subclasses set ``causal`` support and implement ``forward`` and ``init_state``."""

    #: False for mixers that can only look backwards (recurrences); the Encoder checks this.
    bidirectional: bool = True
    #: False for mixers whose decoding state grows with the sequence (attention's KV cache)
    fixed_state: bool = True

    def init_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> State:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state: State | None = None, mask: torch.Tensor | None = None,
                offset: int | torch.Tensor = 0) -> tuple[torch.Tensor, State | None]:
        raise NotImplementedError


MIXERS: dict[str, Callable[..., Mixer]] = {}


def register_mixer(name: str):
    """Class decorator: ``@register_mixer("gla")`` makes ``mixer: gla`` valid in configs."""

    def wrap(cls):
        if name in MIXERS:
            raise ValueError(f"mixer {name!r} registered twice")
        MIXERS[name] = cls
        return cls

    return wrap


def build_mixer(name: str, cfg: "BackboneConfig", causal: bool) -> Mixer:
    """A causal-only mixer (a recurrence) asked for bidirectional use runs twice: once left to
    right and once right to left, outputs summed (as BiMamba / Caduceus / Hydra do)."""
    if name not in MIXERS:
        raise ValueError(f"unknown mixer {name!r}; registered: {sorted(MIXERS)}")
    if not causal and not MIXERS[name].bidirectional:
        return Bidirectional(MIXERS[name](cfg, causal=True), MIXERS[name](cfg, causal=True))
    return MIXERS[name](cfg, causal=causal)


class Bidirectional(Mixer):
    """Two causal mixers, one reading the sequence reversed. Right padding becomes left padding
    in the reversed copy, which recurrent mixers skip through their mask (padding neither writes
    to nor decays their state)."""

    def __init__(self, forward_mixer: Mixer, backward_mixer: Mixer):
        super().__init__()
        self.fwd, self.bwd = forward_mixer, backward_mixer

    def init_state(self, batch, device, dtype):
        raise TypeError("a bidirectional mixer sees the whole sequence at once; it has no decoding state")

    def forward(self, x, state=None, mask=None, offset=0):
        if state is not None:
            raise TypeError("a bidirectional mixer cannot continue from a state")
        y_fwd, _ = self.fwd(x, mask=mask, offset=offset)
        y_bwd, _ = self.bwd(x.flip(1), mask=None if mask is None else mask.flip(1), offset=offset)
        return y_fwd + y_bwd.flip(1), None
