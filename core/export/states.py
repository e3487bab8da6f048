"""A causal stack's decoding state as flat graph inputs and outputs.

An exported step graph cannot take a :class:`~core.models.state.DecoderState`: it takes tensors.
Per layer that is either an attention KV cache (``key``, ``value``: [batch, kv_heads, past, head_dim],
growing) or the fixed-size state of a recurrent mixer (its ``init_state`` names, sorted). A layer's
*spec* says which: None for a KV cache, else the list of state names. Every graph that carries
state (translation decoder, ASR prediction network, TTS decoder) flattens it in this order.
"""
from __future__ import annotations

import torch

from core.mixers import Attention, State


def stack_layer_specs(stack) -> list[list[str] | None]:
    """Per layer of a causal stack: None for an attention KV cache, else its recurrent state's names."""
    return [None if isinstance(layer.mixer, Attention) else sorted(layer.mixer.init_state(1, "cpu", torch.float32))
            for layer in stack.layers]


def layer_state_names(spec: list[str] | None) -> list[str]:
    return ["key", "value"] if spec is None else list(spec)


def state_io_names(specs: list[list[str] | None], prefix: str) -> list[str]:
    """``{prefix}.{layer}.key/value`` or ``{prefix}.{layer}.state.{name}``, in flattening order."""
    return [f"{prefix}.{i}.{n if spec is None else f'state.{n}'}"
            for i, spec in enumerate(specs) for n in layer_state_names(spec)]


def unflatten_states(specs: list[list[str] | None], flat) -> list[State]:
    layers, pos = [], 0
    for spec in specs:
        names = layer_state_names(spec)
        layers.append(dict(zip(names, flat[pos: pos + len(names)])))
        pos += len(names)
    return layers


def flatten_states(specs: list[list[str] | None], layers: list[State]) -> list[torch.Tensor]:
    return [state[n] for spec, state in zip(specs, layers) for n in layer_state_names(spec)]


def example_states(stack, specs, batch: int, past: int, generator: torch.Generator, batch_dim, past_dim,
                   device=None, dtype=torch.float32) -> tuple[list[torch.Tensor], list[dict]]:
    """Example state tensors for ``torch.onnx.export`` and their dynamic shapes: KV caches of
    ``past`` positions, random recurrent states (a zero state could look constant to the exporter)."""
    tensors, shapes = [], []
    for layer, spec in zip(stack.layers, specs):
        if spec is None:
            mixer = layer.mixer
            cache = torch.randn(batch, mixer.n_kv_heads, past, mixer.head_dim, generator=generator).to(device, dtype)
            tensors += [cache, cache.clone()]
            shapes += [{0: batch_dim, 2: past_dim}] * 2
        else:
            state = layer.mixer.init_state(batch, "cpu", dtype)
            tensors += [torch.randn(state[n].shape, generator=generator).to(device, dtype) for n in spec]
            shapes += [{0: batch_dim}] * len(spec)
    return tensors, shapes


def state_shapes(stack, specs) -> list[dict[str, list[int]] | None]:
    """Per layer, for a runner's ``config.json``: None (KV cache) or ``{name: shape without the batch}``."""
    return [None if spec is None else {n: list(layer.mixer.init_state(1, "cpu", torch.float32)[n].shape[1:])
                                       for n in spec}
            for layer, spec in zip(stack.layers, specs)]
