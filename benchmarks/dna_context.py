"""DNA language modelling vs context length: attention, Hyena, Mamba and Mamba-2 at equal size.

    python benchmarks/dna_context.py [--contexts 1024 4096 16384 32768] [--budget-s 150]
    python benchmarks/dna_context.py --quick     # a smoke run (not recorded)

The HyenaDNA claim under test: a longer context lowers held-out perplexity, and attention runs out
of time or memory first. On the bundled *C. diphtheriae* genome (training region: the first 85 %):

* **Quality.** For each context, the four core LMs (d 128, 4 blocks, ~1.05 M parameters: the
  attention and Hyena blocks get a wider MLP to match Mamba's size) train on the same batches in
  turn, each for ``--budget-s`` seconds of compute (AdamW, lr 2e-3, 20-step warm-up, clipping 1.0),
  batches of ``max(16,384, context)`` bases from random windows of either strand. Then each scores
  the same first ``--eval-bases`` of the held-out test region (windows of the context length, every
  base once): bits per nucleotide. Equal wall-clock, not equal steps: a slower mixer sees fewer
  bases, which is the cost a user pays.
* **Cost.** Median training step time and bases/s over the run, and the peak memory of one
  training step (resident-set growth of a fresh process over its model and batch, so the figures
  do not mix).
* **Peers.** Training bases/s of equal-size HF transformers ``MambaForCausalLM`` (9 layers) and
  ``GPT2LMHeadModel`` (4 layers), built from configs, against core Mamba and attention, on the same
  batches of ``--peer-tokens`` bases, at each context up to ``--peer-max`` (HF's Mamba runs its
  sequential-scan path on CPU, hence the smaller batches).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import hardware, markdown_table, record  # noqa: E402
from apps.genomics.dna.data import IGNORE, TiledWindows, TrainWindows, collate  # noqa: E402
from apps.genomics.genome import Segment, load_genome  # noqa: E402
from apps.genomics.nucleotides import complement_table, dna_tokenizer  # noqa: E402
from core.models import BackboneConfig, DecoderLM, LMConfig  # noqa: E402
from core.training import token_loss  # noqa: E402

MIXERS = ("attention", "hyena", "mamba", "mamba2")
#: MLP widths that bring every model to about Mamba's 1.06 M parameters
D_FF = {"attention": 512, "hyena": 448}
D_MODEL, LAYERS = 128, 4


def build(mixer: str, vocab: int, context: int) -> DecoderLM:
    cfg = BackboneConfig(d_model=D_MODEL, n_layers=LAYERS, n_heads=4, dropout=0.0, max_len=context, mixer=mixer,
                         d_ff=D_FF.get(mixer), position="rope" if mixer == "attention" else "none")
    return DecoderLM(LMConfig(vocab_size=vocab, decoder=cfg))


def lm_loss(model: DecoderLM, batch) -> tuple[torch.Tensor, torch.Tensor]:
    hidden = model.decoder(model.embed(batch["ids"][:, :-1]))[0]
    loss, nll, _ = token_loss(hidden, model.head, batch["targets"][:, 1:], IGNORE)
    return loss, nll


@dataclass
class Run:
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    steps: int = 0
    seconds: float = 0.0
    bases: int = 0
    times: list | None = None


def windows(segments, context: int, tokens: int, seed: int):
    """Batches of ``max(tokens, context)`` bases: (context + 1)-base windows, random strand."""
    torch.manual_seed(seed)
    per_batch = max(1, tokens // context)
    data = TrainWindows(segments, context + 1, 10**9, complement_table(dna_tokenizer()))
    while True:
        yield collate([data[0] for _ in range(per_batch)])


def held_out(segments, bases: int) -> list[Segment]:
    out, left = [], bases
    for s in segments:
        if left <= 0:
            break
        out.append(Segment(s.record, s.tokens[:left], None))
        left -= len(out[-1])
    return out


@torch.no_grad()
def bits_per_nt(model, segments, context: int, batch_tokens: int) -> float:
    model.eval()
    tiles = TiledWindows(segments, context + 1, 1)
    per_batch = max(1, batch_tokens // context)
    total, count = 0.0, 0
    for i in range(0, len(tiles), per_batch):
        batch = collate([tiles[j] for j in range(i, min(i + per_batch, len(tiles)))])
        _, nll = lm_loss(model, batch)
        n = int((batch["targets"][:, 1:] != IGNORE).sum())
        total, count = total + float(nll) * n, count + n
    model.train()
    return total / count / math.log(2)


def train_context(context: int, splits, budget: float, eval_bases: int, tokens: int, seed: int) -> list[dict]:
    vocab = dna_tokenizer().vocab_size
    runs = {}
    for mixer in MIXERS:
        torch.manual_seed(seed)
        model = build(mixer, vocab, context)
        runs[mixer] = Run(model, torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.1), times=[])
    batches = windows(splits["train"], context, tokens, seed)
    active = set(MIXERS)
    while active:  # the models take each batch in turn until each has spent its budget
        batch = next(batches)
        for mixer in MIXERS:
            run = runs[mixer]
            if mixer not in active:
                continue
            for group in run.opt.param_groups:
                group["lr"] = 2e-3 * min(1.0, (run.steps + 1) / 20)
            t = time.perf_counter()
            loss, _ = lm_loss(run.model, batch)
            run.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
            run.opt.step()
            dt = time.perf_counter() - t
            run.steps, run.seconds, run.bases = run.steps + 1, run.seconds + dt, run.bases + batch["ids"][:, 1:].numel()
            run.times.append(dt)
            if run.seconds >= budget:
                active.discard(mixer)
        rounds = max(r.steps for r in runs.values())
        if rounds % 25 == 0:
            print(f"  context {context}: " + ", ".join(f"{m} {runs[m].steps} steps {runs[m].seconds:.0f} s"
                                                    for m in MIXERS), flush=True)
    test = held_out(splits["test"], eval_bases)
    rows = []
    for mixer in MIXERS:
        run = runs[mixer]
        bits = bits_per_nt(run.model, test, context, tokens)
        rows.append({"mixer": mixer, "context": context, "params": sum(p.numel() for p in run.model.parameters()),
                     "steps": run.steps, "bases": run.bases, "bits": bits,
                     "step_s": statistics.median(run.times), "bases_per_s": run.bases / run.seconds})
        print(f"context {context} {mixer}: {run.steps} steps, {run.bases:,} bases, held-out {bits:.4f} bits/nt",
              flush=True)
    return rows


# ---------------------------------------------------------------------- peak memory, one process per model

def memory_probe(mixer: str, context: int, tokens: int) -> float:
    """Peak resident-set growth (MiB) of one training step in a fresh process."""
    code = (f"import sys; sys.path.insert(0, {repr(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}); "
            f"from benchmarks.dna_context import _probe; _probe({mixer!r}, {context}, {tokens})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        return float("nan")
    return json.loads(out.stdout.strip().splitlines()[-1])["mib"]


def _probe(mixer: str, context: int, tokens: int) -> None:
    model = build(mixer, dna_tokenizer().vocab_size, context)
    per_batch = max(1, tokens // context)
    ids = torch.randint(3, 8, (per_batch, context + 1))
    batch = {"ids": ids, "targets": ids.clone()}
    opt = torch.optim.AdamW(model.parameters())
    loss, _ = lm_loss(model, batch)  # (a first step allocates the optimizer state)
    loss.backward()
    opt.step()
    base = _rss_kib()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark (VmHWM) to the current size
    for _ in range(2):
        loss, _ = lm_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    peak = _rss_kib("VmHWM")
    print(json.dumps({"mib": (peak - base) / 1024}))


def _rss_kib(field: str = "VmRSS") -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


# ---------------------------------------------------------------------- HF peers, training throughput

def hf_models(vocab: int, context: int):
    from transformers import GPT2Config, GPT2LMHeadModel, MambaConfig, MambaForCausalLM

    mamba = MambaForCausalLM(MambaConfig(vocab_size=vocab, hidden_size=D_MODEL, num_hidden_layers=9, state_size=16,
                                         expand=2, conv_kernel=4, pad_token_id=0, bos_token_id=1, eos_token_id=2))
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=D_MODEL, n_layer=LAYERS, n_head=4, n_positions=context,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=2))
    return {"HF MambaForCausalLM": mamba, "HF GPT2LMHeadModel": gpt2}


def throughput(context: int, splits, tokens: int, steps: int, seed: int) -> list[dict]:
    vocab = dna_tokenizer().vocab_size
    models = {"core mamba": build("mamba", vocab, context), "core attention": build("attention", vocab, context),
              **hf_models(vocab, context)}
    batches = windows(splits["train"], context, tokens, seed + 1)
    times = {name: [] for name in models}
    opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-3) for name, m in models.items()}
    for k in range(steps + 1):  # the first step of each is warm-up
        batch = next(batches)
        for name, model in models.items():
            t = time.perf_counter()
            if name.startswith("HF"):
                loss = model(input_ids=batch["ids"][:, :-1], labels=batch["ids"][:, :-1]).loss
            else:
                loss, _ = lm_loss(model, batch)
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            opts[name].step()
            if k:
                times[name].append(time.perf_counter() - t)
    bases = batch["ids"][:, 1:].numel()
    rows = [{"model": name, "context": context, "params": sum(p.numel() for p in models[name].parameters()),
             "bases_per_s": bases / statistics.median(t)} for name, t in times.items()]
    for r in rows:
        print(f"context {context} {r['model']}: {r['bases_per_s']:,.0f} bases/s", flush=True)
    return rows


def plot(rows: list[dict], path: str, ceiling: float = 2.3) -> None:
    """Two panels: quality and speed. Runs that barely trained sit far above the rest, so the quality
    axis stops at `ceiling` and marks those points at the top edge with their value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (quality, speed) = plt.subplots(1, 2, figsize=(10, 4))
    off_scale: dict[int, int] = {}
    for mixer in MIXERS:
        mine = sorted((r for r in rows if r["mixer"] == mixer), key=lambda r: r["context"])
        x = [r["context"] for r in mine]
        line, = quality.plot(x, [min(r["bits"], ceiling) for r in mine], marker="o", label=mixer)
        for r in mine:
            if r["bits"] > ceiling:
                k = off_scale[r["context"]] = off_scale.get(r["context"], 0) + 1
                quality.annotate(f"{r['bits']:.1f}", (r["context"], ceiling), textcoords="offset points",
                                 xytext=(-8, -4 - 11 * k), color=line.get_color(), fontsize=8, ha="right")
        speed.plot(x, [r["bases_per_s"] for r in mine], marker="o", label=mixer)
    for ax in (quality, speed):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context (bases)")
        ax.grid(alpha=0.3)
    quality.set_ylabel("held-out bits per nucleotide (2.0 = uniform)")
    quality.set_title("quality after equal wall-clock")
    quality.axhline(2.0, color="grey", lw=0.8, ls="--")
    speed.set_yscale("log")
    speed.set_ylabel("training bases / s")
    speed.set_title("training speed (CPU)")
    speed.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--contexts", type=int, nargs="+", default=[1024, 4096, 16384, 32768])
    p.add_argument("--budget-s", type=float, default=150.0, help="training compute per model and context")
    p.add_argument("--tokens", type=int, default=16384, help="bases per batch (at least one window)")
    p.add_argument("--eval-bases", type=int, default=131072, help="held-out bases scored at every context")
    p.add_argument("--peer-max", type=int, default=4096, help="largest context of the HF throughput comparison")
    p.add_argument("--peer-steps", type=int, default=3)
    p.add_argument("--peer-tokens", type=int, default=4096, help="bases per batch of the throughput comparison")
    p.add_argument("--plot", default="docs/images/dna_context.png")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny smoke run, not recorded")
    a = p.parse_args()
    if a.quick:
        a.contexts, a.budget_s, a.tokens, a.eval_bases, a.peer_max, a.peer_steps = [256, 512], 3.0, 1024, 4096, 256, 1
        a.peer_tokens = 512
    print(hardware(), flush=True)
    splits = load_genome(dna_tokenizer())
    rows, peers, memory = [], [], {}
    for context in a.contexts:
        rows += train_context(context, splits, a.budget_s, a.eval_bases, a.tokens, a.seed)
    for context in a.contexts:
        if context <= a.peer_max:
            peers += throughput(context, splits, a.peer_tokens, a.peer_steps, a.seed)
        for mixer in MIXERS:
            memory[mixer, context] = memory_probe(mixer, context, a.tokens)
            print(f"context {context} {mixer}: peak step memory {memory[mixer, context]:,.0f} MiB", flush=True)
    table = markdown_table(
        ["context", "mixer", "params", "steps", "bases seen", "held-out bits/nt", "step s (median)", "bases/s",
         "peak step MiB"],
        [[r["context"], r["mixer"], f"{r['params'] / 1e6:.2f} M", r["steps"], f"{r['bases'] / 1e6:.2f} M",
          f"{r['bits']:.4f}", f"{r['step_s']:.2f}", f"{r['bases_per_s']:,.0f}", f"{memory[r['mixer'], r['context']]:,.0f}"]
         for r in rows])
    best = {c: min((r for r in rows if r["context"] == c), key=lambda r: r["bits"]) for c in a.contexts}
    lines = [f"- best at {c}: {best[c]['mixer']} {best[c]['bits']:.4f} bits/nt" for c in a.contexts]
    core_of = {"HF MambaForCausalLM": "core mamba", "HF GPT2LMHeadModel": "core attention"}
    peer_table = markdown_table(
        ["context", "model", "params", "training bases/s", "core / peer"],
        [[r["context"], r["model"], f"{r['params'] / 1e6:.2f} M", f"{r['bases_per_s']:,.0f}",
          (f"{next(q['bases_per_s'] for q in peers if q['context'] == r['context'] and q['model'] == core_of[r['model']]) / r['bases_per_s']:.2f}x"
           if r["model"] in core_of else "")] for r in peers])
    if a.plot and not a.quick:
        plot(rows, a.plot)
    notes = (f"Equal wall-clock per model ({a.budget_s:.0f} s of compute), batches of max({a.tokens:,}, context) "
             f"bases, bits/nt over the first {a.eval_bases:,} bases of the held-out test region.\n"
             + "\n".join(lines) + f"\n\nTraining throughput against HF transformers on the same batches ({a.peer_tokens:,} bases each):\n\n" + peer_table)
    if a.quick:
        print(table, "\n", notes)
        return
    record("DNA LM vs context length (benchmarks/dna_context.py)", "python " + " ".join(sys.argv), table, notes)


if __name__ == "__main__":
    main()
