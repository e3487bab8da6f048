"""Text to a WAV file with a trained TTS checkpoint (Griffin-Lim vocoder, CPU).

    python -m apps.speech.synthesize "In the beginning was the word." -o out.wav
    python -m apps.speech.synthesize --checkpoint last.ckpt "Some text." -o out.wav \\
        --reference recording.wav --plot spectrogram.png          # + MCD against a recording, and a plot
    python -m apps.speech.synthesize --onnx runs/tts_onnx "Some text." -o out.wav   # onnxruntime, no torch model

Without ``--checkpoint`` the newest ``*.ckpt`` under ``runs/speech/tts*`` is used (and named).

The command has one record, the text, so there is nothing to skip to: a blank text, an existing
``-o`` file, a missing or unusable checkpoint or ``--reference`` recording is an error, one line on
stderr and exit status 2 (``--debug`` shows the traceback). The WAV is written atomically.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from apps.speech.audio import AudioError, audio_info, read_audio, write_wav
from apps.speech.features import FeatureConfig, LogMel
from apps.speech.metrics import mel_cepstral_distortion
from apps.speech.tts.task import SpeechSynthesizer
from apps.speech.plot import plot_spectrograms
from apps.speech.tts.vocoder import GriffinLimVocoder
from core.errors import DataError, UserError, entry_point
from core.tokenizers import load_tokenizer


def newest_checkpoint(root: Path = Path("runs/speech")) -> Path:
    found = sorted(root.glob("tts*/**/*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError(f"no TTS checkpoint under {root}/tts*; train one with "
                        "python -m apps.speech.train fit --config apps/speech/configs/tts_decoder_gla.yaml")
    return found[-1]


def onnx_mel(folder: str, text: str) -> tuple[FeatureConfig, torch.Tensor]:
    """Text -> log-mel with an exported acoustic model (espeak-ng phonemes, the export's vocabulary)."""
    from apps.speech.tts.onnx import OnnxSynthesizer
    from apps.speech.phonemes import phonemize_one

    runner = OnnxSynthesizer(folder)
    tokenizer = load_tokenizer(Path(folder) / runner.config["tokenizer"])
    mel = runner(tokenizer.encode(phonemize_one(text)))
    return FeatureConfig(**runner.config["features"]), torch.from_numpy(mel)


@entry_point
def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m apps.speech.synthesize", description=__doc__.splitlines()[0])
    parser.add_argument("text")
    parser.add_argument("-o", "--out", required=True, help="WAV file to write (refuses to overwrite)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", help="default: the newest runs/speech/tts*/**/*.ckpt")
    source.add_argument("--onnx", help="a folder written by python -m apps.speech.export from a TTS checkpoint")
    parser.add_argument("--reference", help="a recording of the same text: report MCD against it")
    parser.add_argument("--plot", help="PNG of the predicted (and reference) spectrogram")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        raise UserError(f"{out} exists; choose another -o (nothing is overwritten)")
    if not args.text.strip():
        raise DataError("the text is blank: nothing to synthesize")
    if args.reference:
        audio_info(args.reference)  # a missing or unreadable recording fails before the synthesis
    if args.onnx:
        features, mel = onnx_mel(args.onnx, args.text)
    else:
        checkpoint = Path(args.checkpoint) if args.checkpoint else newest_checkpoint()
        print(f"checkpoint: {checkpoint}", file=sys.stderr)
        model = SpeechSynthesizer.from_checkpoint(checkpoint)
        features, mel = model.features, model.synthesize_mel(args.text).cpu()
    audio = GriffinLimVocoder(features)(mel)
    write_wav(out, audio, features.sample_rate)
    result = {"seconds": len(audio) / features.sample_rate, "frames": len(mel)}
    reference = None
    if args.reference:
        with torch.no_grad():
            wave = read_audio(args.reference, features.sample_rate)
            if len(wave) < features.n_fft:
                raise AudioError(f"{args.reference}: {len(wave)} samples, fewer than one spectrogram frame "
                                 f"({features.n_fft})", "too short")
            reference = LogMel(features)(wave[None])[0][0]
        result["mcd"] = mel_cepstral_distortion(mel, reference)
    if args.plot:
        plot_spectrograms(mel, reference, args.plot, title=args.text[:80])
    print(f"wrote {out}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main()
