"""ONNX export of ASR models (NeMo-style split) and a runner that decodes with onnxruntime and numpy.

Graphs (``torch.onnx.export(dynamo=True)``), with ``config.json`` and the vocabulary beside them:

``encoder.onnx``    audio [batch, samples] float, audio_lens [batch] int64
                    -> encoded [batch, frames, dim], encoded_lens [batch] int64
                    The whole front end is inside (log-mel through STFT, CMVN, subsampling). For a
                    transducer ``encoded`` is the joint network's projection of each frame; for CTC
                    it is the per-frame log-probabilities.
``predictor.onnx``  (transducer) label [batch, 1] int64, offset [] int64, per predictor layer its
                    state (``past_key_values.{i}.decoder.{key,value}`` attention cache, or
                    ``past_state.{i}.{name}``: :mod:`core.export.names`)
                    -> prediction [batch, dim], ``present.{i}.decoder.*`` / ``present_state.{i}.*``:
                    one step of the prediction network
``joint.onnx``      (transducer) encoded frame [batch, dim], prediction [batch, dim] -> logits [batch, vocab]

:class:`OnnxTranscriber` decodes greedily, as the PyTorch model does. ``python -m apps.speech.export``
writes these graphs for an ASR checkpoint and checks the transcripts against PyTorch.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from apps.speech.asr.decoding import MAX_SYMBOLS
from apps.speech.asr.model import BLANK, ASRModel
from apps.speech.asr.task import SpeechRecognizer
from apps.speech.features import min_audio_samples
from core.export import (
    CONFIG_FILE, DEFAULT_OPSET, LayerState, StepSession, empty_past, exporting, example_states, export_graph,
    flatten_states, layer_states, open_export, present_length_axes, scanned_mixers, stack_layer_states,
    state_io_names, unflatten_states, write_config,
)
from core.models.state import DecoderState

FORMAT = "seqlab.onnx_asr"
#: 2: state names of core.export.names
VERSION = 2


def predictor_layers(model: ASRModel) -> list[LayerState]:
    """Per predictor layer: what its mixer carries between steps (a growing cache or a fixed state)."""
    return stack_layer_states(model.predictor.stack)


class EncoderGraph(nn.Module):
    def __init__(self, model: ASRModel, head: str):
        super().__init__()
        self.model, self.head = model, head

    def forward(self, audio: torch.Tensor, audio_lens: torch.Tensor):
        h, lens = self.model.encode(audio, audio_lens)
        if self.head == "ctc":
            return self.model.ctc_head(h).log_softmax(-1), lens
        return self.model.joint_enc(h), lens


class PredictorStepGraph(nn.Module):
    def __init__(self, model: ASRModel):
        super().__init__()
        self.model, self.layers = model, predictor_layers(model)

    def forward(self, label: torch.Tensor, offset: torch.Tensor, *past: torch.Tensor):
        g, state = self.model.predict(label, DecoderState(unflatten_states(self.layers, past), None, offset))
        return (self.model.joint_pred(g[:, 0]), *flatten_states(self.layers, state.layers))


class JointGraph(nn.Module):
    def __init__(self, model: ASRModel):
        super().__init__()
        self.model = model

    def forward(self, encoded: torch.Tensor, prediction: torch.Tensor):
        return self.model.joint(encoded, prediction)


def export_asr(recognizer: SpeechRecognizer, out_dir: str | Path) -> dict:
    """Write the graphs and ``config.json`` into ``out_dir``; returns the config."""
    model, head = recognizer.model, recognizer.head
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    batch = torch.export.Dim("batch")
    features = recognizer.cfg.features
    # shorter audio gives no encoder frame: transcribe rejects it before it reaches the graph
    samples = torch.export.Dim("samples", min=max(features.n_fft * 2, min_audio_samples(features)))
    config: dict = {"format": FORMAT, "version": VERSION, "opset": DEFAULT_OPSET, "head": head,
                    "sample_rate": features.sample_rate, "features": dataclasses.asdict(features),
                    "symbols": recognizer.tokenizer.symbols, "blank": BLANK, "files": {"encoder": "encoder.onnx"}}
    with exporting(model):
        audio = torch.randn(2, 24000, generator=gen) * 0.1
        with scanned_mixers(model.encoder.stack):  # recurrent mixers as ONNX Scans: any length
            export_graph(EncoderGraph(model, head), (audio, torch.tensor([24000, 17000])), out_dir / "encoder.onnx",
                         ["audio", "audio_lens"], ["encoded", "encoded_lens"], ({0: batch, 1: samples}, {0: batch}))
        if head == "transducer":
            layers = predictor_layers(model)
            b, p = 2, 3
            past, shapes = example_states(layers, b, p, gen, batch, torch.export.Dim("past_len"))
            label = torch.randint(4, recognizer.cfg.vocab_size, (b, 1), generator=gen)
            export_graph(PredictorStepGraph(model), (label, torch.tensor(p), *past), out_dir / "predictor.onnx",
                         ["label", "offset", *state_io_names(layers, "past")],
                         ["prediction", *state_io_names(layers, "present")], ({0: batch}, None, tuple(shapes)),
                         length_axes=present_length_axes(layers))
            j = recognizer.cfg.joint_dim
            export_graph(JointGraph(model), (torch.randn(b, j, generator=gen), torch.randn(b, j, generator=gen)),
                         out_dir / "joint.onnx", ["encoded", "prediction"], ["logits"], ({0: batch}, {0: batch}))
            config["files"].update(predictor="predictor.onnx", joint="joint.onnx")
            config["layer_states"] = [layer.to_json() for layer in layers]
            config["max_labels"] = model.max_labels
            config["max_symbols"] = MAX_SYMBOLS
    write_config(out_dir / CONFIG_FILE, config)
    return config


class OnnxTranscriber:
    """Greedy transcription with onnxruntime and numpy only, from an :func:`export_asr` folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config, self.sessions = open_export(path, FORMAT, version=VERSION)
        self.symbols = ["", "", "", ""] + self.config["symbols"]  # after the 4 special tokens

    def __call__(self, audio: list[np.ndarray]) -> list[str]:
        lens = np.array([len(a) for a in audio], dtype=np.int64)
        padded = np.zeros((len(audio), int(lens.max())), dtype=np.float32)
        for row, a in zip(padded, audio):
            row[: len(a)] = a
        encoded, enc_lens = self.sessions["encoder"].run(None, {"audio": padded, "audio_lens": lens})
        decode = self._ctc if self.config["head"] == "ctc" else self._transducer
        return ["".join(self.symbols[k] for k in decode(e[:n])) for e, n in zip(encoded, enc_lens)]

    def _ctc(self, log_probs: np.ndarray) -> list[int]:
        labels, prev = [], BLANK
        for k in log_probs.argmax(-1).tolist():
            if k != prev and k != BLANK:
                labels.append(k)
            prev = k
        return labels

    def _transducer(self, encoded: np.ndarray) -> list[int]:
        predictor, joint = StepSession(self.sessions["predictor"]), self.sessions["joint"]
        past = empty_past(layer_states(self.config))
        offset = 0

        def step(label: int):
            nonlocal past, offset
            outputs, past = predictor.run({"label": np.array([[label]], np.int64),
                                           "offset": np.array(offset, np.int64)}, past)
            offset += 1
            return outputs["prediction"]

        g = step(1)  # BOS
        labels: list[int] = []
        for frame in encoded:
            for _ in range(self.config["max_symbols"]):
                best = int(joint.run(None, {"encoded": frame[None], "prediction": g})[0].argmax())
                if best == BLANK or len(labels) >= self.config["max_labels"]:
                    break
                labels.append(best)
                g = step(best)
        return labels
