"""onnxruntime runner for graphs written by :func:`core.export.export_encoder_decoder`.

:class:`OnnxEncoderDecoder` speaks the decoding protocol of :mod:`core.generation`
(``start(src_ids) -> state``, ``step(ids, state) -> (logits, state)``), so greedy, beam and
sampling search run unchanged on top of onnxruntime:

    runner = OnnxEncoderDecoder("export/")
    hyps = generate(runner, runner.start(src_ids), GenerationConfig(strategy="beam"))

The state is a :class:`~core.models.DecoderState` of CPU torch tensors that share memory with the
numpy arrays onnxruntime reads and writes (``torch.from_numpy`` / ``Tensor.numpy`` copy nothing),
so beam search reorders caches with the same ``index_select`` as for the PyTorch model.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime as ort
import torch

from core.export.onnx_seq2seq import CONFIG_FILE, FORMAT
from core.generation import AllowedTokens, GenerationConfig, Hypothesis, generate
from core.models.state import DecoderState

_ORT_TO_NUMPY = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class OnnxEncoderDecoder:
    """Both sessions of an exported encoder-decoder plus its ``config.json``.

    ``providers`` defaults to ``["CPUExecutionProvider"]``; ``session_options`` lets a CLI set
    thread counts. ``config`` is the parsed ``config.json``; ``metadata`` its ``"metadata"`` entry.
    """

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None,
                 session_options: ort.SessionOptions | None = None):
        self.path = Path(path)
        self.config: dict[str, Any] = json.loads((self.path / CONFIG_FILE).read_text())
        if self.config.get("format") != FORMAT:
            raise ValueError(f"{self.path / CONFIG_FILE} is not a {FORMAT} export")
        providers = list(providers or ["CPUExecutionProvider"])
        files = self.config["files"]
        self.encoder = ort.InferenceSession(str(self.path / files["encoder"]), session_options, providers=providers)
        self.decoder = ort.InferenceSession(str(self.path / files["decoder"]), session_options, providers=providers)
        self.n_layers: int = self.config["n_layers"]
        self.pad_id: int = self.config["pad_id"]
        self.metadata: dict[str, Any] = self.config.get("metadata", {})
        self._enc_out = self.config["encoder_outputs"]
        self._dec_in = self.config["decoder_inputs"]
        self._dec_out = self.config["decoder_outputs"]
        #: per layer: None (attention cache) or {state name: shape without batch} (recurrent mixer)
        self.layer_states: list[dict | None] = self.config.get("layer_states") or [None] * self.n_layers
        self.step_only: bool = self.config.get("step_only", False)
        types = {i.name: i.type for i in self.decoder.get_inputs()}
        cache_type = types["past_key_values.0.encoder.key"]
        if cache_type not in _ORT_TO_NUMPY:
            raise ValueError(f"cache type {cache_type} has no numpy equivalent; export the model in float32/float16")
        self.dtype = _ORT_TO_NUMPY[cache_type]

    # -------------------------------------------------------------- encoder

    def encode(self, src_ids) -> dict[str, torch.Tensor]:
        """All encoder outputs by name (``memory``, ``memory_mask``, ``present.{i}.encoder.*``)."""
        src = _as_int64(src_ids)
        limit = self.config.get("max_src_len")
        if limit is not None and src.shape[1] > limit:
            raise ValueError(f"source of length {src.shape[1]} exceeds max_len={limit}")
        outs = self.encoder.run(self._enc_out, {"src_ids": src})
        return {name: torch.from_numpy(a) for name, a in zip(self._enc_out, outs)}

    def start(self, src_ids) -> DecoderState:
        """Encode once; empty self-attention caches plus the encoder keys/values and source mask."""
        enc = self.encode(src_ids)
        mask = enc["memory_mask"]
        batch = mask.shape[0]
        c = self.config
        layers, memory = [], []
        for i, spec in enumerate(self.layer_states):
            if spec is None:
                empty = torch.from_numpy(np.zeros((batch, c["n_kv_heads"], 0, c["head_dim"]), dtype=self.dtype))
                layers.append({"key": empty, "value": empty.clone()})
            else:
                layers.append({n: torch.from_numpy(np.zeros((batch, *shape), dtype=self.dtype))
                               for n, shape in spec.items()})
            memory.append({"key": enc[f"present.{i}.encoder.key"], "value": enc[f"present.{i}.encoder.value"],
                           "mask": mask})
        return DecoderState(layers, memory, 0)

    # -------------------------------------------------------------- decoder

    def step(self, ids: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """Consume ``ids`` [B, T] (one token or a prefill chunk) -> logits [B, T, V], new state.
        A step-only graph (recurrent decoder) consumes a chunk one token at a time."""
        if self.step_only and ids.shape[1] > 1:
            outs = []
            for j in range(ids.shape[1]):
                logits, state = self.step(ids[:, j:j + 1], state)
                outs.append(logits)
            return torch.cat(outs, 1), state
        ids = _as_int64(ids)
        limit = self.config.get("max_tgt_len")
        if limit is not None and state.offset + ids.shape[1] > limit:
            raise ValueError(f"sequence of length {state.offset + ids.shape[1]} exceeds max_len={limit}")
        feed = {"input_ids": ids, "offset": np.asarray(state.offset, dtype=np.int64),
                "memory_mask": _np(state.memory[0]["mask"])}
        for i, spec in enumerate(self.layer_states):
            if spec is None:
                feed[f"past_key_values.{i}.decoder.key"] = _np(state.layers[i]["key"])
                feed[f"past_key_values.{i}.decoder.value"] = _np(state.layers[i]["value"])
            else:
                feed.update({f"state.{i}.{n}": _np(state.layers[i][n]) for n in spec})
            feed[f"past_key_values.{i}.encoder.key"] = _np(state.memory[i]["key"])
            feed[f"past_key_values.{i}.encoder.value"] = _np(state.memory[i]["value"])
        outs = iter(torch.from_numpy(a) for a in self.decoder.run(self._dec_out, feed))
        logits = next(outs)
        layers = [{n: next(outs) for n in (("key", "value") if spec is None else spec)} for spec in self.layer_states]
        return logits, DecoderState(layers, state.memory, state.offset + ids.shape[1])

    # -------------------------------------------------------------- convenience for CLIs

    def generation_config(self, **overrides) -> GenerationConfig:
        """A :class:`GenerationConfig` whose BOS/EOS come from the export metadata when it has them."""
        special = {k: self.metadata[k] for k in ("bos_id", "eos_id") if k in self.metadata}
        return GenerationConfig(**{**special, **overrides})

    def generate(self, src_ids, cfg: GenerationConfig | None = None,
                 allowed_tokens: AllowedTokens | None = None) -> list[list[Hypothesis]]:
        """Encode ``src_ids`` [B, S] (padded with ``pad_id``) and search: one hypothesis list per row."""
        return generate(self, self.start(src_ids), cfg or self.generation_config(), allowed_tokens)


def _as_int64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.int64)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


# ----------------------------------------------------------------------------- helpers for app runners

def open_export(path: str | Path, fmt: str, providers: Sequence[str] | None = None) -> tuple[dict, dict]:
    """``config.json`` of an export folder (checked to be of format ``fmt``) and an onnxruntime
    session for each entry of its ``"files"``."""
    path = Path(path)
    config = json.loads((path / CONFIG_FILE).read_text())
    if config.get("format") != fmt:
        raise ValueError(f"{path} does not hold a {fmt} export")
    providers = list(providers or ["CPUExecutionProvider"])
    return config, {name: ort.InferenceSession(str(path / f), providers=providers) for name, f in config["files"].items()}


def empty_state_feeds(session: ort.InferenceSession, layer_states: list[dict | None], prefix: str = "past",
                      batch: int = 1) -> dict[str, np.ndarray]:
    """Zero states for a step graph's ``{prefix}.{i}.*`` inputs (:func:`core.export.state_io_names`):
    length-0 KV caches, sized from the graph's inputs, or zero recurrent states of the shapes in
    ``layer_states`` (:func:`core.export.state_shapes`)."""
    inputs = {x.name: x.shape for x in session.get_inputs()}
    feeds = {}
    for i, layer in enumerate(layer_states):
        if layer is None:
            shape = inputs[f"{prefix}.{i}.key"]
            empty = np.zeros((batch, shape[1], 0, shape[3]), np.float32)
            feeds[f"{prefix}.{i}.key"], feeds[f"{prefix}.{i}.value"] = empty, empty.copy()
        else:
            feeds.update({f"{prefix}.{i}.state.{n}": np.zeros([batch, *s], np.float32) for n, s in layer.items()})
    return feeds
