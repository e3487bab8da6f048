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

Options: each family declares the options it reads as ``options = {name: default}`` and reads
them through :meth:`Mixer.read_options`, so a typo in a config is an error that lists the valid
names instead of a silently ignored key. ``mixer_options`` is either flat (``{d_state: 16}``, for a
pattern of one family) or keyed by family (``{mamba: {d_state: 16}, attention: {}}``, for hybrids).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import torch
from torch import nn

from core.errors import UserError

if TYPE_CHECKING:
    from core.models.config import BackboneConfig

State = dict[str, torch.Tensor]


class Mixer(nn.Module):
    """Base class: subclasses set ``causal`` support and implement ``forward`` and ``init_state``."""

    #: False for mixers that can only look backwards (recurrences); the Encoder checks this.
    bidirectional: bool = True
    #: False for mixers whose decoding state grows with the sequence (attention's KV cache)
    fixed_state: bool = True
    #: registry name, set by :func:`register_mixer`
    name: ClassVar[str] = ""
    #: every option this family reads from ``mixer_options``, with its default (None: derived from
    #: other sizes in ``__init__``)
    options: ClassVar[dict[str, Any]] = {}

    @classmethod
    def read_options(cls, cfg: "BackboneConfig") -> dict[str, Any]:
        """This family's options from ``cfg.mixer_options``, defaults filled in; an unknown name
        is a :class:`~core.errors.UserError` naming the mixer and listing the valid ones."""
        given = options_for(cls.name, cfg.mixer_options)
        unknown = sorted(set(given) - set(cls.options))
        if unknown:
            valid = ", ".join(sorted(cls.options)) or "none"
            raise UserError(f"mixer {cls.name!r} has no option {', '.join(map(repr, unknown))}; valid options: {valid}")
        return {**cls.options, **given}

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
        cls.name = name
        return cls

    return wrap


def is_per_mixer(options: Mapping[str, Any]) -> bool:
    """Whether ``mixer_options`` is keyed by mixer family (every value a mapping) rather than flat."""
    return bool(options) and all(isinstance(v, Mapping) for v in options.values())


def options_for(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options meant for family ``name``: its entry of a per-mixer dict, or the flat dict."""
    if not is_per_mixer(options):
        return dict(options)
    unknown = sorted(set(options) - set(MIXERS))
    if unknown:
        raise UserError(f"mixer_options keys {unknown} are not mixers; registered: {sorted(MIXERS)}")
    return dict(options.get(name, {}))


def build_mixer(name: str, cfg: "BackboneConfig", causal: bool) -> Mixer:
    """A causal-only mixer (a recurrence) asked for bidirectional use runs twice: once left to
    right and once right to left, outputs summed (as BiMamba / Caduceus / Hydra do)."""
    if name not in MIXERS:
        raise UserError(f"unknown mixer {name!r}; registered: {sorted(MIXERS)}")
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
