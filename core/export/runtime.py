"""onnxruntime runners for the graphs core/export writes.

:class:`StepSession` is the one step runner every app uses: it feeds a step graph its ``past*``
inputs and hands the ``present*`` outputs back as the next step's ``past*`` (names from
:mod:`core.export.names`). On top of it, :class:`OnnxEncoderDecoder` and :class:`OnnxDecoderLM`
speak the decoding protocol of :mod:`core.generation` (``step(ids, state) -> (logits, state)``),
so greedy, beam and sampling search run unchanged on onnxruntime:

    runner = OnnxEncoderDecoder("export/")
    hyps = generate(runner, runner.start(src_ids), GenerationConfig(strategy="beam"))

    lm = OnnxDecoderLM("lm/")
    hyps = lm.generate(prompt_ids, GenerationConfig(max_len=50))

Their state is a :class:`~core.models.DecoderState` of CPU torch tensors that share memory with
the numpy arrays onnxruntime reads and writes (``torch.from_numpy`` / ``Tensor.numpy`` copy
nothing), so beam search reorders caches with the same ``index_select`` as for the PyTorch model.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime as ort
import torch

from core.errors import UserError
from core.export.graph import CONFIG_FILE
from core.export.names import cross_names, is_present, past_name
from core.export.states import LayerState
from core.generation import AllowedTokens, GenerationConfig, Hypothesis, generate
from core.models.state import DecoderState

_ORT_TO_NUMPY = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


def read_config(path: str | Path, fmt: str, version: int | None = None) -> dict[str, Any]:
    """``config.json`` of an export folder, checked to be of format ``fmt`` (and ``version``)."""
    file = Path(path) / CONFIG_FILE
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{file}: not valid JSON ({err})") from None
    if config.get("format") != fmt:
        raise UserError(f"{file}: not a {fmt} export (format {config.get('format')!r})")
    if version is not None and config.get("version") != version:
        raise UserError(f"{file}: {fmt} version {config.get('version')}, this code reads version {version}; "
                        "export the checkpoint again")
    return config


def open_export(path: str | Path, fmt: str, providers: Sequence[str] | None = None,
                session_options: ort.SessionOptions | None = None,
                version: int | None = None) -> tuple[dict, dict[str, ort.InferenceSession]]:
    """``config.json`` of an export folder and an onnxruntime session for each entry of its ``"files"``."""
    path = Path(path)
    config = read_config(path, fmt, version)
    providers = list(providers or ["CPUExecutionProvider"])
    if session_options is None:  # onnxruntime's notes on unused initializers are not the user's business
        session_options = ort.SessionOptions()
        session_options.log_severity_level = 3
    return config, {name: ort.InferenceSession(str(path / f), session_options, providers=providers)
                    for name, f in config["files"].items()}


class StepSession:
    """One step graph: ``run(inputs, past) -> (outputs, past)``, where ``outputs`` holds every
    non-state output by name and ``past`` the ``present*`` outputs renamed to the ``past*``
    inputs they feed next (:func:`core.export.names.past_name`)."""

    def __init__(self, session: ort.InferenceSession):
        self.session = session
        self.output_names = [o.name for o in session.get_outputs()]
        self.inputs = {i.name: i for i in session.get_inputs()}

    def run(self, inputs: dict[str, np.ndarray], past: dict[str, np.ndarray]
            ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        values = self.session.run(self.output_names, {**inputs, **past})
        outputs, new_past = {}, {}
        for name, value in zip(self.output_names, values):
            if is_present(name):
                new_past[past_name(name)] = value
            else:
                outputs[name] = value
        return outputs, new_past

    def state_dtype(self) -> type:
        """numpy dtype of the graph's state inputs (float32 unless exported in another precision)."""
        types = [i.type for n, i in self.inputs.items() if n.startswith("past")]
        if types and types[0] not in _ORT_TO_NUMPY:
            raise ValueError(f"state type {types[0]} has no numpy equivalent; export the model in float32/float16")
        return _ORT_TO_NUMPY[types[0]] if types else np.float32


def layer_states(config: dict) -> list[LayerState]:
    return [LayerState.from_json(layer) for layer in config["layer_states"]]


def empty_past(layers: Sequence[LayerState], batch: int = 1, dtype=np.float32) -> dict[str, np.ndarray]:
    """``past*`` feeds of the first step: length-0 growing states, zero fixed states (an export
    refuses a mixer whose ``init_state`` is not zero: :func:`core.export.stack_layer_states`)."""
    return {name: np.zeros([batch, *layer.shapes[n]], dtype) for i, layer in enumerate(layers)
            for name, n in zip(layer.io_names(i, "past"), layer.names)}


