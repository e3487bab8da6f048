"""Whole-sequence recurrent mixers for export: a scan over the mixer's own one-token step.

``torch.export`` unrolls Python loops, so the chunked form of a recurrent mixer (a loop over chunks)
exports as a graph fixed to the example's length. ``torch.ops.higher_order.scan`` does not unroll:
the exporter turns it into an ONNX ``Scan`` whose body is the mixer's step, which runs for any
length. The step is the form the mixer contract already tests against the chunked one, so nothing
new is computed here: :func:`scanned_mixers` swaps every recurrent mixer of a stack (both halves of
a bidirectional one) for a :class:`ScannedMixer` while a graph is exported.

Padding (``mask`` False) neither writes to nor decays the state, as in the chunked forms: the step
runs, and its new state is discarded where the position is padding.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch._higher_order_ops.scan import scan

from core.mixers import Mixer
from core.mixers.base import Bidirectional


class ScannedMixer(Mixer):
    def __init__(self, mixer: Mixer):
        super().__init__()
        self.mixer = mixer
        self.names = sorted(mixer.init_state(1, "cpu", torch.float32))

    def forward(self, x, state=None, mask=None, offset=0):
        if state is not None:
            raise TypeError("ScannedMixer is the whole-sequence form; call the mixer itself to continue a state")
        b, t, _ = x.shape
        init = self.mixer.init_state(b, x.device, x.dtype)
        real = torch.ones(b, t, dtype=torch.bool, device=x.device) if mask is None else mask
        positions = torch.arange(t, device=x.device) + offset

        def body(carry, inputs):
            x_t, real_t, pos = inputs
            y, new = self.mixer(x_t[:, None], state=dict(zip(self.names, carry)), offset=pos)
            kept = [torch.where(real_t[(slice(None),) + (None,) * (c.dim() - 1)], new[n], c) for n, c in zip(self.names, carry)]
            return kept, y[:, 0].clone()

        _, ys = scan(body, [init[n] for n in self.names], (x.transpose(0, 1), real.transpose(0, 1), positions))
        return ys.transpose(0, 1), None


def _scanned(mixer: Mixer) -> Mixer:
    if isinstance(mixer, Bidirectional):
        return Bidirectional(_scanned(mixer.fwd), _scanned(mixer.bwd))
    return ScannedMixer(mixer) if mixer.fixed_state else mixer  # a growing KV cache cannot be a scan carry


@contextmanager
def scanned_mixers(stack):
    """Within the block, every recurrent mixer of ``stack`` runs as a :class:`ScannedMixer`
    (same weights); the original mixers are put back on exit."""
    originals = [layer.mixer for layer in stack.layers]
    try:
        for layer in stack.layers:
            layer.mixer = _scanned(layer.mixer)
        yield stack
    finally:
        for layer, mixer in zip(stack.layers, originals):
            layer.mixer = mixer


__all__ = ["ScannedMixer", "scanned_mixers"]
