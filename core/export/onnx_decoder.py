"""ONNX export of a decoder-only :class:`~core.models.DecoderLM` as one step graph that also serves prefill.

``decoder.onnx``

    inputs   input_ids                           int64 [batch, tgt_len]   a prompt chunk or one token
             offset                              int64 []   absolute position of input_ids[:, 0]
             past_key_values.{i}.decoder.{name}  float [batch, ..., past_len, ...]  growing state of layer i
             past_state.{i}.{name}               float [batch, ...fixed]            recurrent layer i
    outputs  logits                              float [batch, tgt_len, vocab]
             present.{i}.decoder.{name}          float [batch, ..., present_len, ...]
             present_state.{i}.{name}            float [batch, ...fixed]

The same names as the encoder-decoder's decoder (:mod:`core.export.names`), without the encoder
side. An all-attention stack (any mixer with ``fixed_state = False``) prefills a whole prompt in
one call; a stack with a recurrent layer exports its single-token step (``tgt_len`` = 1: the
chunked form is a Python loop that ``torch.export`` would unroll to the example's length) and
:class:`core.export.OnnxDecoderLM` reads a prompt one token at a time. ``config.json`` beside the
graph holds what the runner needs (layer states, vocabulary, special ids in ``"metadata"``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.export.graph import CONFIG_FILE, DEFAULT_OPSET, check_dynamo, exporting, export_graph, max_len, write_config
from core.export.states import (
    LayerState, example_states, flatten_states, present_length_axes, stack_layer_states, state_io_names,
    unflatten_states,
)
from core.models.decoder import DecoderLM
from core.models.state import DecoderState

DECODER_FILE = "decoder.onnx"
FORMAT = "seqlab.onnx_decoder_lm"
VERSION = 1


def lm_input_names(layers: list[LayerState]) -> list[str]:
    return ["input_ids", "offset", *state_io_names(layers, "past")]


def lm_output_names(layers: list[LayerState]) -> list[str]:
    return ["logits", *state_io_names(layers, "present")]


class DecoderLMStepGraph(nn.Module):
    """Flat-tensor front end of :meth:`DecoderLM.step`."""

    def __init__(self, model: DecoderLM):
        super().__init__()
        self.model = model
        self.layers = stack_layer_states(model.decoder.stack)

    def forward(self, input_ids: torch.Tensor, offset: torch.Tensor, *past: torch.Tensor):
        logits, state = self.model.step(input_ids, DecoderState(unflatten_states(self.layers, past), None, offset))
        return (logits, *flatten_states(self.layers, state.layers))


def export_decoder_lm(model: DecoderLM, out_dir: str | Path, opset: int = DEFAULT_OPSET, dynamo: bool = True,
                      metadata: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``decoder.onnx`` and ``config.json`` into ``out_dir``; returns ``{"decoder": path, "config": path}``.
    ``metadata`` is stored in ``config.json`` (``bos_id``/``eos_id`` become the runner's generation defaults)."""
    check_dynamo(dynamo)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    layers = stack_layer_states(model.decoder.stack)
    step_only = not all(layer.growing for layer in layers)
    param = next(model.parameters())
    # all example sizes differ and are >= 2, so no dynamic axis is unified with another or specialised
    b, t, p = 2, (1 if step_only else 3), 5
    gen = torch.Generator().manual_seed(0)
    batch, tgt_len, past_len = torch.export.Dim("batch"), torch.export.Dim("tgt_len"), torch.export.Dim("past_len")
    with exporting(model):
        past, shapes = example_states(layers, b, p, gen, batch, past_len, param.device, param.dtype)
        ids = torch.randint(0, cfg.vocab_size, (b, t), generator=gen).to(param.device)
        offset = torch.tensor(p, dtype=torch.long, device=param.device)
        path = export_graph(DecoderLMStepGraph(model), (ids, offset, *past), out_dir / DECODER_FILE,
                            lm_input_names(layers), lm_output_names(layers),
                            ({0: batch} if step_only else {0: batch, 1: tgt_len}, None, tuple(shapes)), opset,
                            length_axes=present_length_axes(layers))
    config = {
        "format": FORMAT,
        "version": VERSION,
        "files": {"decoder": DECODER_FILE},
        "exporter": "torch.onnx.export(dynamo=True)",
        "opset": opset,
        "torch": torch.__version__,
        "n_layers": len(layers),
        "d_model": cfg.decoder.d_model,
        "layer_states": [layer.to_json() for layer in layers],
        "step_only": step_only,
        "vocab_size": cfg.vocab_size,
        "max_tgt_len": max_len(cfg.decoder),
        "decoder_inputs": lm_input_names(layers),
        "decoder_outputs": lm_output_names(layers),
        "model_config": dataclasses.asdict(cfg),
        "metadata": dict(metadata or {}),
    }
    return {"decoder": path, "config": write_config(out_dir / CONFIG_FILE, config)}
