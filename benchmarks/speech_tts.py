"""TTS on the single-voice espeak-ng corpus: mel-cepstral distortion and round-trip intelligibility of
the non-autoregressive FastSpeech 2-style model, the decoder-only GLA model and the Transformer-TTS
baseline.

    python benchmarks/speech_tts.py --asr runs/bench/speech_asr/ctc-attention/.../final.ckpt
    python benchmarks/speech_tts.py --max-time 00:00:02:00 --models decoder-gla --n-test 4 --no-record
    python benchmarks/speech_tts.py --checkpoint decoder-gla=last.ckpt ... --asr A.ckpt   # evaluate only

Each model trains within ``--max-time`` (or reuses ``--checkpoint name=path``), then synthesizes the
first ``--n-test`` sentences of the held-out test split (never heard in training) from their phonemes,
free-running until its stop flag fires (the non-autoregressive model: in one pass, from its predicted
durations; "no stop" then counts utterances cut at the same length cap). Per model:

* MCD: mel-cepstral distortion (dB, c1-c13, DTW-aligned) against espeak-ng's recording of the sentence;
* round-trip WER/CER: an ASR checkpoint (``--asr``, trained on the 12-voice corpus, whose test split
  holds the same sentences) transcribes the Griffin-Lim audio; its WER on the recordings themselves is
  the ceiling printed beside it;
* length ratio (synthesized / recorded frames) and how many utterances never raised the stop flag;
* RTF of the acoustic model (compute seconds per second of audio; Griffin-Lim, 32 iterations, apart);
* a PNG of the first sentence, predicted over recorded spectrogram (``--root``/<model>.png).

A last row scores real espeak-ng speech the same way: the 12-voice corpus's readings of the same
sentences (another voice) against the single-voice recordings, for scale.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import markdown_table, record  # noqa: E402

MODELS = {
    "fastspeech": "apps/speech/configs/tts_fastspeech.yaml",
    "decoder-gla": "apps/speech/configs/tts_decoder_gla.yaml",
    "transformer": "apps/speech/configs/tts_transformer.yaml",
}


def train(name: str, max_time: str, root: str, extra: list[str]) -> tuple[str, dict]:
    from apps.speech.train import main as cli_main

    t0 = time.time()
    cli = cli_main(["fit", "--config", MODELS[name], "--trainer.default_root_dir", f"{root}/{name}",
                    "--trainer.max_time", max_time, "--trainer.max_epochs", "10000",
                    "--trainer.enable_progress_bar", "false", *extra])
    ckpt = f"{cli.trainer.log_dir}/checkpoints/final.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    return ckpt, {"train_min": (time.time() - t0) / 60}


def load_asr(path: str | None):
    """The ASR checkpoint that transcribes everything here (greedy), or None."""
    from apps.speech.asr.task import SpeechRecognizer

    if not path:
        return None
    asr = SpeechRecognizer.from_checkpoint(path).eval()
    asr.decoding = "greedy"
    return asr


def evaluate(name: str, ckpt: str, asr, n_test: int, root: str) -> dict:
    from apps.speech.audio import read_audio
    from apps.speech.data import SynthesisDataModule
    from apps.speech.manifests import normalize_transcript
    from apps.speech.metrics import cer, mel_cepstral_distortion, wer
    from apps.speech.tts.task import SpeechSynthesizer
    from apps.speech.plot import plot_spectrograms
    from apps.speech.tts.vocoder import GriffinLimVocoder

    torch.manual_seed(0)  # the pre-net's dropout stays on at inference
    tts = SpeechSynthesizer.from_checkpoint(ckpt).eval()
    data = SynthesisDataModule(voice="en-us")
    data.tokenizer = tts.tokenizer  # the checkpoint's phoneme vocabulary
    examples = data.examples("test")[:n_test]
    vocoder = GriffinLimVocoder(tts.features)
    rate = tts.features.sample_rate
    out = {"mcd": [], "ratio": [], "no_stop": 0, "acoustic_s": 0.0, "vocoder_s": 0.0, "audio_s": 0.0}
    synthesized, texts = [], []
    for i, e in enumerate(examples):
        wave = read_audio(e.utterance.audio, rate)
        with torch.no_grad():
            ref = tts.logmel(wave[None])[0][0]
            t0 = time.perf_counter()
            mel = tts.model.synthesize(torch.tensor([e.ids]), tts.max_steps)
            t1 = time.perf_counter()
            audio = vocoder(mel)
            out["vocoder_s"] += time.perf_counter() - t1
        out["acoustic_s"] += t1 - t0
        out["audio_s"] += len(audio) / rate
        out["no_stop"] += len(mel) >= tts.max_steps * tts.cfg.reduction
        out["mcd"].append(mel_cepstral_distortion(mel, ref))
        out["ratio"].append(len(mel) / len(ref))
        synthesized.append(audio)
        texts.append(normalize_transcript(e.utterance.text))
        if i == 0:
            plot_spectrograms(mel, ref, f"{root}/{name}.png", title=f"{name}: {e.utterance.text[:70]}")
    out["mcd"] = sum(out["mcd"]) / len(out["mcd"])
    out["ratio"] = sum(out["ratio"]) / len(out["ratio"])
    if asr is not None:
        hyps = asr.transcribe(synthesized)
        out["wer"], out["cer"] = 100 * wer(hyps, texts), 100 * cer(hyps, texts)
        out["example"] = (texts[0], hyps[0])
    return out


def calibration(asr, n_test: int) -> dict:
    """The scores of real espeak-ng speech: the same test sentences as read in the 12-voice ASR
    corpus (another voice, rate and pitch) against the single-voice recordings. An MCD near this
    is "as close as a different speaker"; its WER is the ASR's own test WER on those sentences,
    and the ASR's WER on the single-voice recordings is the best a synthesizer can get."""
    from apps.speech.audio import read_audio
    from apps.speech.data import SpeechDataModule
    from apps.speech.features import LogMel
    from apps.speech.manifests import normalize_transcript
    from apps.speech.metrics import cer, mel_cepstral_distortion, wer

    single = {e.utterance.text: e.utterance.audio for e in SpeechDataModule(voice="en-us").examples("test")[:n_test]}
    pairs = [(single[e.utterance.text], e.utterance.audio, e.utterance.text)
             for e in SpeechDataModule().examples("test") if e.utterance.text in single]
    logmel = LogMel()
    with torch.no_grad():
        mel = lambda path: logmel(read_audio(path)[None])[0][0]  # noqa: E731
        out = {"mcd": sum(mel_cepstral_distortion(mel(b), mel(a)) for a, b, _ in pairs) / len(pairs), "n": len(pairs)}
    if asr is not None:
        texts = [normalize_transcript(t) for _, _, t in pairs]
        single_voice = asr.transcribe([read_audio(a) for a, _, _ in pairs])
        other = asr.transcribe([read_audio(b) for _, b, _ in pairs])
        out["wer"], out["cer"] = 100 * wer(other, texts), 100 * cer(other, texts)
        out["wer_single"], out["cer_single"] = 100 * wer(single_voice, texts), 100 * cer(single_voice, texts)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--max-time", default="00:00:25:00", help="training budget per model, DD:HH:MM:SS")
    p.add_argument("--checkpoint", nargs="*", default=[], help="name=path: evaluate this checkpoint, no training")
    p.add_argument("--asr", help="ASR checkpoint for the round-trip WER")
    p.add_argument("--n-test", type=int, default=40)
    p.add_argument("--root", default="runs/bench/speech_tts")
    p.add_argument("--note", default="", help="appended to the recorded notes (e.g. how given checkpoints were trained)")
    p.add_argument("--no-record", action="store_true")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more LightningCLI overrides")
    a = p.parse_args(argv)
    given = dict(item.split("=", 1) for item in a.checkpoint)
    os.makedirs(a.root, exist_ok=True)
    rows, examples = [], []
    asr = load_asr(a.asr)
    for name in a.models:
        ckpt, run = (given[name], {}) if name in given else train(name, a.max_time, a.root, a.extra)
        r = evaluate(name, ckpt, asr, a.n_test, a.root)
        trip = f"{r['wer']:.1f} / {r['cer']:.1f}" if asr else "-"
        steps = torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]
        training = f"{run['train_min']:.0f} min / {steps} steps" if run else f"{steps} steps (given checkpoint)"
        rows.append([name, training, f"{r['mcd']:.2f}", trip, f"{r['ratio']:.2f}", f"{r['no_stop']}/{a.n_test}",
                     f"{r['acoustic_s'] / r['audio_s']:.3f} + {r['vocoder_s'] / r['audio_s']:.3f}"])
        if "example" in r:
            examples.append(f"{name}: \"{r['example'][0]}\" -> \"{r['example'][1]}\"")
        print(rows[-1], flush=True)
    c = calibration(asr, a.n_test)
    rows.append([f"espeak-ng, 12-voice corpus reading ({c['n']} of the sentences)", "-", f"{c['mcd']:.2f}",
                 f"{c['wer']:.1f} / {c['cer']:.1f} (single voice: {c['wer_single']:.1f} / {c['cer_single']:.1f})"
                 if asr else "-", "-", "-", "-"])
    table = markdown_table(["model", "training", "MCD dB", "round-trip WER / CER %", "length ratio",
                            "no stop", "RTF acoustic + Griffin-Lim"], rows)
    notes = (f"Single-voice espeak-ng corpus (en-us, 2,000 Bible verses, 90/5/5 split by text); the first {a.n_test} "
             "test sentences, synthesized free-running from espeak-ng phonemes. MCD: c1-c13 of the log-mel, DTW. "
             f"Round trip: greedy transcripts of the Griffin-Lim audio by `{a.asr}`; on the last row the same ASR "
             "transcribes espeak-ng's own recordings of those sentences. Length ratio: synthesized / recorded frames. "
             "Plots: " + ", ".join(f"{a.root}/{n}.png" for n in a.models) + ". First sentence: " + "; ".join(examples)
             + (f". {a.note}" if a.note else ""))
    if a.no_record:
        print(table + "\n\n" + notes)
    else:
        record("speech_tts: TTS on the single-voice espeak-ng corpus",
               "python benchmarks/speech_tts.py " + " ".join(argv or sys.argv[1:]), table, notes)


if __name__ == "__main__":
    main()
