"""Cost of a trie constraint in beam search, as generative retrieval (TIGER) decodes semantic IDs.

    python benchmarks/constrained_decoding.py               # beam 20, batch 64, 100k IDs; recorded
    python benchmarks/constrained_decoding.py --no-record

A trie of ``--items`` random three-token semantic IDs (one codebook of 256 codes per position,
so vocab = 3 * 256 + 4 specials), a small decoder-only model (its step is the same in every row),
and beam search over ``--batch`` x ``--beam`` hypotheses for three tokens + EOS. Rows: no
constraint; the batched :class:`core.generation.TokenTrie` (tensor ops over the whole batch x
beam); the same trie as a per-row Python callable (the older ``allowed_tokens(row, prefix)``
form, the peer). Per-step time is the whole search divided by its decoder steps.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import hardware, markdown_table, record  # noqa: E402
from core.generation import GenerationConfig, TokenTrie, beam_search  # noqa: E402
from core.models import BackboneConfig, DecoderLM, LMConfig  # noqa: E402

SPECIALS, CODES, LEVELS = 4, 256, 3


def semantic_ids(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` distinct IDs [n, 3]; position l uses tokens SPECIALS + 256 l + code."""
    g = torch.Generator().manual_seed(seed)
    flat = torch.randperm(CODES**LEVELS, generator=g)[:n]
    codes = torch.stack([(flat // CODES**(LEVELS - 1 - l)) % CODES for l in range(LEVELS)], 1)
    return codes + SPECIALS + CODES * torch.arange(LEVELS)


def python_form(ids: torch.Tensor, eos: int):
    table: dict[tuple, list[int]] = {}
    for seq in ids.tolist():
        for i in range(LEVELS):
            table.setdefault(tuple(seq[:i]), []).append(seq[i])
    table = {k: sorted(set(v)) for k, v in table.items()}
    return lambda row, prefix: table.get(tuple(prefix), [eos])


class Counting:
    """Counts decoder steps around a model (and forwards its BOS/EOS)."""

    def __init__(self, model):
        self.model, self.steps, self.bos_id, self.eos_id = model, 0, model.bos_id, model.eos_id

    def step(self, ids, state):
        self.steps += 1
        return self.model.step(ids, state)


def timed(model, batch: int, cfg: GenerationConfig, allowed, repeats: int) -> tuple[float, list]:
    times, hyps = [], None
    for _ in range(repeats):
        counting = Counting(model)
        state = model.start(batch)
        t0 = time.perf_counter()
        hyps = beam_search(counting, state, cfg, allowed)
        times.append((time.perf_counter() - t0) / counting.steps)
    return statistics.median(times), hyps


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--beam", type=int, default=20)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, both cores)")
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    vocab = SPECIALS + LEVELS * CODES
    model = DecoderLM(LMConfig(vocab, BackboneConfig(d_model=a.d_model, n_layers=2, n_heads=4, dropout=0.0))).eval()
    ids = semantic_ids(a.items)
    t0 = time.perf_counter()
    trie = TokenTrie(ids.tolist())
    build = time.perf_counter() - t0
    cfg = GenerationConfig(strategy="beam", beam_size=a.beam, n_best=a.beam, max_len=LEVELS + 1, length_penalty=0.0)
    print(f"hardware: {hardware()}")
    print(f"trie: {a.items} IDs, {trie.num_states} states, built in {build:.2f} s")
    timed(model, a.batch, cfg, None, 1)  # warm-up (allocator, kernels), not counted
    free, _ = timed(model, a.batch, cfg, None, a.repeats)
    fast, fast_hyps = timed(model, a.batch, cfg, trie, a.repeats)
    slow, slow_hyps = timed(model, a.batch, cfg, python_form(ids, model.eos_id), a.repeats)
    inside = {tuple(s) for s in ids.tolist()}
    assert all(tuple(h.tokens) in inside for row in fast_hyps for h in row), "a hypothesis left the trie"
    same = [[h.tokens for h in r] for r in fast_hyps] == [[h.tokens for h in r] for r in slow_hyps]
    rows = [["unconstrained", f"{free * 1e3:.1f}", "1.00"],
            ["TokenTrie (batched tensor ops)", f"{fast * 1e3:.1f}", f"{fast / free:.2f}"],
            ["per-row Python callable (peer)", f"{slow * 1e3:.1f}", f"{slow / free:.2f}"]]
    table = markdown_table(["beam search", "ms / step", "vs unconstrained"], rows)
    notes = (f"batch {a.batch} x beam {a.beam} = {a.batch * a.beam} hypotheses, vocab {vocab}, DecoderLM d_model "
             f"{a.d_model} x 2 layers; trie of {a.items} random 3-token IDs ({trie.num_states} states, built in "
             f"{build:.2f} s); trie vs callable: {'identical' if same else 'DIFFERENT'} n-best lists; "
             f"trie speed-up over the callable: {slow / fast:.1f}x")
    if a.no_record:
        print(table + "\n\n" + notes)
    else:
        record("Constrained beam search (token trie, TIGER-style semantic IDs)",
               "python benchmarks/constrained_decoding.py", table, notes)


if __name__ == "__main__":
    main()
