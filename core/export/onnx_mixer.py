"""ONNX export of one mixer's recurrent step: ``(x, past*) -> (y, present*)``, named as layer 0.

The step is the form a streaming app runs (speech, time series, any decoder), so every mixer's
step must export; the contract test runs this for every registered mixer and compares
onnxruntime with PyTorch over several steps. The mixer's state is named as layer 0 of a model by
:mod:`core.export.names`: ``past_state.0.*`` for a fixed-size state, ``past_key_values.0.decoder.*``
for a growing one.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from core.export.graph import DEFAULT_OPSET, exporting, export_graph
from core.export.names import layer_state_names
from core.mixers import Mixer


class MixerStepGraph(nn.Module):
    """Flat-tensor front end of ``mixer(x, state)`` for a single token; state tensors in sorted name order."""

    def __init__(self, mixer: Mixer, names: list[str]):
        super().__init__()
        self.mixer, self.names = mixer, names

    def forward(self, x: torch.Tensor, offset: torch.Tensor, *state: torch.Tensor):
        y, new = self.mixer(x, state=dict(zip(self.names, state)), offset=offset)
        return (y, *(new[n] for n in self.names))


def export_mixer_step(mixer: Mixer, path: str | Path, d_model: int, batch: int = 2, opset: int = DEFAULT_OPSET) -> list[str]:
    """Write the step graph to ``path``; returns the mixer's state names, in the order of the graph's
    state inputs and outputs (:func:`~core.export.names.layer_state_names` of layer 0).
    ``offset`` (int64 scalar) is the position of the token."""
    param = next(mixer.parameters())
    gen = torch.Generator().manual_seed(0)
    with exporting(mixer):
        # Example states come from real prefills of two lengths: an axis that differs between
        # them grows with the sequence (a KV cache) and is exported as dynamic "past".
        prompt = torch.randn(batch, 6, d_model, generator=gen).to(param)
        states = [mixer(prompt[:, :n], state=mixer.init_state(batch, param.device, param.dtype))[1] for n in (5, 6)]
        names = sorted(states[0])
        b, past = torch.export.Dim("batch"), torch.export.Dim("past")
        shapes = [{0: b, **{d: past for d in range(1, states[0][n].dim())
                            if states[0][n].shape[d] != states[1][n].shape[d]}} for n in names]
        x = torch.randn(batch, 1, d_model, generator=gen).to(param)
        export_graph(MixerStepGraph(mixer, names), (x, torch.tensor(5), *(states[0][n] for n in names)), path,
                     ["x", "offset"] + layer_state_names(0, not mixer.fixed_state, names, "past"),
                     ["y"] + layer_state_names(0, not mixer.fixed_state, names, "present"),
                     ({0: b}, None, tuple(shapes)), opset)
    return names
