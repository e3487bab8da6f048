"""ASR on the bundled espeak-ng corpus: WER/CER of CTC and transducer models with attention, Mamba and GLA encoders,
real-time factor on CPU, and training throughput against HF ``Speech2TextForConditionalGeneration``.

    python benchmarks/speech_asr.py                              # 5 models x 25 min, recorded
    python benchmarks/speech_asr.py --max-time 00:00:05:00 --models transducer-attention --no-record
    python benchmarks/speech_asr.py --throughput-only            # just the HF comparison

For each model: train within ``--max-time`` (the config's schedule), then on the held-out test split
(sentences never heard in training) greedy and beam WER/CER, and the real-time factor of greedy
transcription, one utterance at a time (seconds of compute per second of audio). The throughput row
times one training step (forward + backward) of our transducer and of HF's Speech2Text seq2seq
model of the same width and depth on the same batches, in the same process.
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
    "transducer-attention": ("apps/speech/configs/asr_transducer.yaml", []),
    "transducer-mamba": ("apps/speech/configs/asr_transducer.yaml",
                         ["--model.init_args.arch.encoder.mixer", "mamba", "--model.init_args.arch.encoder.position", "none"]),
    "transducer-gla": ("apps/speech/configs/asr_transducer.yaml",
                       ["--model.init_args.arch.encoder.mixer", "gla", "--model.init_args.arch.encoder.position", "none"]),
    "ctc-attention": ("apps/speech/configs/asr_ctc.yaml", []),
    "ctc-mamba": ("apps/speech/configs/asr_ctc.yaml",
                  ["--model.init_args.arch.encoder.mixer", "mamba", "--model.init_args.arch.encoder.position", "none"]),
}


def train_and_score(name: str, max_time: str, root: str, extra: list[str], resume: str | None = None) -> dict:
    """``resume``: a checkpoint of an earlier run of the same model; training continues from it (weights,
    optimiser, schedule and the clock: ``max_time`` is the total over both runs)."""
    from lightning.pytorch.callbacks import Timer

    from apps.speech.asr.task import SpeechRecognizer
    from apps.speech.train import main as train

    config, overrides = MODELS[name]
    common = ["--config", config, "--trainer.default_root_dir", f"{root}/{name}", *overrides, *extra]
    cli = train(["fit", *common, "--trainer.max_time", max_time, "--trainer.max_epochs", "1000",
                 "--trainer.enable_progress_bar", "false", *(["--ckpt_path", resume] if resume else [])])
    timer = next(c for c in cli.trainer.callbacks if isinstance(c, Timer))
    ckpt = f"{cli.trainer.log_dir}/checkpoints/final.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    out = {"train_min": timer.time_elapsed("train") / 60, "steps": cli.trainer.global_step,
           "params": sum(p.numel() for p in cli.model.parameters())}
    for decoding in ("greedy", "beam"):
        test = train(["test", *common, "--ckpt_path", ckpt, "--trainer.limit_test_batches", "1.0",
                      "--model.init_args.decoding", decoding])
        metrics = {k: float(v) for k, v in test.trainer.callback_metrics.items()}
        out[decoding] = (100 * metrics["test/wer"], 100 * metrics["test/cer"])
    model = SpeechRecognizer.from_checkpoint(ckpt)
    examples = cli.datamodule.examples("test")
    audio_s = compute_s = 0.0
    from apps.speech.audio import read_audio

    for e in examples:
        wave = read_audio(e.utterance.audio)
        t1 = time.perf_counter()
        model.transcribe([wave])
        compute_s += time.perf_counter() - t1
        audio_s += len(wave) / 16000
    out["rtf"] = compute_s / audio_s
    return out


def throughput(batches: int = 6) -> dict[str, tuple[float, int]]:
    """Training frames/s and parameter counts of our transducer (full and pruned lattice) and CTC models and of HF
    Speech2Text (same width and depth: d 256, 8 encoder layers, FFN 1024, GELU), on identical batches."""
    from transformers import Speech2TextConfig, Speech2TextForConditionalGeneration

    from apps.speech.data import SpeechDataModule
    from apps.speech.asr.model import ASRConfig
    from apps.speech.asr.task import SpeechRecognizer
    from core.models import BackboneConfig

    torch.manual_seed(0)
    dm = SpeechDataModule(max_batch=16, batch_seconds=80)
    dm.prepare_data()
    loader = iter(dm.train_dataloader())
    data = [next(loader) for _ in range(batches)]
    layer = dict(d_model=256, n_heads=4, dropout=0.0, d_ff=1024, mlp="gelu")
    ours = {name: SpeechRecognizer(ASRConfig(vocab_size=dm.vocab_size, loss=loss, specaugment=False, prune_range=prune,
                                             encoder=BackboneConfig(n_layers=8, **layer),
                                             predictor=BackboneConfig(n_layers=2, **layer)))
            for name, loss, prune in (("transducer", "transducer", 0), ("pruned", "transducer", 5), ("ctc", "ctc", 0))}
    hf = Speech2TextForConditionalGeneration(Speech2TextConfig(
        vocab_size=dm.vocab_size, d_model=256, encoder_layers=8, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=1024, decoder_ffn_dim=1024, dropout=0.0,
        input_feat_per_channel=80, num_conv_layers=2, conv_channels=256, max_source_positions=3000,
        max_target_positions=1024, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1))
    hf_inputs = []
    with torch.no_grad():
        for b in data:  # HF gets precomputed features (its feature extractor is numpy): our step includes ours
            feats, lens = ours["ctc"].model.features(b["audio"], b["audio_lens"])
            mask = torch.arange(feats.shape[1])[None] < lens[:, None]
            labels = b["targets"].masked_fill(b["targets"] == 0, -100)
            hf_inputs.append(dict(input_features=feats, attention_mask=mask.long(), labels=labels))

    def run_ours(model):
        for b in data:
            model.model(b["audio"], b["audio_lens"], b["targets"], b["target_lens"])["loss"].backward()

    def run_hf():
        for x in hf_inputs:
            hf(**x).loss.backward()

    frames = sum(int(x["attention_mask"].sum()) for x in hf_inputs)
    runs = {**{name: (lambda m=m: run_ours(m)) for name, m in ours.items()}, "hf": run_hf}
    best = {name: float("inf") for name in runs}
    for _ in range(2):  # interleaved, best of two
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    params = {**{k: sum(p.numel() for p in m.parameters()) for k, m in ours.items()},
              "hf": sum(p.numel() for p in hf.parameters())}
    return {name: (frames / best[name], params[name]) for name in runs}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--max-time", default="00:00:25:00", help="training budget per model, DD:HH:MM:SS")
    p.add_argument("--root", default="runs/bench/speech_asr")
    p.add_argument("--throughput-only", action="store_true")
    p.add_argument("--no-record", action="store_true")
    p.add_argument("--resume", metavar="CKPT", help="continue one model's earlier run (--max-time is the total)")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more LightningCLI overrides")
    a = p.parse_args(argv)
    if a.resume and len(a.models) != 1:
        p.error("--resume continues one model's run: name it with --models")
    if a.resume and not os.path.isfile(a.resume):
        p.error(f"{a.resume}: no such checkpoint")
    speed = throughput()
    rows = []
    if not a.throughput_only:
        for name in a.models:
            r = train_and_score(name, a.max_time, a.root, a.extra, a.resume)
            rows.append([name, f"{r['params'] / 1e6:.1f} M", f"{r['train_min']:.0f} min / {r['steps']} steps",
                         f"{r['greedy'][0]:.1f} / {r['greedy'][1]:.1f}", f"{r['beam'][0]:.1f} / {r['beam'][1]:.1f}",
                         f"{r['rtf']:.3f}"])
    table = markdown_table(["model", "params", "training", "greedy WER / CER %", "beam WER / CER %", "RTF"], rows)
    notes = ("Training: minutes of the training loop (the budget; validation excluded), over all resumed runs. "
             "Bundled espeak-ng corpus (2,000 Bible verses, 12 voices; test split held out by text). RTF: greedy "
             "transcription of the test split one utterance at a time, compute seconds per audio second. "
             "Training throughput on identical batches of the corpus (16 utterances, forward + backward, fp32, "
             "d 256, 8 encoder layers, same in HF): "
             + ", ".join(f"{name} {fps:,.0f} frames/s ({n / 1e6:.1f} M params)" for name, (fps, n) in speed.items())
             + f"; ours / HF: transducer {speed['transducer'][0] / speed['hf'][0]:.2f}x, pruned transducer (prune_range 5) "
             f"{speed['pruned'][0] / speed['hf'][0]:.2f}x, CTC {speed['ctc'][0] / speed['hf'][0]:.2f}x (HF is a seq2seq "
             "model with cross-entropy, from precomputed features; ours starts from raw audio).")
    if a.no_record:
        print(table + "\n\n" + notes)
    else:
        record("speech_asr: ASR on the espeak-ng corpus", "python benchmarks/speech_asr.py " + " ".join(argv or sys.argv[1:]),
               table, notes)


if __name__ == "__main__":
    main()