def past_feeds(layers: Sequence[LayerState], states: Sequence[dict[str, torch.Tensor]]) -> dict[str, np.ndarray]:
    """``past*`` feeds from per-layer state dicts (a :class:`DecoderState`'s ``layers``)."""
    return {name: _np(state[n]) for i, (layer, state) in enumerate(zip(layers, states))
            for name, n in zip(layer.io_names(i, "past"), layer.names)}


def past_states(layers: Sequence[LayerState], past: dict[str, np.ndarray]) -> list[dict[str, torch.Tensor]]:
    """The inverse of :func:`past_feeds`: per-layer state dicts of torch tensors (no copy)."""
    return [{n: torch.from_numpy(past[name]) for name, n in zip(layer.io_names(i, "past"), layer.names)}
            for i, layer in enumerate(layers)]


class _Decoding:
    """The decoder side both runners share: a step graph with per-layer state, and ``offset``."""

    config: dict[str, Any]
    metadata: dict[str, Any]
    layers: list[LayerState]
    step_only: bool
    session: StepSession

    def _setup(self, session: ort.InferenceSession) -> None:
        self.session = StepSession(session)
        self.layers = layer_states(self.config)
        self.n_layers = len(self.layers)
        self.step_only = bool(self.config.get("step_only", False))
        self.metadata = self.config.get("metadata", {})
        #: the model's special ids (core.generation reads them when a config does not override them)
        self.bos_id: int | None = self.metadata.get("bos_id")
        self.eos_id: int | None = self.metadata.get("eos_id")
        self.dtype = self.session.state_dtype()

    def _empty_layers(self, batch: int) -> list[dict[str, torch.Tensor]]:
        return past_states(self.layers, empty_past(self.layers, batch, self.dtype))

    def step(self, ids: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """Consume ``ids`` [B, T] (one token or a prefill chunk) -> logits [B, T, V], new state.
        A step-only graph (a stack with recurrent layers) consumes a chunk one token at a time."""
        if self.step_only and ids.shape[1] > 1:
            outs = []
            for j in range(ids.shape[1]):
                logits, state = self.step(ids[:, j:j + 1], state)
                outs.append(logits)
            return torch.cat(outs, 1), state
        ids = _as_int64(ids)
        limit = self.config.get("max_tgt_len")
        if limit is not None and int(state.offset) + ids.shape[1] > limit:
            raise ValueError(f"sequence of length {int(state.offset) + ids.shape[1]} exceeds max_len={limit}")
        feed = {"input_ids": ids, "offset": np.asarray(int(state.offset), dtype=np.int64), **self._memory_feeds(state)}
        outputs, past = self.session.run(feed, past_feeds(self.layers, state.layers))
        return (torch.from_numpy(outputs["logits"]),
                DecoderState(past_states(self.layers, past), state.memory, int(state.offset) + ids.shape[1],
                             state.beams))

    def _memory_feeds(self, state: DecoderState) -> dict[str, np.ndarray]:
        return {}

    def generation_config(self, **overrides) -> GenerationConfig:
        """A :class:`GenerationConfig` whose BOS/EOS come from the export metadata when it has them."""
        special = {k: self.metadata[k] for k in ("bos_id", "eos_id") if k in self.metadata}
        return GenerationConfig(**{**special, **overrides})


class OnnxEncoderDecoder(_Decoding):
    """Both sessions of an :func:`core.export.export_encoder_decoder` folder plus its ``config.json``.

    ``providers`` defaults to ``["CPUExecutionProvider"]``; ``session_options`` lets a CLI set
    thread counts. ``config`` is the parsed ``config.json``; ``metadata`` its ``"metadata"`` entry.
    """

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None,
                 session_options: ort.SessionOptions | None = None):
        from core.export.onnx_seq2seq import FORMAT, VERSION

        self.path = Path(path)
        self.config, sessions = open_export(self.path, FORMAT, providers, session_options, VERSION)
        self.encoder, self.decoder = sessions["encoder"], sessions["decoder"]
        self.pad_id: int = self.config["pad_id"]
        self._enc_out = self.config["encoder_outputs"]
        self._enc_types = {i.name: i.type for i in self.encoder.get_inputs()}
        self._feeds: tuple | None = None  # (memory list, beams, feeds) of the search in progress
        self._setup(self.decoder)

    def encode(self, *source) -> dict[str, torch.Tensor]:
        """All encoder outputs by name (``memory``, ``memory_mask``, ``present.{i}.encoder.*``) for
        the encoder's inputs in the order of ``config["encoder_inputs"]`` (``src_ids`` [B, S], or
        e.g. ``images``, ``sizes``)."""
        names = self.config["encoder_inputs"]
        if len(source) != len(names):
            raise ValueError(f"the encoder reads {names}, got {len(source)} input(s)")
        feed = {name: _as_type(x, self._enc_types[name]) for name, x in zip(names, source)}
        limit = self.config.get("max_src_len")
        if limit is not None and "src_ids" in feed and feed["src_ids"].shape[1] > limit:
            raise ValueError(f"source of length {feed['src_ids'].shape[1]} exceeds max_len={limit}")
        outs = self.encoder.run(self._enc_out, feed)
        return {name: torch.from_numpy(a) for name, a in zip(self._enc_out, outs)}

    def start(self, *source) -> DecoderState:
        """Encode once; empty self-states plus the encoder keys/values and source mask."""
        enc = self.encode(*source)
        mask = enc["memory_mask"]
        memory = []
        for i in range(self.n_layers):
            key, value = (enc[n] for n in cross_names(i, "present"))
            memory.append({"key": key, "value": value, "mask": mask})
        return DecoderState(self._empty_layers(mask.shape[0]), memory, 0)

    def _memory_feeds(self, state: DecoderState) -> dict[str, np.ndarray]:
        """The step graph wants one memory row per decoder row: a beam search's shared memory
        (``state.beams`` > 1) is repeated once per search, not once per step."""
        if self._feeds is not None and self._feeds[0] is state.memory and self._feeds[1] == state.beams:
            return self._feeds[2]

        def rows(t: torch.Tensor) -> np.ndarray:
            return _np(t) if state.beams == 1 else np.repeat(_np(t), state.beams, axis=0)

        feed = {"memory_mask": rows(state.memory[0]["mask"])}
        for i, m in enumerate(state.memory):
            key, value = cross_names(i, "past")
            feed[key], feed[value] = rows(m["key"]), rows(m["value"])
        self._feeds = (state.memory, state.beams, feed)  # (holding the memory: its id is never reused)
        return feed

    def generate(self, source, cfg: GenerationConfig | None = None,
                 allowed_tokens: AllowedTokens | None = None) -> list[list[Hypothesis]]:
        """Encode ``source`` (``src_ids`` [B, S] padded with ``pad_id``, or a tuple of the encoder's
        inputs) and search: one hypothesis list per row."""
        source = source if isinstance(source, tuple) else (source,)
        return generate(self, self.start(*source), cfg or self.generation_config(), allowed_tokens)


