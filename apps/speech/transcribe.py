"""Transcribe audio files with a trained ASR checkpoint.

    python -m apps.speech.transcribe --checkpoint last.ckpt a.wav b.flac           # offline, one line per file
    python -m apps.speech.transcribe --checkpoint last.ckpt --beam 8 a.wav         # beam search
    python -m apps.speech.transcribe --checkpoint last.ckpt --stream a.wav         # chunk by chunk

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
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--beam", type=int, default=0, help="beam width (0: greedy)")
    parser.add_argument("--stream", action="store_true", help="feed the audio chunk by chunk, print partial transcripts")
    parser.add_argument("--chunk-ms", type=float, default=320.0)
    args = parser.parse_args(argv)

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
