"""ONNX export of an :class:`~core.models.EncoderDecoder` as two graphs, Optimum/NeMo style.

``encoder.onnx``  (run once per source batch)

    inputs   src_ids                          int64 [batch, src_len]
    outputs  memory                           float [batch, src_len, d_model]
             memory_mask                      bool  [batch, src_len]   (True = real token)
             present.{i}.encoder.{key,value}  float [batch, n_heads, src_len, head_dim]

The cross-attention keys/values of every decoder layer are computed here, once, instead of at
every decoding step.

``decoder.onnx``  (one decoding step or a prefill chunk, with past state)

    inputs   input_ids                                int64 [batch, tgt_len]
             offset                                   int64 []   absolute position of input_ids[:, 0]
             memory_mask                              bool  [batch, src_len]
             past_key_values.{i}.decoder.{key,value}  float [batch, n_kv_heads, past_len, head_dim]  attention layer i
             state.{i}.{name}                         float [batch, ...fixed]    recurrent layer i (mixer.init_state)
             past_key_values.{i}.encoder.{key,value}  float [batch, n_heads, src_len, head_dim]
    outputs  logits                                   float [batch, tgt_len, tgt_vocab]
             present.{i}.decoder.{key,value}          float [batch, n_kv_heads, present_len, head_dim]
             present.{i}.state.{name}                 float [batch, ...fixed]

A decoder with any recurrent layer exports its single-token step (``tgt_len`` = 1): the step is
the form that runs in O(1) per token, and the runner feeds a prompt one token at a time.

``past_len`` may be 0 (the first step). ``offset`` is separate from ``past_len`` because a
sliding-window cache keeps only the last ``window - 1`` keys, so ``present_len`` stops growing
while positions keep counting. ``config.json`` beside the graphs holds what a runner needs
(:class:`core.export.OnnxEncoderDecoder` reads it).
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.export.states import example_states, layer_state_names, stack_layer_specs, state_shapes, unflatten_states
from core.mixers import Attention
from core.models.encoder_decoder import EncoderDecoder
from core.models.state import DecoderState

ENCODER_FILE, DECODER_FILE, CONFIG_FILE = "encoder.onnx", "decoder.onnx", "config.json"
FORMAT = "seqlab.onnx_seq2seq"
#: torchlib (the dynamo exporter's op library) is written against opset 18; onnxruntime >= 1.14 runs it.
DEFAULT_OPSET = 18
#: positions that read a fixed-size table (longer sequences cannot be encoded/decoded)
_TABLE_POSITIONS = ("rope", "sinusoidal", "learned")


# ----------------------------------------------------------------------------- graph I/O names

def encoder_output_names(n_layers: int) -> list[str]:
    return ["memory", "memory_mask"] + [f"present.{i}.encoder.{kv}" for i in range(n_layers) for kv in ("key", "value")]


#: a decoder layer's self-state in the graphs: None = attention KV cache, else the recurrent state's names
LayerSpec = "list[str] | None"


def decoder_layer_specs(model: EncoderDecoder) -> list[list[str] | None]:
    return stack_layer_specs(model.decoder.stack)


def _specs(layers) -> list[list[str] | None]:
    return [None] * layers if isinstance(layers, int) else list(layers)


def _self_names(prefix: str, i: int, spec: list[str] | None) -> list[str]:
    if spec is None:
        return [f"{prefix}.{i}.decoder.{kv}" for kv in ("key", "value")]
    return [f"{'state' if prefix == 'past_key_values' else 'present'}.{i}{'.state' if prefix == 'present' else ''}.{n}"
            for n in spec]


def decoder_input_names(layers: int | list[list[str] | None]) -> list[str]:
    """``layers``: the number of (all-attention) layers, or :func:`decoder_layer_specs`."""
    names = ["input_ids", "offset", "memory_mask"]
    for i, spec in enumerate(_specs(layers)):
        names += _self_names("past_key_values", i, spec) + [f"past_key_values.{i}.encoder.{kv}" for kv in ("key", "value")]
    return names


def decoder_output_names(layers: int | list[list[str] | None]) -> list[str]:
    return ["logits"] + [n for i, spec in enumerate(_specs(layers)) for n in _self_names("present", i, spec)]


# ----------------------------------------------------------------------------- export-only adapters

class EncoderGraph(nn.Module):
    """``src_ids -> (memory, memory_mask, k_0, v_0, k_1, v_1, ...)``: the encoder plus every decoder
    layer's cross-attention key/value projection."""

    def __init__(self, model: EncoderDecoder):
        super().__init__()
        self.model = model

    def forward(self, src_ids: torch.Tensor):
        memory, mask = self.model.encode(src_ids)
        out = [memory, mask]
        for m in self.model.decoder.memory_states(memory, mask):
            out += [m["key"], m["value"]]
        return tuple(out)