class OnnxDecoderLM(_Decoding):
    """The step graph of a :func:`core.export.export_decoder_lm` folder (a decoder-only LM).

    ``start(batch)`` is the empty state; ``prompt(ids)`` reads a prompt and returns the state and
    the prompt's last token, which :func:`core.generation.generate` feeds first (as its ``bos_id``):

        state, last = lm.prompt(prompt_ids)
        hyps = generate(lm, state, GenerationConfig(bos_id=last, eos_id=...))
    """

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None,
                 session_options: ort.SessionOptions | None = None):
        from core.export.onnx_decoder import FORMAT, VERSION

        self.path = Path(path)
        self.config, sessions = open_export(self.path, FORMAT, providers, session_options, VERSION)
        self.decoder = sessions["decoder"]
        self._setup(self.decoder)

    def start(self, batch: int = 1) -> DecoderState:
        return DecoderState(self._empty_layers(batch), None, 0)

    def prompt(self, ids) -> tuple[DecoderState, int]:
        """Consume all but the last token of ``ids`` [B, T >= 1] (rows must end with the same token,
        e.g. BOS or a separator) -> (state, that last token)."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        last = ids[:, -1]
        if not bool((last == last[0]).all()):
            raise ValueError("prompts of one batch must end with the same token (it is fed as generate's bos_id)")
        state = self.start(ids.shape[0])
        if ids.shape[1] > 1:
            _, state = self.step(ids[:, :-1], state)
        return state, int(last[0])

    def generate(self, ids, cfg: GenerationConfig | None = None, allowed_tokens: AllowedTokens | None = None,
                 generator: torch.Generator | None = None) -> list[list[Hypothesis]]:
        """Continue each prompt row of ``ids`` [B, T]: one hypothesis list per row (tokens after the prompt)."""
        state, last = self.prompt(ids)
        cfg = GenerationConfig(**{**vars(cfg or self.generation_config()), "bos_id": last})
        return generate(self, state, cfg, allowed_tokens, generator)


def _as_int64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.int64)


_ORT_TO_NUMPY_ANY = {**_ORT_TO_NUMPY, "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


def _as_type(x, ort_type: str) -> np.ndarray:
    """``x`` (tensor or array) as the contiguous numpy array a graph input of ``ort_type`` takes."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x, dtype=_ORT_TO_NUMPY_ANY[ort_type])


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


__all__ = ["OnnxDecoderLM", "OnnxEncoderDecoder", "StepSession", "empty_past", "layer_states", "open_export",
           "past_feeds", "past_states", "read_config"]
