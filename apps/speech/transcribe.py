"""Transcribe audio files with a trained ASR checkpoint.

    python -m apps.speech.transcribe --checkpoint last.ckpt a.wav b.flac           # offline, one line per file
    python -m apps.speech.transcribe --checkpoint last.ckpt --beam 8 a.wav         # beam search
    python -m apps.speech.transcribe --checkpoint last.ckpt --stream a.wav         # chunk by chunk
    python -m apps.speech.transcribe --onnx runs/asr_onnx a.wav                    # onnxruntime (greedy), no torch model

Output lines are ``path<TAB>transcript``. With ``--stream`` (models trained with
``model.streaming: true``) the audio is fed in ``--chunk-ms`` chunks as if it arrived live; each
changed partial transcript goes to stderr, the final one to stdout, equal to offline greedy decoding.
"""
from __future__ import annotations

import argparse
import sys

from apps.speech.audio import read_audio
from apps.speech.model import SpeechRecognizer
from apps.speech.streaming import StreamingTranscriber


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
    if args.onnx:
        if args.beam or args.stream:
            parser.error("--onnx decodes greedily and offline: drop --beam/--stream")
        from apps.speech.onnx_asr import OnnxTranscriber

        runner = OnnxTranscriber(args.onnx)
        results = []
        for path in args.audio:
            results += runner([read_audio(path, runner.config["sample_rate"]).numpy()])
            print(f"{path}\t{results[-1]}", flush=True)
        return results

    model = SpeechRecognizer.from_checkpoint(args.checkpoint)
    rate = model.cfg.features.sample_rate
    if args.beam:
        model.decoding, model.beam = "beam", args.beam
    results = []
    for path in args.audio:
        audio = read_audio(path, rate)
        if args.stream:
            stream, shown = StreamingTranscriber(model), ""
            step = max(1, int(rate * args.chunk_ms / 1000))
            for start in range(0, len(audio), step):
                text = stream.feed(audio[start:start + step])
                if text != shown:
                    print(f"{path}\t{start / rate:6.2f}s\t{text}", file=sys.stderr, flush=True)
                    shown = text
        else:
            text = model.transcribe([audio])[0]
        print(f"{path}\t{text}", flush=True)
        results.append(text)
    return results


if __name__ == "__main__":
    main()
