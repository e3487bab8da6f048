"""Our encoder-decoder vs Hugging Face ``MarianMTModel`` of the same architecture and size, same batches,
same process: training tokens/s (forward + backward + AdamW) and greedy decoding tokens/s with a KV cache.

    python benchmarks/transformer_vs_hf.py            # d_model 256, 3+3 layers, vocab 8k (the issue's setting)
    python benchmarks/transformer_vs_hf.py --quick    # a smaller, faster smoke run (not recorded)

Both models: post-LN-free comparison is impossible (Marian is post-norm), so ours is configured to the
same sizes (d_model, layers, heads, FFN width 1024, sinusoidal positions, LayerNorm, biases) and the
parameter counts are printed. Both run fp32 on the same threads; on
CPUs with bf16 hardware (AMX, AVX512-BF16) the run adds bf16 rows for both.

Decoding is timed twice: every row generating the same number of tokens, and rows of different
lengths (what a real batch of sentences looks like; the length of each row is forced identically
in both libraries with a logits processor). seqlab drops finished rows from the batch and the KV
cache; HF keeps computing them until the longest row ends.
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
from core.generation import GenerationConfig, generate  # noqa: E402
from core.models import BackboneConfig, EncoderDecoder, Seq2SeqConfig  # noqa: E402
from core.training import token_loss  # noqa: E402

PAD, BOS, EOS = 0, 1, 2


def make_batches(n: int, batch: int, vocab: int, max_len: int, seed: int = 0):
    """Random token batches with realistic length variation (uniform 40-100% of max_len) and padding."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        src = torch.randint(4, vocab, (batch, max_len), generator=g)
        tgt = torch.randint(4, vocab, (batch, max_len + 1), generator=g)
        for row in range(batch):
            ls = int(torch.randint(int(0.4 * max_len), max_len + 1, (1,), generator=g))
            lt = int(torch.randint(int(0.4 * max_len), max_len + 1, (1,), generator=g))
            src[row, ls - 1], src[row, ls:] = EOS, PAD
            tgt[row, 0], tgt[row, lt], tgt[row, lt + 1:] = BOS, EOS, PAD
        out.append((src, tgt))
    return out


def build_ours(d, layers, heads, ffn, vocab):
    b = BackboneConfig(d_model=d, n_layers=layers, n_heads=heads, d_ff=ffn, mlp="gelu", norm="layernorm",
                       position="sinusoidal", bias=True, dropout=0.1, max_len=512)
    return EncoderDecoder(Seq2SeqConfig(vocab, vocab, b, b, tie_output=True, share_embeddings=True))


def build_hf(d, layers, heads, ffn, vocab):
    from transformers import MarianConfig, MarianMTModel

    cfg = MarianConfig(vocab_size=vocab, d_model=d, encoder_layers=layers, decoder_layers=layers,
                       encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn,
                       decoder_ffn_dim=ffn, dropout=0.1, pad_token_id=PAD, eos_token_id=EOS,
                       decoder_start_token_id=BOS, forced_eos_token_id=None, max_position_embeddings=512,
                       scale_embedding=True, share_encoder_decoder_embeddings=True)
    return MarianMTModel(cfg)


def ours_train_step(model, src, tgt):
    h = model.features(src, tgt[:, :-1])
    return token_loss(h, model.head, tgt[:, 1:], PAD, 0.0)[0]  # plain CE, as HF Marian computes


def hf_train_step(model, src, tgt):
    labels = tgt[:, 1:].masked_fill(tgt[:, 1:] == PAD, -100)
    out = model(input_ids=src, attention_mask=(src != PAD).long(), decoder_input_ids=tgt[:, :-1], labels=labels)
    return out.loss  # HF Marian: plain CE; label smoothing would only add cost


def time_training(step, model, batches, warmup: int = 2) -> float:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tokens, elapsed = 0, 0.0
    for i, (src, tgt) in enumerate(batches):
        t0 = time.perf_counter()
        loss = step(model, src, tgt)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            elapsed += time.perf_counter() - t0
            tokens += int((src != PAD).sum() + (tgt[:, 1:] != PAD).sum())
    return tokens / elapsed


