"""Synthetic recall tasks that separate sequence mixers: which ones can *look things up* in context?

    python benchmarks/recall.py                        # every registered mixer, all three tasks, recorded
    python benchmarks/recall.py --mixers attention mamba s4d --tasks selective_copy --steps 300

Tasks (each a causal LM problem; loss and accuracy only at the positions that need recall):

* ``mqar`` — multi-query associative recall (Arora et al. 2023, Zoology): ``k1 v1 k2 v2 ... kn vn``
  then the keys again in random order, each followed by its value; predict every value.
  Needs content-based lookup; attention solves it at any size, fixed-state mixers need enough state.
* ``selective_copy`` — selective copying (Gu & Dao 2023, Mamba): a few data tokens scattered among
  blanks, a separator, then the data tokens in order. Needs input-dependent (selective) memory:
  time-invariant convolutions/SSMs such as S4D cannot tell data from blanks by position.
* ``induction`` — induction heads (Olsson et al. 2022): a random sequence followed by a copy of
  itself; predict the copy (needs "find the previous occurrence, read its successor").

Each mixer is trained as a 2-layer causal LM (d_model 64 by default) with AdamW on fresh samples
every step, then scored on 1,024 held-out samples. Chance is 1/n_values for every task.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import markdown_table, record  # noqa: E402
from core.mixers import MIXERS  # noqa: E402
from core.models import BackboneConfig, DecoderLM, LMConfig  # noqa: E402


@dataclass
class Batch:
    ids: torch.Tensor  # [B, T] inputs
    targets: torch.Tensor  # [B, T] next-token targets, -100 where nothing is asked


# ----------------------------------------------------------------------------- tasks

def mqar(batch: int, n_pairs: int = 8, n_keys: int = 32, n_values: int = 32, generator=None) -> Batch:
    """Tokens 0..n_keys-1 are keys, n_keys.. are values. Length 4 * n_pairs."""
    keys = torch.rand(batch, n_keys, generator=generator).argsort(-1)[:, :n_pairs]  # distinct keys per row
    values = n_keys + torch.randint(0, n_values, (batch, n_pairs), generator=generator)
    order = torch.rand(batch, n_pairs, generator=generator).argsort(-1)
    context = torch.stack([keys, values], -1).reshape(batch, -1)
    queries = torch.stack([keys.gather(1, order), values.gather(1, order)], -1).reshape(batch, -1)
    ids = torch.cat([context, queries], 1)
    targets = torch.full_like(ids, -100)
    q_pos = 2 * n_pairs + 2 * torch.arange(n_pairs)  # positions of the repeated keys
    targets[:, q_pos] = ids[:, q_pos + 1]
    return Batch(ids, targets)


def selective_copy(batch: int, n_data: int = 6, length: int = 32, n_values: int = 8, generator=None) -> Batch:
    """Tokens 0..n_values-1 are data, n_values = blank, n_values + 1 = separator. Length length + 1 + n_data."""
    blank, sep = n_values, n_values + 1
    data = torch.randint(0, n_values, (batch, n_data), generator=generator)
    pos = torch.rand(batch, length, generator=generator).argsort(-1)[:, :n_data].sort(-1).values
    noise = torch.full((batch, length), blank).scatter(1, pos, data)
    ids = torch.cat([noise, torch.full((batch, 1), sep), data], 1)
    targets = torch.full_like(ids, -100)
    targets[:, length:length + n_data] = data  # the separator and each copied token predict the next datum
    return Batch(ids, targets)


def induction(batch: int, length: int = 32, n_values: int = 16, generator=None) -> Batch:
    """A random sequence of ``length // 2`` tokens, then the same sequence again: from the second
    token of the copy on, the next token is predictable only by finding the previous occurrence of
    the current token and reading what followed it (the induction-head circuit)."""
    half = torch.randint(0, n_values, (batch, length // 2), generator=generator)
    ids = torch.cat([half, half], 1)
    targets = torch.full_like(ids, -100)
    targets[:, length // 2:-1] = ids[:, length // 2 + 1:]
    return Batch(ids, targets)


TASKS = {"mqar": (mqar, 32 + 32), "selective_copy": (selective_copy, 8 + 2), "induction": (induction, 16)}


# ----------------------------------------------------------------------------- training

def train_and_score(mixer: str | list[str], task: str, steps: int, d_model: int = 64, n_layers: int = 2,
                    batch: int = 64, lr: float = 3e-3, seed: int = 0, task_kwargs: dict | None = None,
                    eval_samples: int = 1024) -> dict:
    """Train a small causal LM on fresh samples of ``task``; returns accuracy on held-out samples."""
    make, vocab = TASKS[task]
    kwargs = task_kwargs or {}
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cfg = BackboneConfig(d_model=d_model, n_layers=n_layers, n_heads=max(1, d_model // 32), dropout=0.0,
                         mixer=mixer, max_len=512, position="rope")
    model = DecoderLM(LMConfig(vocab, cfg, tie_output=False))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.98))
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        b = make(batch, generator=gen, **kwargs)
        logits = model(b.ids)
        loss = F.cross_entropy(logits.reshape(-1, vocab), b.targets.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    seconds = time.perf_counter() - start
    model.eval()
    eval_gen = torch.Generator().manual_seed(10_000 + seed)  # held out: a different stream
    correct = total = 0
    with torch.no_grad():
        for _ in range(max(1, eval_samples // 256)):
            b = make(256, generator=eval_gen, **kwargs)
            pred = model(b.ids).argmax(-1)
            asked = b.targets != -100
            correct += int((pred[asked] == b.targets[asked]).sum())
            total += int(asked.sum())
    return {"accuracy": correct / total, "loss": loss.item(), "seconds": seconds,
            "params": sum(p.numel() for p in model.parameters())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mixers", nargs="+", default=None, help="default: every registered mixer")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args(argv)
    mixers = args.mixers or sorted(MIXERS)
    rows = []
    for name in mixers:
        row = [name]
        for task in args.tasks:
            r = train_and_score(name, task, args.steps, d_model=args.d_model, batch=args.batch, lr=args.lr)
            print(f"{name:22s} {task:15s} acc {r['accuracy']:.3f}  loss {r['loss']:.3f}  "
                  f"{r['seconds']:.0f}s  {r['params']:,} params", flush=True)
            row.append(f"{100 * r['accuracy']:.1f}")
        rows.append(row)
    table = markdown_table(["mixer"] + [f"{t} acc %" for t in args.tasks], rows)
    chance = "chance: mqar 3.1 %, selective_copy 12.5 %, induction 6.2 %"
    notes = (f"2-layer causal LMs, d_model {args.d_model}, {args.steps} AdamW steps of batch {args.batch} "
             f"(fresh samples each step, lr {args.lr}, cosine), accuracy on 1,024 held-out samples; {chance}. "
             "MQAR: 8 key-value pairs (32 keys, 32 values), length 32. Selective copy: 6 data tokens "
             "(8 values) among 32 positions, length 39. Induction: 16 random tokens (16 values) repeated, length 32.")
    if args.no_record:
        print(table + "\n\n" + notes)
    else:
        record("Recall tasks (MQAR, selective copying, induction heads)",
               "python benchmarks/recall.py " + " ".join(argv if argv is not None else sys.argv[1:]), table, notes)


if __name__ == "__main__":
    main()
