"""Transcribe audio files with a trained ASR checkpoint.

    python -m apps.speech.transcribe --checkpoint last.ckpt a.wav b.flac           # offline, one line per file
    python -m apps.speech.transcribe --checkpoint last.ckpt --beam 8 a.wav         # beam search
    python -m apps.speech.transcribe --checkpoint last.ckpt --stream a.wav         # chunk by chunk
    python -m apps.speech.transcribe --onnx runs/asr_onnx a.wav                    # onnxruntime (greedy), no torch model

Output lines are ``path<TAB>transcript``, one per file given, in order. With ``--stream`` (models
trained with ``model.streaming: true``) the audio is fed in ``--chunk-ms`` chunks as if it arrived
live; each changed partial transcript goes to stderr, the final one to stdout, equal to offline
greedy decoding.

A file that cannot be transcribed (missing, unreadable, not mono, empty, or shorter than the front
end's receptive field: ``min_audio_samples``, ~92 ms at 16 kHz) gets an EMPTY transcript
(``path<TAB>``) and a ``warning: <file>: <reason>; skipped`` line on stderr; the other files are
transcribed. The exit status is then 1 (``core.errors.EXIT_SKIPPED``); 0 when every file was
transcribed, 2 for an error that stops the command (missing or unusable checkpoint).
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

import torch

from apps.speech.audio import AudioError, read_audio
from apps.speech.features import FeatureConfig, min_audio_samples
from core.data.reports import SkipReport
from core.errors import EXIT_SKIPPED, entry_point


def read_input(path: str, features: FeatureConfig) -> torch.Tensor:
    """``path`` at the model's rate, or :class:`AudioError` for a file the model cannot take."""
    audio = read_audio(path, features.sample_rate)
    need = min_audio_samples(features)
    if len(audio) < need:
        raise AudioError(f"{path}: {len(audio) / features.sample_rate * 1000:.0f} ms of audio, shorter than the "
                         f"{need / features.sample_rate * 1000:.0f} ms the model's front end needs", "too short")
    return audio


def transcribe_each(paths: list[str], features: FeatureConfig, transcribe: Callable[[str, torch.Tensor], str],
                    report: SkipReport) -> list[str]:
    """``transcribe(path, audio)`` of each usable file; a bad one gets "" and a warning, and is counted
    in ``report`` (under its position among the files)."""
    results = []
    for number, path in enumerate(paths, start=1):
        report.total += 1
        try:
            text = transcribe(path, read_input(path, features))
        except AudioError as err:
            print(f"warning: {err}; skipped", file=sys.stderr, flush=True)
            report.skip(err.reason, number)
            text = ""
        print(f"{path}\t{text}", flush=True)
        results.append(text)
    return results


@entry_point
def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(prog="python -m apps.speech.transcribe", description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="+", help="audio files (any rate; mono)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint")
    source.add_argument("--onnx", help="a folder written by python -m apps.speech.export (greedy decoding)")
    parser.add_argument("--beam", type=int, default=0, help="beam width (0: greedy)")
    parser.add_argument("--stream", action="store_true", help="feed the audio chunk by chunk, print partial transcripts")
    parser.add_argument("--chunk-ms", type=float, default=320.0)
    args = parser.parse_args(argv)
    report = SkipReport("transcribe", unit="file")
    if args.onnx:
        if args.beam or args.stream:
            parser.error("--onnx decodes greedily and offline: drop --beam/--stream")
        from apps.speech.asr.onnx import OnnxTranscriber

        runner = OnnxTranscriber(args.onnx)
        # older exports record only the rate: their front end is the default one at that rate
        features = FeatureConfig(**runner.config.get("features", {"sample_rate": runner.config["sample_rate"]}))
        results = transcribe_each(args.audio, features, lambda path, audio: runner([audio.numpy()])[0], report)
    else:
        from apps.speech.asr.task import SpeechRecognizer
        from apps.speech.asr.streaming import StreamingTranscriber

        model = SpeechRecognizer.from_checkpoint(args.checkpoint)
        features = model.cfg.features
        if args.beam:
            model.decoding, model.beam = "beam", args.beam
        step = max(1, int(features.sample_rate * args.chunk_ms / 1000))

        def stream(path: str, audio: torch.Tensor) -> str:
            transcriber, shown, text = StreamingTranscriber(model), "", ""
            for start in range(0, len(audio), step):
                text = transcriber.feed(audio[start:start + step])
                if text != shown:
                    print(f"{path}\t{start / features.sample_rate:6.2f}s\t{text}", file=sys.stderr, flush=True)
                    shown = text
            return text

        offline = lambda path, audio: model.transcribe([audio])[0]  # noqa: E731
        results = transcribe_each(args.audio, features, stream if args.stream else offline, report)
    if report.n_skipped:
        print(f"warning: {report.summary()}", file=sys.stderr)
        raise SystemExit(EXIT_SKIPPED)
    return results


if __name__ == "__main__":
    main()