class DecoderStepGraph(nn.Module):
    """Flat-tensor front end of :meth:`EncoderDecoder.step`: rebuilds a :class:`DecoderState` from
    graph inputs (``offset`` as a tensor, which :mod:`core.nn.positions` supports) and flattens
    the new self-states back out, in the order of :func:`decoder_input_names`: per layer its
    self-state (KV cache or recurrent state tensors), then the encoder key and value."""

    def __init__(self, model: EncoderDecoder):
        super().__init__()
        self.model = model
        self.specs = decoder_layer_specs(model)

    def forward(self, input_ids: torch.Tensor, offset: torch.Tensor, memory_mask: torch.Tensor, *past: torch.Tensor):
        layers, memory, pos = [], [], 0
        for spec in self.specs:
            names = layer_state_names(spec)
            layers.append(dict(zip(names, past[pos: pos + len(names)])))
            ek, ev = past[pos + len(names): pos + len(names) + 2]
            memory.append({"key": ek, "value": ev, "mask": memory_mask})
            pos += len(names) + 2
        logits, state = self.model.step(input_ids, DecoderState(layers, memory, offset))
        out = [logits]
        for spec, s in zip(self.specs, state.layers):
            out += [s[n] for n in layer_state_names(spec)]
        return tuple(out)


# ----------------------------------------------------------------------------- export

