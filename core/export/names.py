"""The names of every exported step graph's state inputs and outputs: built here, and only here.

One scheme for every app, the one HF Optimum / onnxruntime-genai users already know for attention:

    growing state of layer i (attention KV cache, or any mixer with ``fixed_state = False``)
        in   past_key_values.{i}.decoder.{name}     out  present.{i}.decoder.{name}
    cross-attention keys/values of layer i (computed once from the encoder output)
        in   past_key_values.{i}.encoder.{key,value}     (an encoder graph outputs them as present.{i}.encoder.*)
    fixed-size state of layer i (a recurrent mixer, ``fixed_state = True``)
        in   past_state.{i}.{name}                  out  present_state.{i}.{name}

``name`` is the mixer's own state name (``key``/``value`` for attention; forgetting attention adds
``logf``; a recurrent mixer's ``init_state`` keys). Which kind a layer has comes from the mixer's
``fixed_state`` (see :class:`core.export.states.LayerState`), never from its class. A runner hands
each ``present*`` output back as the ``past*`` input of the next step: :func:`past_name`.
"""
from __future__ import annotations

from typing import Iterable

PAST_CACHE, PRESENT_CACHE = "past_key_values", "present"
PAST_STATE, PRESENT_STATE = "past_state", "present_state"
_SIDES = ("past", "present")


def _check(side: str) -> None:
    if side not in _SIDES:
        raise ValueError(f"side={side!r}; expected 'past' (graph input) or 'present' (graph output)")


def layer_state_names(i: int, growing: bool, names: Iterable[str], side: str) -> list[str]:
    """Graph names of layer ``i``'s self-state tensors ``names`` (in that order)."""
    _check(side)
    if growing:
        prefix = PAST_CACHE if side == "past" else PRESENT_CACHE
        return [f"{prefix}.{i}.decoder.{n}" for n in names]
    prefix = PAST_STATE if side == "past" else PRESENT_STATE
    return [f"{prefix}.{i}.{n}" for n in names]


def cross_names(i: int, side: str) -> list[str]:
    """Layer ``i``'s cross-attention key and value (the encoder side of the cache)."""
    _check(side)
    return [f"{PAST_CACHE if side == 'past' else PRESENT_CACHE}.{i}.encoder.{kv}" for kv in ("key", "value")]


def is_present(name: str) -> bool:
    return name.startswith((f"{PRESENT_CACHE}.", f"{PRESENT_STATE}."))


def past_name(present: str) -> str:
    """The input a ``present*`` output feeds at the next step: ``present.0.decoder.key`` ->
    ``past_key_values.0.decoder.key``, ``present_state.1.h`` -> ``past_state.1.h``."""
    for out, into in ((f"{PRESENT_STATE}.", f"{PAST_STATE}."), (f"{PRESENT_CACHE}.", f"{PAST_CACHE}.")):
        if present.startswith(out):
            return into + present[len(out):]
    raise ValueError(f"{present!r} is not a present state output")


__all__ = ["PAST_CACHE", "PAST_STATE", "PRESENT_CACHE", "PRESENT_STATE", "cross_names", "is_present",
           "layer_state_names", "past_name"]
