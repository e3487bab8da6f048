"""ONNX export of ASR models (NeMo-style split) and a runner that decodes with onnxruntime and numpy.

Graphs (``torch.onnx.export(dynamo=True)``), with ``config.json`` and the vocabulary beside them:

``encoder.onnx``    audio [batch, samples] float, audio_lens [batch] int64
                    -> encoded [batch, frames, dim], encoded_lens [batch] int64
                    The whole front end is inside (log-mel through STFT, CMVN, subsampling). For a
                    transducer ``encoded`` is the joint network's projection of each frame; for CTC
                    it is the per-frame log-probabilities.
``predictor.onnx``  (transducer) label [batch, 1] int64, offset [] int64, per predictor layer its
                    state (``past.{i}.key/value`` attention cache, or ``past.{i}.state.{name}``)
                    -> prediction [batch, dim], ``present.{i}.*``: one step of the prediction network
``joint.onnx``      (transducer) encoded frame [batch, dim], prediction [batch, dim] -> logits [batch, vocab]

:class:`OnnxTranscriber` decodes greedily, as the PyTorch model does. ``python -m apps.speech.export``
writes these graphs for an ASR checkpoint and checks the transcripts against PyTorch.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from apps.speech.asr import BLANK, ASRModel
from apps.speech.decoding import MAX_SYMBOLS
from apps.speech.model import SpeechRecognizer
from core.export import (
    empty_state_feeds, example_states, flatten_states, open_export, scanned_mixers, stack_layer_specs, state_io_names, state_shapes, unflatten_states,
)
from core.io import atomic_write_text
from core.models.state import DecoderState

OPSET = 18
FORMAT = "seqlab.onnx_asr"


def layer_specs(model: ASRModel) -> list[list[str] | None]:
    """Per predictor layer: None for an attention KV cache, else the names of its recurrent state."""
    return stack_layer_specs(model.predictor.stack)


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
        self.model, self.specs = model, layer_specs(model)

    def forward(self, label: torch.Tensor, offset: torch.Tensor, *past: torch.Tensor):
        g, state = self.model.predict(label, DecoderState(unflatten_states(self.specs, past), None, offset))
        return (self.model.joint_pred(g[:, 0]), *flatten_states(self.specs, state.layers))


class JointGraph(nn.Module):
    def __init__(self, model: ASRModel):
        super().__init__()
        self.model = model

    def forward(self, encoded: torch.Tensor, prediction: torch.Tensor):
        return self.model.joint(encoded, prediction)


def export_asr(recognizer: SpeechRecognizer, out_dir: str | Path) -> dict:
    """Write the graphs and ``config.json`` into ``out_dir``; returns the config."""
    model, head = recognizer.model.eval(), recognizer.head
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    batch = torch.export.Dim("batch")
    samples = torch.export.Dim("samples", min=recognizer.cfg.features.n_fft * 2)
    config: dict = {"format": FORMAT, "version": 1, "opset": OPSET, "head": head,
                    "sample_rate": recognizer.cfg.features.sample_rate,
                    "symbols": recognizer.tokenizer.symbols, "blank": BLANK, "files": {"encoder": "encoder.onnx"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        audio = torch.randn(2, 24000, generator=gen) * 0.1
        with scanned_mixers(model.encoder.stack):  # recurrent mixers as ONNX Scans: any length
            prog = torch.onnx.export(EncoderGraph(model, head), (audio, torch.tensor([24000, 17000])), dynamo=True,
                                     opset_version=OPSET, input_names=["audio", "audio_lens"],
                                     output_names=["encoded", "encoded_lens"],
                                     dynamic_shapes=({0: batch, 1: samples}, {0: batch}))
        prog.save(out_dir / "encoder.onnx")
        if head == "transducer":
            specs = layer_specs(model)
            b, p = 2, 3
            past, shapes = example_states(model.predictor.stack, specs, b, p, gen, batch, torch.export.Dim("past_len"))
            label = torch.randint(4, recognizer.cfg.vocab_size, (b, 1), generator=gen)
            prog = torch.onnx.export(PredictorStepGraph(model), (label, torch.tensor(p), *past), dynamo=True,
                                     opset_version=OPSET, input_names=["label", "offset", *state_io_names(specs, "past")],
                                     output_names=["prediction", *state_io_names(specs, "present")],
                                     dynamic_shapes=({0: batch}, None, tuple(shapes)))
            prog.save(out_dir / "predictor.onnx")
            j = recognizer.cfg.joint_dim
            prog = torch.onnx.export(JointGraph(model), (torch.randn(b, j, generator=gen), torch.randn(b, j, generator=gen)),
                                     dynamo=True, opset_version=OPSET, input_names=["encoded", "prediction"],
                                     output_names=["logits"], dynamic_shapes=({0: batch}, {0: batch}))
            prog.save(out_dir / "joint.onnx")
            config["files"].update(predictor="predictor.onnx", joint="joint.onnx")
            config["predictor_layers"] = state_shapes(model.predictor.stack, specs)
            config["max_labels"] = model.max_labels
            config["max_symbols"] = MAX_SYMBOLS
    atomic_write_text(out_dir / "config.json", json.dumps(config, indent=2))
    return config


class OnnxTranscriber:
    """Greedy transcription with onnxruntime and numpy only, from an :func:`export_asr` folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config, self.sessions = open_export(path, FORMAT)
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
        predictor, joint = self.sessions["predictor"], self.sessions["joint"]
        past = empty_state_feeds(predictor, self.config["predictor_layers"])
        offset = 0

        def step(label: int):
            nonlocal past, offset
            outputs = predictor.run(None, {"label": np.array([[label]], np.int64), "offset": np.array(offset, np.int64),
                                           **past})
            names = [o.name for o in predictor.get_outputs()]
            past = {name.replace("present.", "past.", 1): value for name, value in zip(names[1:], outputs[1:])}
            offset += 1
            return outputs[0]

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
