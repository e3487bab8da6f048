"""Export a trained ASR checkpoint to ONNX (NeMo-style split) and check it against PyTorch.

    python -m apps.speech.export --checkpoint last.ckpt --out runs/asr/onnx [--audio a.wav ...]

Graphs (``torch.onnx.export(dynamo=True)``), with ``config.json`` and the vocabulary beside them:

``encoder.onnx``    audio [batch, samples] float, audio_lens [batch] int64
                    -> encoded [batch, frames, dim], encoded_lens [batch] int64
                    The whole front end is inside (log-mel through STFT, CMVN, subsampling). For a
                    transducer ``encoded`` is the joint network's projection of each frame; for CTC
                    it is the per-frame log-probabilities.
``predictor.onnx``  (transducer) label [batch, 1] int64, offset [] int64, per predictor layer its
                    state (``past.{i}.key/value`` attention cache, or ``state.{i}.{name}``)
                    -> prediction [batch, dim], ``present.{i}.*``: one step of the prediction network
``joint.onnx``      (transducer) encoded frame [batch, dim], prediction [batch, dim] -> logits [batch, vocab]

:class:`OnnxTranscriber` decodes with onnxruntime and numpy alone (greedy, as the PyTorch model
does). The command exports, transcribes the given audio (or held-out utterances of the bundled
corpus, or noise when there is none) with both, and fails unless every transcript is identical.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from apps.speech.asr import BLANK, ASRModel
from apps.speech.audio import read_audio
from apps.speech.model import SpeechRecognizer
from core.export import stack_layer_specs
from core.io import atomic_write_text
from core.mixers import Attention
from core.models.state import DecoderState

OPSET = 18
FORMAT = "seqlab.onnx_asr"


def layer_specs(model: ASRModel) -> list[list[str] | None]:
    """Per predictor layer: None for an attention KV cache, else the names of its recurrent state."""
    return stack_layer_specs(model.predictor.stack)


def state_names(specs, prefix: str) -> list[str]:
    names = []
    for i, spec in enumerate(specs):
        names += [f"{prefix}.{i}.{n}" for n in (["key", "value"] if spec is None else [f"state.{s}" for s in spec])]
    return names


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
        layers, pos = [], 0
        for spec in self.specs:
            names = ["key", "value"] if spec is None else spec
            layers.append(dict(zip(names, past[pos: pos + len(names)])))
            pos += len(names)
        g, state = self.model.predict(label, DecoderState(layers, None, offset))
        out = [self.model.joint_pred(g[:, 0])]
        for spec, s in zip(self.specs, state.layers):
            out += [s[n] for n in (["key", "value"] if spec is None else spec)]
        return tuple(out)


class JointGraph(nn.Module):
    def __init__(self, model: ASRModel):
        super().__init__()
        self.model = model

    def forward(self, encoded: torch.Tensor, prediction: torch.Tensor):
        return self.model.joint(encoded, prediction)


def export_asr(recognizer: SpeechRecognizer, out_dir: str | Path) -> dict:
    """Write the graphs and ``config.json`` into ``out_dir``; returns the config."""
    model, head = recognizer.model.eval(), recognizer.head
    stack = model.encoder.stack
    if not all(isinstance(layer.mixer, Attention) for layer in stack.layers):
        # torch.export unrolls the chunked scans of recurrent mixers over the example's length, so
        # the graph would be wrong for any other length; their one-token steps export fine (the
        # predictor may be recurrent)
        raise ValueError("ONNX export of the encoder needs attention mixers: a recurrent encoder's chunked "
                         f"form does not export for variable lengths (encoder mixers: {recognizer.cfg.encoder.mixer})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    batch = torch.export.Dim("batch")
    samples = torch.export.Dim("samples", min=recognizer.cfg.features.n_fft * 2)
    config: dict = {"format": FORMAT, "version": 1, "opset": OPSET, "head": head,
                    "symbols": recognizer.tokenizer.symbols, "blank": BLANK, "files": {"encoder": "encoder.onnx"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        audio = torch.randn(2, 24000, generator=gen) * 0.1
        prog = torch.onnx.export(EncoderGraph(model, head), (audio, torch.tensor([24000, 17000])), dynamo=True,
                                 opset_version=OPSET, input_names=["audio", "audio_lens"],
                                 output_names=["encoded", "encoded_lens"],
                                 dynamic_shapes=({0: batch, 1: samples}, {0: batch}))
        prog.save(out_dir / "encoder.onnx")
        if head == "transducer":
            specs = layer_specs(model)
            past, shapes, b, p = [], [], 2, 3
            past_len = torch.export.Dim("past_len")
            for layer, spec in zip(model.predictor.stack.layers, specs):
                if spec is None:
                    mixer = layer.mixer
                    cache = torch.randn(b, mixer.n_kv_heads, p, mixer.head_dim, generator=gen)
                    past += [cache, cache.clone()]
                    shapes += [{0: batch, 2: past_len}] * 2
                else:  # random, so that no state looks constant to the exporter
                    state = layer.mixer.init_state(b, "cpu", torch.float32)
                    past += [torch.randn(state[n].shape, generator=gen) for n in spec]
                    shapes += [{0: batch}] * len(spec)
            label = torch.randint(4, recognizer.cfg.vocab_size, (b, 1), generator=gen)
            prog = torch.onnx.export(PredictorStepGraph(model), (label, torch.tensor(p), *past), dynamo=True,
                                     opset_version=OPSET, input_names=["label", "offset", *state_names(specs, "past")],
                                     output_names=["prediction", *state_names(specs, "present")],
                                     dynamic_shapes=({0: batch}, None, tuple(shapes)))
            prog.save(out_dir / "predictor.onnx")
            j = recognizer.cfg.joint_dim
            prog = torch.onnx.export(JointGraph(model), (torch.randn(b, j, generator=gen), torch.randn(b, j, generator=gen)),
                                     dynamo=True, opset_version=OPSET, input_names=["encoded", "prediction"],
                                     output_names=["logits"], dynamic_shapes=({0: batch}, {0: batch}))
            prog.save(out_dir / "joint.onnx")
            start_g, start_state = model.start(1)
            config["files"].update(predictor="predictor.onnx", joint="joint.onnx")
            config["predictor_layers"] = [None if spec is None else {n: list(start_state.layers[i][n].shape[1:])
                                                                     for n in spec} for i, spec in enumerate(specs)]
            config["max_labels"] = model.max_labels
    atomic_write_text(out_dir / "config.json", json.dumps(config, indent=2))
    return config


class OnnxTranscriber:
    """Greedy transcription with onnxruntime and numpy only, from an :func:`export_asr` folder."""

    def __init__(self, path: str | Path):
        import onnxruntime as ort

        self.path = Path(path)
        self.config = json.loads((self.path / "config.json").read_text())
        if self.config.get("format") != FORMAT:
            raise ValueError(f"{self.path} does not hold a {FORMAT} export")
        files = self.config["files"]
        self.sessions = {name: ort.InferenceSession(str(self.path / f), providers=["CPUExecutionProvider"])
                         for name, f in files.items()}
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
        past = {}
        for i, layer in enumerate(self.config["predictor_layers"]):
            if layer is None:
                heads, dim = self._cache_shape(i)
                past[f"past.{i}.key"] = past[f"past.{i}.value"] = np.zeros((1, heads, 0, dim), np.float32)
            else:
                past.update({f"past.{i}.state.{n}": np.zeros([1, *shape], np.float32) for n, shape in layer.items()})
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
            for _ in range(5):
                best = int(joint.run(None, {"encoded": frame[None], "prediction": g})[0].argmax())
                if best == BLANK or len(labels) >= self.config["max_labels"]:
                    break
                labels.append(best)
                g = step(best)
        return labels

    def _cache_shape(self, i: int) -> tuple[int, int]:
        shape = next(x.shape for x in self.sessions["predictor"].get_inputs() if x.name == f"past.{i}.key")
        return shape[1], shape[3]


def parity_audio(recognizer: SpeechRecognizer, paths: list[str], n: int) -> list[torch.Tensor]:
    """The given files, else held-out utterances of the bundled corpus when it is built, else noise."""
    rate = recognizer.cfg.features.sample_rate
    if paths:
        return [read_audio(p, rate) for p in paths]
    from apps.speech.data import SpeechDataModule

    corpus = SpeechDataModule(eval_limit=n)
    if corpus.path("test") is not None and corpus.path("test").exists():
        return [read_audio(e.utterance.audio, rate) for e in corpus.examples("test")]
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(int(rate * (1 + i % 3)), generator=gen) * 0.1 for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.speech.export", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--audio", nargs="*", default=[], help="audio for the parity check")
    parser.add_argument("--n-check", type=int, default=8)
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; choose a new --out (nothing is overwritten)")
    recognizer = SpeechRecognizer.from_checkpoint(args.checkpoint)
    recognizer.decoding = "greedy"
    export_asr(recognizer, out)
    audio = parity_audio(recognizer, args.audio, args.n_check)
    ours = recognizer.transcribe(audio)
    onnx = OnnxTranscriber(out)([a.numpy() for a in audio])
    same = sum(a == b for a, b in zip(ours, onnx))
    print(f"exported to {out}; onnxruntime vs PyTorch greedy transcripts: {same}/{len(audio)} identical")
    for text in onnx[:3]:
        print(f"  {text!r}")
    return 0 if same == len(audio) else 1


if __name__ == "__main__":
    sys.exit(main())
