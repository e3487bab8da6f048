"""Export a trained speech checkpoint (ASR or TTS) to ONNX and check onnxruntime against PyTorch.

    python -m apps.speech.export --checkpoint asr.ckpt --out runs/asr/onnx [--audio a.wav ...]
    python -m apps.speech.export --checkpoint tts.ckpt --out runs/tts/onnx [--text "Some words." ...]

ASR (:mod:`apps.speech.asr.onnx`): encoder, prediction-network step and joint graphs; the check
transcribes the given audio (else held-out utterances of the bundled corpus, else noise) with both
and fails unless every greedy transcript is identical.

TTS (:mod:`apps.speech.tts.onnx`): the acoustic model's step graph (plus the text encoder of the
Transformer-TTS) and the post-net; the check synthesizes the given texts (else held-out sentences,
else random phonemes) with PyTorch, feeds onnxruntime the same frames step by step with the same
pre-net dropout masks, and fails unless every step's frames, stop logit and the post-net output
agree within ``--atol``.

Step graphs name their state as every export does (:mod:`core.export.names`):
``past_key_values.{i}.decoder.*`` / ``past_state.{i}.*`` in, ``present.{i}.decoder.*`` /
``present_state.{i}.*`` out. The folder must be new or empty (an error otherwise: nothing is
overwritten).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from apps.speech.audio import read_audio
from apps.speech.asr.task import SpeechRecognizer
from apps.speech.tts.task import SpeechSynthesizer
from core.errors import entry_point
from core.export import new_output_dir
from core.training import load_checkpoint


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


def parity_phonemes(synth: SpeechSynthesizer, texts: list[str], n: int) -> list[list[int]]:
    """The given texts as phoneme ids, else held-out sentences of the single-voice corpus when it is
    built, else random phoneme ids (no espeak-ng needed)."""
    if texts:
        from apps.speech.phonemes import phonemize

        return [synth.tokenizer.encode(p) for p in phonemize(texts)]
    from apps.speech.data import SynthesisDataModule

    corpus = SynthesisDataModule(voice="en-us", eval_limit=n)
    path = corpus.path("test")
    if path is not None and path.exists():
        corpus.tokenizer = synth.tokenizer
        return [e.ids for e in corpus.examples("test")]
    gen = torch.Generator().manual_seed(0)
    return [torch.randint(4, synth.cfg.vocab_size, (8 + 3 * i,), generator=gen).tolist() for i in range(n)]


def check_asr(recognizer: SpeechRecognizer, out: Path, audio_paths: list[str], n: int) -> bool:
    from apps.speech.asr.onnx import OnnxTranscriber, export_asr

    recognizer.decoding = "greedy"
    export_asr(recognizer, out)
    audio = parity_audio(recognizer, audio_paths, n)
    ours = recognizer.transcribe(audio)
    onnx = OnnxTranscriber(out)([a.numpy() for a in audio])
    same = sum(a == b for a, b in zip(ours, onnx))
    print(f"exported to {out}; onnxruntime vs PyTorch greedy transcripts: {same}/{len(audio)} identical")
    for text in onnx[:3]:
        print(f"  {text!r}")
    return same == len(audio)


def check_tts(synth: SpeechSynthesizer, out: Path, texts: list[str], n: int, atol: float) -> bool:
    """Step by step: onnxruntime reads the frames PyTorch generated (teacher forcing, same pre-net
    masks) and must give the same frames, stop logits and post-net output. Free running, the two
    may drift apart after many steps of feeding back their own float rounding: that is reported,
    not failed."""
    from apps.speech.tts.onnx import OnnxSynthesizer, export_tts

    export_tts(synth, out)
    runner = OnnxSynthesizer(out)
    agree, same_free, worst = 0, 0, 0.0
    items = parity_phonemes(synth, texts, n)
    if runner.config["architecture"] == "fastspeech":  # no loop: one pass each side
        for ids in items:
            ours = synth.model.eval().generate(torch.tensor([ids]), synth.max_steps)
            mel, frames, _ = runner.generate(ids)
            same = mel.shape == tuple(ours.mel.shape)
            diff = max(float(np.abs(a - b.numpy()).max()) for a, b in ((mel, ours.mel), (frames, ours.frames))) \
                if same else float("inf")
            worst, agree = max(worst, diff), agree + (diff <= atol)
            print(f"  {len(ids)} phonemes -> {len(ours.mel)} frames (onnxruntime: {len(mel)}), max |diff| {diff:.2e}")
        print(f"exported to {out}; onnxruntime vs PyTorch, one pass: {agree}/{len(items)} agree "
              f"(max |diff| {worst:.2e} <= {atol:g})")
        return agree == len(items)
    for i, ids in enumerate(items):
        masks = runner.sample_masks(synth.max_steps, seed=i)
        ours = synth.model.eval().generate(torch.tensor([ids]), synth.max_steps, torch.from_numpy(masks))
        mel, frames, stops = runner.generate(ids, masks, teacher=ours.frames.numpy())
        diff = max(float(np.abs(a - b.numpy()).max())
                   for a, b in ((mel, ours.mel), (frames, ours.frames), (stops, ours.stop_logits)))
        worst = max(worst, diff)
        agree += diff <= atol
        free = runner(ids, masks)
        same_free += free.shape == ours.mel.shape and bool(np.abs(free - ours.mel.numpy()).max() <= atol)
        print(f"  {len(ids)} phonemes -> {len(ours.mel)} frames, step-by-step max |diff| {diff:.2e}; "
              f"free-running onnxruntime: {len(free)} frames")
    print(f"exported to {out}; onnxruntime vs PyTorch, step by step: {agree}/{len(items)} agree "
          f"(max |diff| {worst:.2e} <= {atol:g}); free-running: {same_free}/{len(items)} identical")
    return agree == len(items)


@entry_point
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.speech.export", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--audio", nargs="*", default=[], help="ASR: audio for the parity check")
    parser.add_argument("--text", nargs="*", default=[], help="TTS: sentences for the parity check")
    parser.add_argument("--n-check", type=int, default=8)
    parser.add_argument("--atol", type=float, default=1e-3, help="TTS: largest log-mel difference accepted")
    args = parser.parse_args(argv)
    out = new_output_dir(args.out)
    hparams = load_checkpoint(args.checkpoint).get("hyper_parameters", {})  # CheckpointError naming the file
    if "architecture" in hparams:  # a SpeechSynthesizer
        ok = check_tts(SpeechSynthesizer.from_checkpoint(args.checkpoint), out, args.text, args.n_check, args.atol)
    else:
        ok = check_asr(SpeechRecognizer.from_checkpoint(args.checkpoint), out, args.audio, args.n_check)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
