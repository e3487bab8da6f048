"""Spanish -> English Bible verses: seqlab's Transformer vs Hugging Face Marian of the same size,
each trained from scratch for the same wall-clock on the same batches and BPE, scored by the same
sacreBLEU code on the held-out verses.

    python benchmarks/bible_es_en.py                                   # 55 min each (the issue's setting)
    python benchmarks/bible_es_en.py --max-time 00:00:02:00 --no-record  # a smoke run

The peer goes through the app's Hugging Face path (``model.hf_model_dir``): a ``MarianMTModel``
built from a config (random weights, nothing downloaded) and saved with a ``PreTrainedTokenizerFast``
that wraps the very BPE seqlab trained, so both models read the same token ids. Marian is
post-norm with sinusoidal positions and a GELU FFN; its FFN width is chosen so the two models have
about the same number of parameters (printed). Both decode with ``bible_es_en.yaml``'s beam search.
Scores: detokenized sacreBLEU BLEU and chrF with their signatures.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import fit_final, markdown_table, record  # noqa: E402

CONFIG = "apps/translation/configs/bible_es_en.yaml"


def fit(root: Path, budget: str, extra: list[str]) -> tuple[str, float, int]:
    """Train within ``budget``; -> (final checkpoint, seconds, optimiser steps)."""
    from apps.translation.train import main as train

    return fit_final(train, ["--config", CONFIG, "--trainer.default_root_dir", str(root), "--trainer.max_time", budget, *extra])


def test(ckpt: str, root: Path, extra: list[str]) -> tuple[float, float, float, str]:
    """-> (BLEU, chrF, seconds, the two sacreBLEU signatures) on the whole test split."""
    from apps.translation.train import main as train

    t0 = time.time()
    cli = train(["test", "--config", CONFIG, "--trainer.default_root_dir", str(root), "--ckpt_path", ckpt,
                 "--trainer.limit_test_batches", "1.0", *extra])
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    signatures = "; ".join(f"{name} {signature}" for name, signature in cli.model.signatures.items())
    return metrics["test/bleu"], metrics["test/chrf"], time.time() - t0, signatures


def marian_like(ckpt: str, out: Path) -> tuple[int, int]:
    """A randomly initialised Marian with seqlab's sizes and tokenizer, saved to ``out``.
    -> (seqlab's parameters, Marian's parameters)."""
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    from apps.translation.task import TranslationModel
    from core.tokenizers.base import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID

    ours = TranslationModel.from_checkpoint(ckpt)
    enc, dec = ours.model.cfg.encoder, ours.model.cfg.decoder
    tok = ours.src_tokenizer
    if tok is not ours.tgt_tokenizer and tok.to_dict() != ours.tgt_tokenizer.to_dict():
        raise SystemExit("bible_es_en.yaml is expected to share one vocabulary between source and target")
    # Marian's FFN has two d x width matrices (SwiGLU three of d_ff): match the parameters, not d_ff
    width = sum(p.numel() for p in ours.model.encoder.stack.layers[0].mlp.parameters()) // (2 * enc.d_model)
    cfg = MarianConfig(vocab_size=tok.vocab_size, d_model=enc.d_model, encoder_layers=enc.n_layers,
                       decoder_layers=dec.n_layers, encoder_attention_heads=enc.n_heads,
                       decoder_attention_heads=dec.n_heads, encoder_ffn_dim=width, decoder_ffn_dim=width,
                       dropout=enc.dropout, max_position_embeddings=max(enc.max_len, dec.max_len),
                       pad_token_id=PAD_ID, eos_token_id=EOS_ID, decoder_start_token_id=BOS_ID,
                       forced_eos_token_id=None, scale_embedding=True, share_encoder_decoder_embeddings=True)
    peer = MarianMTModel(cfg)
    peer.save_pretrained(out)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok._hf, pad_token=SPECIAL_TOKENS[PAD_ID],
                                     bos_token=SPECIAL_TOKENS[BOS_ID], eos_token=SPECIAL_TOKENS[EOS_ID],
                                     unk_token=SPECIAL_TOKENS[UNK_ID])
    hf_tok.save_pretrained(out)
    count = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731 (Marian's sinusoids are frozen)
    return count(ours.model), count(peer)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-time", default="00:00:55:00", help="training budget of EACH model, DD:HH:MM:SS")
    p.add_argument("--root", default="runs/bench/bible_es_en")
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args(argv)
    from apps.translation.corpora import bible_corpus_path, build_bible_corpus

    if not bible_corpus_path().exists():
        build_bible_corpus()
    root = Path(a.root)
    ours_ckpt, ours_s, ours_steps = fit(root / "seqlab", a.max_time, [])
    hf_dir = root / "marian_init"
    n_ours, n_hf = marian_like(ours_ckpt, hf_dir)
    hf_args = ["--model.hf_model_dir", str(hf_dir), "--data.src_tokenizer", f"hf:{hf_dir}",
               "--data.tgt_tokenizer", f"hf:{hf_dir}"]
    hf_ckpt, hf_s, hf_steps = fit(root / "marian", a.max_time, hf_args)
    rows, signatures = [], ""
    for name, ckpt, seconds, steps, n, extra in (("seqlab Transformer (pre-norm, RoPE, SwiGLU)", ours_ckpt, ours_s, ours_steps, n_ours, []),
                                                 ("HF MarianMTModel, same sizes, random init", hf_ckpt, hf_s, hf_steps, n_hf, hf_args)):
        bleu, chrf, test_s, signatures = test(ckpt, root / "test", extra)
        rows.append([name, f"{n / 1e6:.2f} M", f"{bleu:.2f}", f"{chrf:.2f}",
                     f"{seconds / 60:.0f} min ({steps:,} steps) + {test_s:.0f} s test"])
    table = markdown_table(["model", "trainable parameters", "BLEU", "chrF", "time"], rows)
    notes = (f"Held-out verses: the test split of bible.es-en.jsonl (1 % by verse hash), beam search as in "
             f"{CONFIG}. Signatures: {signatures}. "
             "Both models: same corpus, same shared BPE (8k), same token-budget batches, same optimiser and "
             "schedule, same wall-clock.")
    if a.no_record:
        print(table + "\n\n" + notes)
    else:
        record(f"bible_es_en: Spanish->English Bible, {a.max_time} per model", f"python benchmarks/bible_es_en.py --max-time {a.max_time}",
               table, notes)


if __name__ == "__main__":
    main()
