"""ONNX export of a TTS acoustic model as step graphs, and a runner that synthesizes with onnxruntime.

Synthesis is a loop (one decoder step per ``reduction`` frames until the stop flag fires), so the
export is the loop's body, as for the ASR prediction network, plus what runs once around it:

``step.onnx``      one decoder step.
    decoder-only:  phoneme [batch, 1] int64, last_frames [batch, 1, r * n_mels] (the previous step's output),
                   prenet_mask [batch, 2, prenet_dim], audio [batch] bool (False: read ``phoneme``, True:
                   read ``last_frames``), offset [] int64, the decoder state
                   (``past_key_values.{i}.decoder.*`` / ``past_state.{i}.*``: :mod:`core.export.names`)
                   -> frames [batch, r, n_mels] (before the post-net), stop [batch] (logit),
                   ``present.{i}.decoder.*`` / ``present_state.{i}.*``. The text is read through the
                   same step, one phoneme at a time: a recurrent mixer's step form is the one that
                   exports for any length.
    transformer:   last_frames, prenet_mask, offset, memory_mask [batch, n], the decoder state,
                   ``past_key_values.{i}.encoder.{key,value}`` -> frames, stop, the new state
``encoder.onnx``   (transformer) phonemes [batch, n] int64, phoneme_lens [batch] int64
                   -> memory_mask, ``present.{i}.encoder.{key,value}`` (cross-attention inputs of every
                   decoder layer; the step reads them as ``past_key_values.{i}.encoder.*``)
``postnet.onnx``   frames [batch, T, n_mels] -> mel [batch, T, n_mels]

The non-autoregressive model (``architecture: fastspeech``) has no loop, so two graphs around the
length regulator's one data-dependent size, the number of frames:

``encoder.onnx``   phonemes [batch, n] int64, phoneme_lens [batch] int64, pace [] float
                   -> states [batch, n, d] (with the predicted pitch and energy), durations [batch, n] int64
``decoder.onnx``   states, durations, frame_positions [T] int64 (0 .. T-1; only its length is read)
                   -> mel [batch, T, n_mels], frames [batch, T, n_mels] (before the post-net)

``prenet_mask`` is the pre-net's dropout (it stays on at inference, as in Tacotron 2), made an input
so that the graphs are deterministic: the runner draws it from a seeded numpy generator, and the
parity check in ``python -m apps.speech.export`` hands PyTorch the same masks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from apps.speech.tts.fastspeech import FastSpeech
from apps.speech.tts.task import SpeechSynthesizer
from apps.speech.tts.model import DecoderTTS, TransformerTTS
from core.export import (
    CONFIG_FILE, DEFAULT_OPSET, StepSession, cross_names, empty_past, exporting, example_states, export_graph,
    flatten_states, layer_states, open_export, past_name, present_length_axes, scanned_mixers, stack_layer_states,
    state_io_names, unflatten_states, write_config,
)
from core.io import atomic_write_text
from core.models.state import DecoderState

FORMAT = "seqlab.onnx_tts"
#: 2: state names of core.export.names
VERSION = 2


class _StepGraph(nn.Module):
    """Flat-tensor front end of one decoder step: the state in and out as :mod:`core.export.states` lays it out."""

    def __init__(self, model: DecoderTTS | TransformerTTS):
        super().__init__()
        self.model, self.layers = model, stack_layer_states(model.decoder.stack)

    def step(self, x, memory, offset, past):
        m = self.model
        h, state = m.decoder(x, state=DecoderState(unflatten_states(self.layers, past), memory, offset))
        pre, stop = m.heads.outputs(h, m.cfg.n_mels)
        return (pre, stop[:, 0], *flatten_states(self.layers, state.layers))


class DecoderStepGraph(_StepGraph):
    def forward(self, phoneme, frames, prenet_mask, audio, offset, *past):
        m = self.model
        text = m.embed(phoneme) + m.segment.weight[0]
        sound = m.heads.prenet(frames, prenet_mask[:, None]) + m.segment.weight[1]
        return self.step(torch.where(audio[:, None, None], sound, text), None, offset, past)


class TransformerStepGraph(_StepGraph):
    def forward(self, frames, prenet_mask, offset, memory_mask, *past_and_memory):
        n = len(state_io_names(self.layers, "past"))
        past, kv = past_and_memory[:n], past_and_memory[n:]
        memory = [{"key": k, "value": v, "mask": memory_mask} for k, v in zip(kv[0::2], kv[1::2])]
        return self.step(self.model.heads.prenet(frames, prenet_mask[:, None]), memory, offset, past)


class TransformerEncoderGraph(nn.Module):
    def __init__(self, model: TransformerTTS):
        super().__init__()
        self.model = model

    def forward(self, phonemes, phoneme_lens):
        memory, mask = self.model.encode(phonemes, phoneme_lens)
        return (mask, *(t for m in memory for t in (m["key"], m["value"])))


class PostNetGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.postnet = model.heads.postnet

    def forward(self, frames):
        return self.postnet(frames)


class FastSpeechEncoderGraph(nn.Module):
    def __init__(self, model: FastSpeech):
        super().__init__()
        self.model = model

    def forward(self, phonemes, phoneme_lens, pace):
        return self.model.plan(phonemes, phoneme_lens, pace)


class FastSpeechDecoderGraph(nn.Module):
    def __init__(self, model: FastSpeech):
        super().__init__()
        self.model = model

    def forward(self, states, durations, frame_positions):
        pre, post, _ = self.model.decode(states, durations, frame_positions.shape[0])
        return post, pre


def export_fastspeech(model: FastSpeech, out_dir: Path) -> dict[str, str]:
    cfg, gen = model.cfg, torch.Generator().manual_seed(0)
    batch, text_len, time = torch.export.Dim("batch"), torch.export.Dim("text_len", min=2), torch.export.Dim("time", min=2)
    phonemes = torch.randint(4, cfg.vocab_size, (2, 5), generator=gen)
    lens = torch.tensor([5, 3])
    # recurrent mixers as ONNX Scans over their step: any text or frame length (their chunked forms
    # unroll into graphs fixed to the example's length, or worse, to its chunk count)
    with exporting(model), scanned_mixers(model.encoder.stack), scanned_mixers(model.decoder.stack):
        export_graph(FastSpeechEncoderGraph(model), (phonemes, lens, torch.tensor(1.0)), out_dir / "encoder.onnx",
                     ["phonemes", "phoneme_lens", "pace"], ["states", "durations"],
                     ({0: batch, 1: text_len}, {0: batch}, None))
        states, durations = model.plan(phonemes, lens)
        positions = torch.arange(int(durations.sum(1).max()))
        export_graph(FastSpeechDecoderGraph(model), (states, durations, positions), out_dir / "decoder.onnx",
                     ["states", "durations", "frame_positions"], ["mel", "frames"],
                     ({0: batch, 1: text_len}, {0: batch, 1: text_len}, {0: time}))
    return {"encoder": "encoder.onnx", "decoder": "decoder.onnx"}


def memory_names(n_layers: int, side: str = "past") -> list[str]:
    """Cross-attention keys/values: ``present.{i}.encoder.*`` out of the encoder, ``past_key_values.{i}.encoder.*``
    into the step."""
    return [n for i in range(n_layers) for n in cross_names(i, side)]


def export_tts(synth: SpeechSynthesizer, out_dir: str | Path) -> dict:
    """Write the graphs, ``tokenizer.json`` and ``config.json`` into ``out_dir``; returns the config."""
    model, cfg = synth.model.eval(), synth.cfg
    transformer = isinstance(model, TransformerTTS)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(model, FastSpeech):
        config = {"format": FORMAT, "version": VERSION, "opset": DEFAULT_OPSET,
                  "files": export_fastspeech(model, out_dir), "architecture": "fastspeech", "n_mels": cfg.n_mels,
                  "max_frames": synth.max_steps * cfg.reduction, "features": synth.hparams["features"],
                  "tokenizer": "tokenizer.json"}
        atomic_write_text(out_dir / "tokenizer.json", synth.tokenizers_json["phonemes"])
        write_config(out_dir / CONFIG_FILE, config)
        return config
    layers = stack_layer_states(model.decoder.stack)
    gen = torch.Generator().manual_seed(0)
    batch, past_len = torch.export.Dim("batch"), torch.export.Dim("past_len")
    b, p, n = 2, 3, 5
    frames = torch.randn(b, 1, cfg.reduction * cfg.n_mels, generator=gen)
    mask = model.heads.prenet.sample_masks(b, gen)
    past, past_shapes = example_states(layers, b, p, gen, batch, past_len)
    step_out = ["frames", "stop", *state_io_names(layers, "present")]
    axes = present_length_axes(layers)
    with exporting(model):
        if transformer:
            text_len = torch.export.Dim("text_len", min=2)
            phonemes = torch.randint(4, cfg.vocab_size, (b, n), generator=gen)
            lens = torch.tensor([n, n - 2])
            n_layers = len(model.decoder.stack.layers)
            export_graph(TransformerEncoderGraph(model), (phonemes, lens), out_dir / "encoder.onnx",
                         ["phonemes", "phoneme_lens"], ["memory_mask", *memory_names(n_layers, "present")],
                         ({0: batch, 1: text_len}, {0: batch}))
            encoded = TransformerEncoderGraph(model)(phonemes, lens)
            names = memory_names(n_layers)
            export_graph(
                TransformerStepGraph(model), (frames, mask, torch.tensor(p), *encoded[:1], *past, *encoded[1:]),
                out_dir / "step.onnx",
                ["last_frames", "prenet_mask", "offset", "memory_mask", *state_io_names(layers, "past"), *names],
                step_out, ({0: batch}, {0: batch}, None, {0: batch, 1: text_len},
                           (*past_shapes, *[{0: batch, 2: text_len}] * len(names))), length_axes=axes)
        else:
            phoneme = torch.randint(4, cfg.vocab_size, (b, 1), generator=gen)
            audio = torch.tensor([True, False])
            export_graph(
                DecoderStepGraph(model), (phoneme, frames, mask, audio, torch.tensor(p), *past), out_dir / "step.onnx",
                ["phoneme", "last_frames", "prenet_mask", "audio", "offset", *state_io_names(layers, "past")],
                step_out, ({0: batch}, {0: batch}, {0: batch}, {0: batch}, None, tuple(past_shapes)),
                length_axes=axes)
        export_graph(PostNetGraph(model), (torch.randn(b, 7, cfg.n_mels, generator=gen),), out_dir / "postnet.onnx",
                     ["frames"], ["mel"], ({0: batch, 1: torch.export.Dim("time", min=2)},))
    atomic_write_text(out_dir / "tokenizer.json", synth.tokenizers_json["phonemes"])
    files = {"step": "step.onnx", "postnet": "postnet.onnx", **({"encoder": "encoder.onnx"} if transformer else {})}
    config = {"format": FORMAT, "version": VERSION, "opset": DEFAULT_OPSET, "files": files,
              "architecture": "transformer" if transformer else "decoder", "n_mels": cfg.n_mels,
              "reduction": cfg.reduction, "prenet_dim": cfg.prenet_dim, "prenet_dropout": cfg.prenet_dropout,
              "max_steps": synth.max_steps, "layer_states": [layer.to_json() for layer in layers],
              "features": synth.hparams["features"], "tokenizer": "tokenizer.json"}
    write_config(out_dir / CONFIG_FILE, config)
    return config


class OnnxSynthesizer:
    """Phoneme ids -> log-mel frames with onnxruntime and numpy only, from an :func:`export_tts` folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config, self.sessions = open_export(path, FORMAT, version=VERSION)

    def sample_masks(self, steps: int, seed: int = 0) -> np.ndarray:
        """Pre-net dropout masks [steps, 2, prenet_dim], as :meth:`PreNet.sample_masks` makes them."""
        p = self.config["prenet_dropout"]
        keep = np.random.default_rng(seed).random((steps, 2, self.config["prenet_dim"])) >= p
        return (keep / (1 - p)).astype(np.float32)

    def __call__(self, phonemes: list[int], prenet_masks: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
        """One utterance's phoneme ids -> log-mel [T, n_mels] (after the post-net)."""
        return self.generate(phonemes, prenet_masks, seed)[0]

    def generate(self, phonemes: list[int], prenet_masks: np.ndarray | None = None, seed: int = 0,
                 teacher: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> (log-mel after the post-net [T, M], frames before it [T, M], stop logits [T / r]).
        ``prenet_masks`` [steps, 2, prenet_dim] holds one mask per step, so it also caps the steps
        (as ``max_steps`` does). With ``teacher`` frames [T, M] every step reads the teacher's previous frames instead of its
        own, for ``T / r`` steps: the parity check compares the graphs step by step with PyTorch,
        where a free-running comparison would also measure how fast the feedback loop amplifies
        float rounding."""
        cfg = self.config
        if cfg["architecture"] == "fastspeech":
            mel, frames = self.one_pass(phonemes)
            return mel, frames, np.zeros(0, np.float32)
        masks = self.sample_masks(cfg["max_steps"], seed) if prenet_masks is None else prenet_masks
        step = StepSession(self.sessions["step"])
        past = empty_past(layer_states(cfg))
        offset = 0
        fixed: dict[str, np.ndarray] = {}
        width = cfg["reduction"] * cfg["n_mels"]
        no_frames = np.zeros((1, 1, width), np.float32)

        def run(**inputs):
            nonlocal past, offset
            out, past = step.run({**inputs, **fixed, "offset": np.array(offset, np.int64)}, past)
            offset += 1
            return out["frames"], out["stop"]

        ids = np.array([phonemes], np.int64)
        if cfg["architecture"] == "transformer":
            encoded = self.sessions["encoder"].run(None, {"phonemes": ids, "phoneme_lens": np.array([ids.shape[1]])})
            enc_names = [o.name for o in self.sessions["encoder"].get_outputs()]
            # memory_mask as is; present.{i}.encoder.* feed the step's past_key_values.{i}.encoder.*
            fixed = {name if name == "memory_mask" else past_name(name): v for name, v in zip(enc_names, encoded)}
        else:  # read the text through the step, one phoneme at a time
            ones = np.ones((1, 2, cfg["prenet_dim"]), np.float32)
            for k in range(ids.shape[1]):
                run(phoneme=ids[:, k:k + 1], last_frames=no_frames, prenet_mask=ones, audio=np.array([False]))
            fixed = {"phoneme": np.zeros((1, 1), np.int64), "audio": np.array([True])}
        # given masks bound the steps (one mask per step), as do teacher frames
        steps = min(cfg["max_steps"], len(masks)) if teacher is None else len(teacher) // cfg["reduction"]
        forced = None if teacher is None else teacher.reshape(steps, 1, 1, width)
        frames, stops, step_in = [], [], no_frames
        for i in range(steps):
            pre, stop = run(last_frames=step_in, prenet_mask=masks[i][None])
            frames.append(pre[0])
            stops.append(stop[0])
            if teacher is None and stop[0] > 0:  # sigmoid(stop) > 0.5
                break
            step_in = pre.reshape(1, 1, -1) if teacher is None else forced[i]
        frames = np.concatenate(frames)
        return self.sessions["postnet"].run(None, {"frames": frames[None]})[0][0], frames, np.array(stops)

    def one_pass(self, phonemes: list[int], pace: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """The non-autoregressive model: (log-mel [T, M], before the post-net [T, M])."""
        ids = np.array([phonemes], np.int64)
        states, durations = self.sessions["encoder"].run(None, {
            "phonemes": ids, "phoneme_lens": np.array([ids.shape[1]], np.int64), "pace": np.array(pace, np.float32)})
        ends = np.minimum(durations.cumsum(1), self.config["max_frames"])  # as FastSpeech.predict's cap
        durations = np.diff(ends, axis=1, prepend=0)
        positions = np.arange(int(durations.sum()), dtype=np.int64)
        mel, frames = self.sessions["decoder"].run(None, {"states": states, "durations": durations,
                                                          "frame_positions": positions})
        return mel[0], frames[0]
