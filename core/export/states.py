"""A causal stack's decoding state as flat graph inputs and outputs.

An exported step graph cannot take a :class:`~core.models.state.DecoderState`: it takes tensors.
Per layer, :class:`LayerState` says what the mixer carries between steps: a *growing* state
(``fixed_state = False``: attention's KV cache, forgetting attention's keys, values and decays),
whose one length axis is dynamic, or a *fixed* one (a recurrent mixer). The kind comes from the
mixer contract, never from the mixer's class, and the names from :mod:`core.export.names`. Every
graph that carries state (translation decoder, decoder-only LM, ASR prediction network, TTS
decoder) flattens it in this order: layer by layer, each layer's state names sorted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from core.export.names import layer_state_names
from core.mixers import State


@dataclass
class LayerState:
    #: True for a state that grows with the sequence (``not mixer.fixed_state``)
    growing: bool
    #: state name -> shape without the batch; in a growing state the length axis has size 0
    shapes: dict[str, list[int]]

    @property
    def names(self) -> list[str]:
        return sorted(self.shapes)

    def length_axis(self, name: str) -> int | None:
        """Axis (batch = 0) along which ``name`` grows; None for a fixed state."""
        return self.shapes[name].index(0) + 1 if self.growing else None

    def io_names(self, i: int, side: str) -> list[str]:
        return layer_state_names(i, self.growing, self.names, side)

    def to_json(self) -> dict[str, Any]:
        return {"growing": self.growing, "shapes": self.shapes}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "LayerState":
        return cls(bool(obj["growing"]), {n: list(s) for n, s in obj["shapes"].items()})


def stack_layer_states(stack) -> list[LayerState]:
    """Per layer of a causal stack, from its mixer's ``fixed_state`` and ``init_state``."""
    out = []
    for i, layer in enumerate(stack.layers):
        mixer = layer.mixer
        init = mixer.init_state(1, "cpu", torch.float32)
        shapes = {n: list(t.shape[1:]) for n, t in init.items()}
        growing = not mixer.fixed_state
        if growing and any(s.count(0) != 1 for s in shapes.values()):
            raise ValueError(f"layer {i} ({type(mixer).__name__}): a growing state needs exactly one length "
                             f"axis of size 0 in init_state, got {shapes}")
        if any(t.numel() and bool(t.any()) for t in init.values()):
            # runners start from zeros (config.json holds shapes, not values)
            raise ValueError(f"layer {i} ({type(mixer).__name__}): export needs a zero init_state")
        out.append(LayerState(growing, shapes))
    return out


def state_io_names(layers: Sequence[LayerState], side: str) -> list[str]:
    """Every layer's state names (``side`` "past" for inputs, "present" for outputs), flattening order."""
    return [n for i, layer in enumerate(layers) for n in layer.io_names(i, side)]


def unflatten_states(layers: Sequence[LayerState], flat) -> list[State]:
    out, pos = [], 0
    for layer in layers:
        names = layer.names
        out.append(dict(zip(names, flat[pos: pos + len(names)])))
        pos += len(names)
    return out


def flatten_states(layers: Sequence[LayerState], states: Sequence[State]) -> list:
    return [state[n] for layer, state in zip(layers, states) for n in layer.names]


def example_states(layers: Sequence[LayerState], batch: int, past: int, generator: torch.Generator, batch_dim,
                   past_dim, device=None, dtype=torch.float32) -> tuple[list[torch.Tensor], list[dict]]:
    """Example state tensors for ``torch.onnx.export`` and their dynamic shapes: growing states of
    ``past`` positions, random values (a zero state could look constant to the exporter)."""
    tensors, shapes = [], []
    for layer in layers:
        for n in layer.names:
            axis = layer.length_axis(n)
            shape = [batch, *layer.shapes[n]]
            if axis is not None:
                shape[axis] = past
            tensors.append(torch.randn(shape, generator=generator).to(device, dtype))
            shapes.append({0: batch_dim} if axis is None else {0: batch_dim, axis: past_dim})
    return tensors, shapes


def present_length_axes(layers: Sequence[LayerState], name: str = "present_len") -> dict[str, tuple[int, str]]:
    """``{present output: (length axis, name)}`` for every growing state, for
    :func:`core.export.graph.export_graph`'s ``length_axes``."""
    return {io: (layer.length_axis(n), name) for i, layer in enumerate(layers) if layer.growing
            for io, n in zip(layer.io_names(i, "present"), layer.names)}


__all__ = ["LayerState", "example_states", "present_length_axes", "flatten_states", "stack_layer_states", "state_io_names",
           "unflatten_states"]