def export_encoder_decoder(model: EncoderDecoder, out_dir: str | Path, opset: int = DEFAULT_OPSET,
                           dynamo: bool = True, metadata: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``encoder.onnx``, ``decoder.onnx`` and ``config.json`` into ``out_dir``.

    ``metadata`` (JSON-serialisable: special ids, tokenizer file name, ...) is stored in
    ``config.json`` under ``"metadata"``; the runner uses ``bos_id``/``eos_id`` from it as
    generation defaults. Returns ``{"encoder": path, "decoder": path, "config": path}``.
    """
    # dynamo=True (torch.export -> onnxscript/torchlib) is the only exporter that works here and
    # the one PyTorch maintains. The TorchScript exporter (dynamo=False) has no symbolic for
    # aten::rms_norm (our default norm), and tracing would freeze the attention mixer's
    # shape-dependent Python branches (`q_len == k_len` -> is_causal fast path,
    # `min(k_len, window - 1)` cache truncation) to whatever the example shapes took, giving
    # graphs that are wrong for other cache lengths. torch.export keeps those sizes symbolic:
    # the branches resolve to the general masked path and the window cut to a symbolic Min+Slice.
    if not dynamo:
        raise ValueError("export_encoder_decoder needs dynamo=True: the TorchScript exporter cannot "
                         "export rms_norm and bakes shape-dependent branches into the graph")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    n_layers = cfg.decoder.n_layers
    specs = decoder_layer_specs(model)
    step_only = any(spec is not None for spec in specs)
    attn = next((layer.mixer for layer in model.decoder.stack.layers if isinstance(layer.mixer, Attention)), None)
    cross = model.decoder.stack.layers[0].cross
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    big = sum(p.numel() * p.element_size() for p in model.parameters()) > (1 << 30)  # protobuf caps files at 2 GB

    # Example sizes are all different (and >= 2) so that no two dynamic axes get unified and
    # none is specialised to 0/1; the graphs still run with past_len 0 and batch/tgt_len 1.
    # A private generator keeps the caller's RNG state untouched.
    b, s, t, p = 2, 7, (1 if step_only else 3), 5
    gen = torch.Generator().manual_seed(0)
    src = torch.randint(0, cfg.src_vocab_size, (b, s), generator=gen)
    src[src == model.pad_id] = (model.pad_id + 1) % cfg.src_vocab_size
    src[1, -2:] = model.pad_id
    src = src.to(device)
    batch = torch.export.Dim("batch")
    src_len = torch.export.Dim("src_len", max=_max_len(cfg.encoder))
    tgt_len = torch.export.Dim("tgt_len")
    past_len = torch.export.Dim("past_len")

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
            enc_path = out_dir / ENCODER_FILE
            prog = torch.onnx.export(
                EncoderGraph(model).eval(), (src,), dynamo=True, opset_version=opset, verbose=False,
                input_names=["src_ids"],
                output_names=encoder_output_names(n_layers), dynamic_shapes=({0: batch, 1: src_len},))
            prog.save(enc_path, external_data=big)

            memory, mask = model.encode(src)
            states, shapes = example_states(model.decoder.stack, specs, b, p, gen, batch, past_len, device, dtype)
            past: list[torch.Tensor] = []
            past_shapes: list[dict] = []
            for spec, st, sh, m in zip(specs, unflatten_states(specs, states), unflatten_states(specs, shapes),
                                       model.decoder.memory_states(memory, mask)):
                names = layer_state_names(spec)
                past += [st[n] for n in names] + [m["key"], m["value"]]
                past_shapes += [sh[n] for n in names] + [{0: batch, 2: src_len}] * 2
            ids = torch.randint(0, cfg.tgt_vocab_size, (b, t), generator=gen).to(device)
            offset = torch.tensor(p, dtype=torch.long, device=device)
            dec_path = out_dir / DECODER_FILE
            prog = torch.onnx.export(
                DecoderStepGraph(model).eval(), (ids, offset, mask, *past), dynamo=True, opset_version=opset,
                verbose=False, input_names=decoder_input_names(specs),
                output_names=decoder_output_names(specs),
                dynamic_shapes=({0: batch} if step_only else {0: batch, 1: tgt_len}, None, {0: batch, 1: src_len},
                                tuple(past_shapes)))
            _name_present_axis(prog.model)
            prog.save(dec_path, external_data=big)
    finally:
        model.train(was_training)

    config = {
        "format": FORMAT,
        "version": 1,
        "files": {"encoder": ENCODER_FILE, "decoder": DECODER_FILE},
        "exporter": "torch.onnx.export(dynamo=True)",
        "opset": opset,
        "torch": torch.__version__,
        "n_layers": n_layers,
        "d_model": cfg.decoder.d_model,
        "n_heads": attn.n_heads if attn else None,
        "n_kv_heads": attn.n_kv_heads if attn else None,
        "head_dim": attn.head_dim if attn else None,
        "cross_heads": cross.n_heads,
        "window": attn.window if attn else None,
        # per decoder layer: null = attention KV cache, else {state name: shape without the batch}
        "layer_states": state_shapes(model.decoder.stack, specs),
        "step_only": step_only,
        "src_vocab_size": cfg.src_vocab_size,
        "tgt_vocab_size": cfg.tgt_vocab_size,
        "pad_id": model.pad_id,
        "max_src_len": _max_len(cfg.encoder),
        "max_tgt_len": _max_len(cfg.decoder),
        "encoder_outputs": encoder_output_names(n_layers),
        "decoder_inputs": decoder_input_names(specs),
        "decoder_outputs": decoder_output_names(specs),
        "model_config": dataclasses.asdict(cfg),
        "metadata": dict(metadata or {}),
    }
    cfg_path = out_dir / CONFIG_FILE
    _write_json_atomic(cfg_path, config)
    return {"encoder": enc_path, "decoder": dec_path, "config": cfg_path}


def _max_len(backbone) -> int | None:
    return backbone.max_len if backbone.position in _TABLE_POSITIONS else None


def _name_present_axis(model) -> None:
    """The exporter names the cache-length axis of ``present.*`` after its symbolic formula
    (``past_len + tgt_len``, or a Max/Min expression with a sliding window); call it ``present_len``."""
    import onnx_ir as ir

    for value in model.graph.outputs:
        if value.name.startswith("present.") and value.shape is not None:
            dims = list(value.shape)
            dims[2] = ir.SymbolicDim("present_len")
            value.shape = ir.Shape(dims)


def _write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=2))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