def length_forcer(lengths: torch.Tensor):
    """Row r emits exactly lengths[r] tokens then EOS, identically for both models, so both do the
    same useful work; what differs is what each does with rows that have already finished."""

    def force(step: int, rows: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        end = lengths[rows] == step
        out = scores.clone()
        out[~end, EOS] = float("-inf")
        out[end] = float("-inf")
        out[end, EOS] = 0.0
        return out

    return force


@torch.no_grad()
def time_decoding(model, src, lengths: torch.Tensor, hf: bool, repeats: int = 3, beams: int = 1) -> float:
    """Greedy (or beam) decoding with a KV cache where row r generates lengths[r] tokens ->
    generated tokens/s (of the returned hypotheses: with beams, the search does ``beams`` times the work)."""
    model.eval()
    force = length_forcer(lengths)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        if hf:
            from transformers import LogitsProcessor, LogitsProcessorList

            class Force(LogitsProcessor):
                def __call__(self, input_ids, scores):  # (HF: the beams of one source are consecutive rows)
                    return force(input_ids.shape[1] - 1, torch.arange(scores.shape[0]) // beams, scores)

            out = model.generate(input_ids=src, attention_mask=(src != PAD).long(), max_new_tokens=int(lengths.max()) + 1,
                                 do_sample=False, num_beams=beams, logits_processor=LogitsProcessorList([Force()]))
            assert ((out[:, 1:] != PAD) & (out[:, 1:] != EOS)).sum(1).tolist() == lengths.tolist()
        else:
            cfg = GenerationConfig(strategy="greedy" if beams == 1 else "beam", beam_size=beams,
                                   max_len=int(lengths.max()) + 1, bos_id=BOS, eos_id=EOS)
            hyps = generate(model, model.start(src), cfg, processor=force)
            assert [len(h[0].tokens) for h in hyps] == lengths.tolist()
        best = min(best, time.perf_counter() - t0)
    return int(lengths.sum()) / best


def fast_bf16() -> bool:
    """The CPU multiplies bf16 in hardware (AMX or AVX512-BF16): only then is a bf16 row worth timing."""
    return torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()


def ratio_row(measure: str, ours: float, hf: float) -> list[str]:
    return [measure, f"{ours:,.0f}", f"{hf:,.0f}", f"**{ours / hf:.2f}x**"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args(argv)
    d, layers, heads, ffn, vocab = (256, 3, 4, 1024, 8000) if not a.quick else (64, 1, 2, 128, 1000)
    batch, max_len, steps = (64, 48, 12) if not a.quick else (16, 16, 4)
    torch.manual_seed(0)
    ours, hf = build_ours(d, layers, heads, ffn, vocab), build_hf(d, layers, heads, ffn, vocab)
    n_ours, n_hf = (sum(p.numel() for p in m.parameters() if p.requires_grad) for m in (ours, hf))
    batches = make_batches(steps, batch, vocab, max_len)
    # alternate the two so that drift in machine load hits both
    train_ours, train_hf = [], []
    for _ in range(2):
        train_ours.append(time_training(ours_train_step, ours, batches))
        train_hf.append(time_training(hf_train_step, hf, batches))
    t_ours, t_hf = max(train_ours), max(train_hf)
    src = make_batches(1, 32, vocab, max_len, seed=1)[0][0]
    new = 64 if not a.quick else 16
    fixed = torch.full((32,), new)
    varied = torch.randint(new // 8, new + 1, (32,), generator=torch.Generator().manual_seed(2))
    dec = {name: (time_decoding(ours, src, lens, hf=False), time_decoding(hf, src, lens, hf=True))
           for name, lens in (("fixed", fixed), ("varied", varied))}
    dec["beam"] = (time_decoding(ours, src, fixed, hf=False, beams=5), time_decoding(hf, src, fixed, hf=True, beams=5))
    rows = [
        ["trainable parameters", f"{n_ours / 1e6:.2f} M", f"{n_hf / 1e6:.2f} M", ""],
        ratio_row(f"training tokens/s (batch {batch}, len <= {max_len}, fp32, AdamW)", t_ours, t_hf),
        ratio_row(f"greedy decoding tokens/s, cache, batch 32, every row {new} tokens", *dec["fixed"]),
        ratio_row(f"greedy decoding tokens/s, cache, batch 32, rows {new // 8}-{new} tokens", *dec["varied"]),
        ratio_row(f"beam-5 decoding tokens/s, cache, batch 32, every row {new} tokens", *dec["beam"]),
    ]
    if fast_bf16():  # both libraries in bf16: autocast for training, bf16 weights for decoding
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf_ours = max(time_training(ours_train_step, ours, batches) for _ in range(2))
            bf_hf = max(time_training(hf_train_step, hf, batches) for _ in range(2))
        rows.append(ratio_row(f"training tokens/s (batch {batch}, bf16-mixed autocast, AdamW)", bf_ours, bf_hf))
        ours16, hf16 = ours.to(torch.bfloat16), hf.to(torch.bfloat16)
        rows.append(ratio_row(f"greedy decoding tokens/s, bf16 weights, batch 32, every row {new} tokens",
                              time_decoding(ours16, src, fixed, hf=False), time_decoding(hf16, src, fixed, hf=True)))
    table = markdown_table(["measure", "seqlab", "HF MarianMTModel", "ratio"], rows)
    title = f"transformer_vs_hf: encoder-decoder d_model {d}, {layers}+{layers} layers, vocab {vocab}"
    if a.quick or a.no_record:
        print(table)
    else:
        record(title, "python benchmarks/transformer_vs_hf.py", table,
               "Targets (issue 15): greedy decoding >= 2x HF `generate`; training >= 2x HF where both may use bf16 "
               "(the bf16 rows, on CPUs with bf16 hardware).")


if __name__ == "__main__":
    main()
