"""Synthetic recall tasks that separate sequence mixers: which ones can *look things up* in context?

    python benchmarks/recall.py --jobs 2               # every registered mixer, all three tasks, recorded
    python benchmarks/recall.py --mixers attention mamba s4d --tasks selective_copy --steps 300

Tasks (each a causal LM problem; loss and accuracy only at the positions that need recall):

* ``mqar`` — multi-query associative recall (Arora et al. 2023, Zoology): ``k1 v1 k2 v2 ... kn vn``
  then the keys again in random order, each followed by its value; predict every value.
  Needs content-based lookup; attention solves it at any size, fixed-state mixers need enough state.
* ``selective_copy`` — selective copying (Gu & Dao 2023, Mamba): a few data tokens scattered among
  blanks, a separator, then the data tokens in order. Needs input-dependent (selective) memory:
  time-invariant convolutions/SSMs such as S4D cannot tell data from blanks by position.
* ``induction`` — induction heads (Olsson et al. 2022; the Mamba paper's version): a trigger token
  at a random position followed by a target, the trigger again at the end; predict the target
  (needs "find the previous occurrence, read its successor" at a position that varies).

Each mixer is trained as a 2-layer causal LM (d_model 64 by default) with AdamW on fresh samples
every step, then scored on 1,024 held-out samples. Chance is 1/n_values for every task.
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
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


def induction(batch: int, length: int = 48, n_values: int = 16, generator=None) -> Batch:
    """Induction heads as in the Mamba paper (Gu & Dao 2023, sec. 4.1.1): random tokens, among
    them a trigger token (id ``n_values``) at a random position followed by a random target; the
    sequence ends with the trigger again, and the model must predict the target. The trigger's
    position varies, so no fixed-lag filter (a convolution, a time-invariant SSM) can read it off:
    it takes "find the previous occurrence, read its successor". Length ``length``."""
    trigger = n_values
    ids = torch.randint(0, n_values, (batch, length), generator=generator)
    pos = torch.randint(0, length - 3, (batch,), generator=generator)  # the pair ends before the last token
    target = ids[torch.arange(batch), pos + 1]
    ids[torch.arange(batch), pos] = trigger
    ids[:, -1] = trigger
    targets = torch.full_like(ids, -100)
    targets[:, -1] = target
    return Batch(ids, targets)


TASKS = {"mqar": (mqar, 32 + 32), "selective_copy": (selective_copy, 8 + 2), "induction": (induction, 16 + 1)}
#: default training steps per task
STEPS = {"mqar": 2000, "selective_copy": 1000, "induction": 1000}
#: learning rates tried per task, best kept: MQAR is learned in a sudden phase transition whose
#: timing is sensitive to the learning rate (Zoology sweeps it too); a single rate is a coin toss
LRS = {"mqar": (1e-3, 3e-3), "selective_copy": (3e-3,), "induction": (3e-3,)}


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


def _run(job: tuple) -> dict:
    """One (mixer, task) training run in a worker process, single-threaded: small models gain
    little from a second thread, and parallel runs would fight over the cores."""
    name, task, kwargs = job
    torch.set_num_threads(1)
    r = train_and_score(name, task, **kwargs)
    print(f"{name:22s} {task:15s} lr {kwargs['lr']:.0e} acc {r['accuracy']:.3f}  loss {r['loss']:.3f}  "
          f"{r['seconds']:.0f}s  {r['params']:,} params", flush=True)
    return r


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mixers", nargs="+", default=None, help="default: every registered mixer")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--steps", type=int, default=None, help=f"default per task: {STEPS}")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=None, help=f"default per task, best of: {LRS}")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel, one process and one thread each")
    p.add_argument("--no-record", action="store_true")
    args = p.parse_args(argv)
    mixers = args.mixers or sorted(MIXERS)
    steps = {t: args.steps or STEPS[t] for t in args.tasks}
    lrs = {t: (args.lr,) if args.lr else LRS[t] for t in args.tasks}
    jobs = [(name, task, dict(steps=steps[task], d_model=args.d_model, batch=args.batch, lr=lr))
            for task in args.tasks for name in mixers for lr in lrs[task]]  # (longest task first)
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_run, jobs))
    acc: dict = {}
    for (name, task, _), r in zip(jobs, results):
        acc[name, task] = max(acc.get((name, task), 0.0), r["accuracy"])
    rows = [[name] + [f"{100 * acc[name, task]:.1f}" for task in args.tasks] for name in mixers]
    table = markdown_table(["mixer"] + [f"{t} acc %" for t in args.tasks], rows)
    chance = "chance: mqar 3.1 %, selective_copy 12.5 %, induction 6.2 %"
    notes = (f"2-layer causal LMs, d_model {args.d_model}, AdamW steps of batch {args.batch} "
             f"({', '.join(f'{t} {n}' for t, n in steps.items())}; fresh samples each step, cosine schedule; "
             f"learning rate {', '.join(f'{t} ' + ' / '.join(map(str, v)) for t, v in lrs.items())}, best kept), "
             f"accuracy on 1,024 held-out samples; {chance}. "
             "MQAR: 8 key-value pairs (32 keys, 32 values), length 32. Selective copy: 6 data tokens "
             "(8 values) among 32 positions, length 39. Induction: one trigger at a random position among "
             "48 random tokens (16 values), predict its successor at the end.")
    if args.no_record:
        print(table + "\n\n" + notes)
    else:
        record("Recall tasks (MQAR, selective copying, induction heads)",
               "python benchmarks/recall.py " + " ".join(argv if argv is not None else sys.argv[1:]), table, notes)


if __name__ == "__main__":
    main()
