"""ONNX export of an encoder-decoder as two graphs, Optimum/NeMo style.

Any model with ``encode(*source) -> (memory, memory_mask)``, ``cfg.decoder`` and a core ``Decoder`` with
cross-attention as ``decoder`` and ``step(ids, state)`` exports this way: the token
:class:`~core.models.EncoderDecoder` (source ``src_ids``), an image-to-sequence model (source
``images``, ``sizes``: :class:`SourceSpec` says what the encoder graph reads).

``encoder.onnx``  (run once per source batch)

    inputs   src_ids                          int64 [batch, src_len]    (or the SourceSpec's inputs)
    outputs  memory                           float [batch, src_len, d_model]
             memory_mask                      bool  [batch, src_len]   (True = real token)
             present.{i}.encoder.{key,value}  float [batch, n_heads, src_len, head_dim]

The cross-attention keys/values of every decoder layer are computed here, once, instead of at
every decoding step.

``decoder.onnx``  (one decoding step or a prefill chunk, with past state)

    inputs   input_ids                                int64 [batch, tgt_len]
             offset                                   int64 []   absolute position of input_ids[:, 0]
             memory_mask                              bool  [batch, src_len]
             past_key_values.{i}.decoder.{name}       float [batch, ..., past_len, ...]  growing state of layer i
                                                      (attention: key, value [batch, n_kv_heads, past_len, head_dim])
             past_state.{i}.{name}                    float [batch, ...fixed]    recurrent layer i (mixer.init_state)
             past_key_values.{i}.encoder.{key,value}  float [batch, n_heads, src_len, head_dim]
    outputs  logits                                   float [batch, tgt_len, tgt_vocab]
             present.{i}.decoder.{name}               float [batch, ..., present_len, ...]
             present_state.{i}.{name}                 float [batch, ...fixed]

Names come from :mod:`core.export.names`; which kind layer i has from its mixer's ``fixed_state``.
A decoder with any recurrent layer exports its single-token step (``tgt_len`` = 1): the step is
the form that runs in O(1) per token, and the runner feeds a prompt one token at a time.

``past_len`` may be 0 (the first step). ``offset`` is separate from ``past_len`` because a
sliding-window cache keeps only the last ``window - 1`` keys, so ``present_len`` stops growing
while positions keep counting. ``config.json`` beside the graphs holds what a runner needs
(:class:`core.export.OnnxEncoderDecoder` reads it).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from core.export.graph import CONFIG_FILE, DEFAULT_OPSET, check_dynamo, exporting, export_graph, max_len, write_config
from core.export.names import cross_names
from core.export.states import (
    LayerState, example_states, flatten_states, present_length_axes, stack_layer_states, state_io_names,
    unflatten_states,
)
from core.models.encoder_decoder import EncoderDecoder
from core.models.state import DecoderState

ENCODER_FILE, DECODER_FILE = "encoder.onnx", "decoder.onnx"
FORMAT = "seqlab.onnx_seq2seq"
#: 2: names of core.export.names, layer_states as {growing, shapes}; 3: encoder_inputs, memory_len
VERSION = 3


@dataclass
class SourceSpec:
    """What the encoder graph reads: input names, example tensors (batch 2; make row 1 padded so
    the mask path is traced), their dynamic axes, and the memory length axis the decoder graph
    shares (``memory_len``: the source's own length axis when memory has one cell per token)."""

    names: list[str]
    examples: tuple[torch.Tensor, ...]
    dynamic_shapes: tuple[dict, ...]
    memory_len: Any
    #: entries for config.json the runner checks (``max_src_len``) or a user reads
    config: dict[str, Any] = field(default_factory=dict)


def token_source(model: EncoderDecoder, gen: torch.Generator, device) -> SourceSpec:
    """``src_ids`` [batch, src_len] of an :class:`EncoderDecoder`, row 1 ending in padding."""
    cfg = model.cfg
    src = torch.randint(0, cfg.src_vocab_size, (2, 7), generator=gen)
    src[src == model.pad_id] = (model.pad_id + 1) % cfg.src_vocab_size
    src[1, -2:] = model.pad_id
    src_len = torch.export.Dim("src_len", max=max_len(cfg.encoder))
    return SourceSpec(["src_ids"], (src.to(device),), ({0: torch.export.Dim("batch"), 1: src_len},), src_len,
                      {"src_vocab_size": cfg.src_vocab_size, "max_src_len": max_len(cfg.encoder)})


# ----------------------------------------------------------------------------- graph I/O names

def encoder_output_names(n_layers: int) -> list[str]:
    return ["memory", "memory_mask"] + [n for i in range(n_layers) for n in cross_names(i, "present")]


def decoder_layer_states(model: nn.Module) -> list[LayerState]:
    return stack_layer_states(model.decoder.stack)


def decoder_input_names(layers: Sequence[LayerState]) -> list[str]:
    """Per layer its self-state, then its cross-attention key and value."""
    names = ["input_ids", "offset", "memory_mask"]
    for i, layer in enumerate(layers):
        names += layer.io_names(i, "past") + cross_names(i, "past")
    return names


def decoder_output_names(layers: Sequence[LayerState]) -> list[str]:
    return ["logits"] + state_io_names(layers, "present")


# ----------------------------------------------------------------------------- export-only adapters

class EncoderGraph(nn.Module):
    """``source -> (memory, memory_mask, k_0, v_0, k_1, v_1, ...)``: the encoder plus every decoder
    layer's cross-attention key/value projection."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *source: torch.Tensor):
        memory, mask = self.model.encode(*source)
        out = [memory, mask]
        for m in self.model.decoder.memory_states(memory, mask):
            out += [m["key"], m["value"]]
        return tuple(out)


class DecoderStepGraph(nn.Module):
    """Flat-tensor front end of :meth:`EncoderDecoder.step`: rebuilds a :class:`DecoderState` from
    graph inputs (``offset`` as a tensor, which :mod:`core.nn.positions` supports) and flattens
    the new self-states back out, in the order of :func:`decoder_input_names`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.layers = decoder_layer_states(model)

    def forward(self, input_ids: torch.Tensor, offset: torch.Tensor, memory_mask: torch.Tensor, *past: torch.Tensor):
        states, memory, pos = [], [], 0
        for layer in self.layers:
            n = len(layer.names)
            states += unflatten_states([layer], past[pos: pos + n])
            ek, ev = past[pos + n: pos + n + 2]
            memory.append({"key": ek, "value": ev, "mask": memory_mask})
            pos += n + 2
        logits, state = self.model.step(input_ids, DecoderState(states, memory, offset))
        return (logits, *flatten_states(self.layers, state.layers))


# ----------------------------------------------------------------------------- export

def export_encoder_decoder(model: nn.Module, out_dir: str | Path, opset: int = DEFAULT_OPSET,
                           dynamo: bool = True, metadata: dict[str, Any] | None = None,
                           source: SourceSpec | None = None) -> dict[str, Path]:
    """Write ``encoder.onnx``, ``decoder.onnx`` and ``config.json`` into ``out_dir``.

    ``source`` describes the encoder's inputs (default: an :class:`EncoderDecoder`'s ``src_ids``).
    ``metadata`` (JSON-serialisable: special ids, tokenizer file name, ...) is stored in
    ``config.json`` under ``"metadata"``; the runner uses ``bos_id``/``eos_id`` from it as
    generation defaults. Returns ``{"encoder": path, "decoder": path, "config": path}``.
    """
    check_dynamo(dynamo)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dec_cfg = model.cfg.decoder
    n_layers = dec_cfg.n_layers
    layers = decoder_layer_states(model)
    step_only = not all(layer.growing for layer in layers)
    param = next(model.parameters())
    device, dtype = param.device, param.dtype

    # Example sizes are all different (and >= 2) so that no two dynamic axes get unified and
    # none is specialised to 0/1; the graphs still run with past_len 0 and batch/tgt_len 1.
    # A private generator keeps the caller's RNG state untouched.
    gen = torch.Generator().manual_seed(0)
    source = source or token_source(model, gen, device)
    b, t, p = source.examples[0].shape[0], (1 if step_only else 3), 5
    batch = source.dynamic_shapes[0][0]
    tgt_len = torch.export.Dim("tgt_len")
    past_len = torch.export.Dim("past_len")
    memory_len = source.memory_len
    vocab = model.head.out_features

    with exporting(model):
        enc_path = export_graph(EncoderGraph(model), source.examples, out_dir / ENCODER_FILE, source.names,
                                encoder_output_names(n_layers), (tuple(source.dynamic_shapes),), opset)
        memory, mask = model.encode(*source.examples)
        states, shapes = example_states(layers, b, p, gen, batch, past_len, device, dtype)
        past: list[torch.Tensor] = []
        past_shapes: list[dict] = []
        for layer, st, sh, m in zip(layers, unflatten_states(layers, states), unflatten_states(layers, shapes),
                                    model.decoder.memory_states(memory, mask)):
            past += [st[n] for n in layer.names] + [m["key"], m["value"]]
            past_shapes += [sh[n] for n in layer.names] + [{0: batch, 2: memory_len}] * 2
        ids = torch.randint(0, vocab, (b, t), generator=gen).to(device)
        offset = torch.tensor(p, dtype=torch.long, device=device)
        dec_path = export_graph(
            DecoderStepGraph(model), (ids, offset, mask, *past), out_dir / DECODER_FILE,
            decoder_input_names(layers), decoder_output_names(layers),
            ({0: batch} if step_only else {0: batch, 1: tgt_len}, None, {0: batch, 1: memory_len}, tuple(past_shapes)),
            opset, length_axes=present_length_axes(layers))

    config = {
        "format": FORMAT,
        "version": VERSION,
        "files": {"encoder": ENCODER_FILE, "decoder": DECODER_FILE},
        "exporter": "torch.onnx.export(dynamo=True)",
        "opset": opset,
        "torch": torch.__version__,
        "n_layers": n_layers,
        "d_model": dec_cfg.d_model,
        # per decoder layer: {"growing": KV-cache-like or fixed, "shapes": {state name: shape without the batch}}
        "layer_states": [layer.to_json() for layer in layers],
        "step_only": step_only,
        **source.config,
        "tgt_vocab_size": vocab,
        "pad_id": model.pad_id,
        "max_tgt_len": max_len(dec_cfg),
        "encoder_inputs": list(source.names),
        "encoder_outputs": encoder_output_names(n_layers),
        "decoder_inputs": decoder_input_names(layers),
        "decoder_outputs": decoder_output_names(layers),
        "model_config": dataclasses.asdict(model.cfg),
        "metadata": dict(metadata or {}),
    }
    return {"encoder": enc_path, "decoder": dec_path, "config": write_config(out_dir / CONFIG_FILE, config)}
