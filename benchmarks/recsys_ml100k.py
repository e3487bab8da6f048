"""Generative retrieval on MovieLens-100k: TIGER against SASRec and most-popular, same split, same
metrics, about the same wall-clock per sequence model, several seeds.

    python benchmarks/recsys_ml100k.py [--seeds 0 1 2] [--tiger-steps 450] [--sasrec-steps 2800] [--quick]

Data: the bundled MovieLens-100k (943 users, 1,682 items), users with at least 5 events,
chronological leave-one-out, histories of the last 20 items; every number is on the test item of
every user with a full ranking over all 1,682 items (no sampled negatives).

Per seed:

* TIGER: ``rqvae.yaml`` (RQ-VAE on the items' MiniLM text embeddings, 3 x 256 codes, fixed steps)
  writes the semantic IDs, then ``tiger.yaml`` (core encoder-decoder, trie-constrained beam 20)
  trains for ``--tiger-steps``; its training time is both stages;
* SASRec: ``sasrec.yaml`` trains for ``--sasrec-steps``;
* most-popular: the counts of the training (and validation) items.

The budgets are optimiser steps, so each learning-rate schedule runs to its end (a wall-clock stop
would cut a cosine schedule anywhere); the defaults give each sequence model about 7 minutes on 2
cores (a TIGER step reads 256 sources of 81 tokens and takes ~1 s, a SASRec step ~0.1 s), and the
measured seconds are reported. Both test the checkpoint that was best on validation NDCG@10. Latency is per user
(batch 1, the median over ``--latency-users`` test users, one thread as a serving process would
pin it): SASRec's one forward and top-K, TIGER's constrained beam search, and TIGER's beam search
without the trie, whose outputs also give the share of decoded IDs that are real items.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from apps.recommendation.data import RecDataModule, collate  # noqa: E402
from apps.recommendation.semantic_ids import SemanticIds  # noqa: E402
from apps.recommendation.task import SASRecTask, TigerTask, evaluate_popularity  # noqa: E402
from apps.recommendation.train import main as train_main  # noqa: E402
from core.training import datamodule_from_checkpoint  # noqa: E402
from benchmarks.common import hardware, markdown_table, record  # noqa: E402

CONFIGS = "apps/recommendation/configs"
METRICS = ("recall@5", "recall@10", "ndcg@5", "ndcg@10", "coverage@10")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def fit_and_test(config: str, options: list[str], steps: int | None,
                 validations: int = 3) -> tuple[dict[str, float], float, str, int]:
    """Fit (for ``steps`` when given, validating ``validations`` times, the last at the end; else
    the config's own length), test the best checkpoint; (test metrics, training seconds,
    checkpoint, optimiser steps)."""
    budget = ["--trainer.max_epochs", "-1", "--trainer.max_steps", str(steps), "--trainer.val_check_interval",
              str(max(1, steps // validations)), "--trainer.check_val_every_n_epoch", "null"] if steps else []
    start = time.perf_counter()
    fit = train_main(["fit", "--config", config, *options, *QUIET, *budget])
    seconds = time.perf_counter() - start
    ckpt = fit.trainer.checkpoint_callback.best_model_path or fit.trainer.checkpoint_callback.last_model_path
    if "rqvae" in config:
        return {}, seconds, ckpt, fit.trainer.global_step
    tested = train_main(["test", "--config", config, *options, *QUIET, "--ckpt_path", ckpt])
    m = {k.split("/", 1)[1]: float(v) for k, v in tested.trainer.callback_metrics.items() if k.startswith("test/")}
    return m, seconds, ckpt, fit.trainer.global_step


def latency_ms(top_k, rows: list[dict], k: int = 10) -> float:
    """Median milliseconds of ``top_k(batch of one user, k)``, after one warm-up call."""
    times = []
    with torch.no_grad():
        top_k(collate([rows[0]]), k)
        for row in rows:
            batch = collate([row])
            start = time.perf_counter()
            top_k(batch, k)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def one_seed(seed: int, args, root: str) -> dict[str, dict[str, float]]:
    tiny = "_tiny" if args.quick else ""
    seeded = ["--seed_everything", str(seed)]
    out: dict[str, dict[str, float]] = {}

    ids = os.path.join(root, f"ids-{seed}.pt")
    _, rq_seconds, _, rq_steps = fit_and_test(f"{CONFIGS}/rqvae{tiny}.yaml", [
        *seeded, "--model.init_args.seed", str(seed), "--model.init_args.ids_out", ids,
        "--trainer.default_root_dir", os.path.join(root, f"rqvae-{seed}")], None)
    table = SemanticIds.load(ids)

    m, seconds, ckpt, steps = fit_and_test(f"{CONFIGS}/tiger{tiny}.yaml", [
        *seeded, "--data.semantic_ids", ids, "--trainer.default_root_dir", os.path.join(root, f"tiger-{seed}")],
        args.tiger_steps)
    task = TigerTask.from_checkpoint(ckpt).eval()
    rows = test_rows(ckpt, args.latency_users)
    with single_thread():
        m["latency_ms"] = latency_ms(task.top_k, rows)
        m["latency_free_ms"] = latency_ms(lambda b, k: task.generated(b, k, constrained=False), rows)
    m.update(train_s=rq_seconds + seconds, rqvae_s=rq_seconds, steps=steps, rqvae_steps=rq_steps,
             collisions=table.collision_rate)
    out["TIGER"] = m

    m, seconds, ckpt, steps = fit_and_test(f"{CONFIGS}/sasrec{tiny}.yaml", [
        *seeded, "--trainer.default_root_dir", os.path.join(root, f"sasrec-{seed}")], args.sasrec_steps, 7)
    task = SASRecTask.from_checkpoint(ckpt).eval()
    with single_thread():
        m["latency_ms"] = latency_ms(task.top_k, test_rows(ckpt, args.latency_users))
    m.update(train_s=seconds, steps=steps)
    out["SASRec"] = m

    out["most popular"] = evaluate_popularity(RecDataModule(), "test")
    out["most popular"] = {k.split("/", 1)[1] if "/" in k else k: v for k, v in out["most popular"].items()}
    return out


def test_rows(ckpt: str, n: int) -> list[dict]:
    """The first ``n`` test users as the checkpoint's data module makes them."""
    data = datamodule_from_checkpoint(RecDataModule, ckpt).dataset("test")
    return [data[i] for i in range(min(n, len(data)))]


class single_thread:
    """One intra-op thread for the latency loops, as a serving process handling one user would pin."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)


def mean_std(values: list[float], digits: int = 4) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _ratio(a: list[float], b: list[float]) -> float:
    """mean(a) / mean(b); nan when b's mean is 0 (a smoke run's untrained models)."""
    return statistics.mean(a) / statistics.mean(b) if statistics.mean(b) else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--tiger-steps", type=int, default=450, help="TIGER's optimiser steps (batches of 256)")
    p.add_argument("--sasrec-steps", type=int, default=2800, help="SASRec's optimiser steps (batches of 256)")
    p.add_argument("--latency-users", type=int, default=100)
    p.add_argument("--quick", action="store_true", help="tiny configs, smoke run, not recorded")
    a = p.parse_args()
    if a.quick:
        a.tiger_steps, a.sasrec_steps, a.latency_users = 4, 4, 5
    print(hardware())
    runs: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="recsys-") as root:
        for seed in a.seeds:
            runs.append(one_seed(seed, a, root))
            print(f"seed {seed}: " + "; ".join(f"{name} ndcg@10 {m['ndcg@10']:.4f}" for name, m in runs[-1].items()))

    models = list(runs[0])
    col = {name: {key: [r[name][key] for r in runs] for key in runs[0][name]} for name in models}
    rows = []
    for name in models:
        c = col[name]
        rows.append([name, *(mean_std(c[k]) for k in METRICS),
                     mean_std(c["train_s"], 0) if "train_s" in c else "-",
                     mean_std(c["latency_ms"], 1) if "latency_ms" in c else "-"])
    table = markdown_table(["model", *METRICS, "training s", "ms per user"], rows)
    t, s = col["TIGER"], col["SASRec"]
    ratio = _ratio(t["ndcg@10"], s["ndcg@10"])
    notes = [
        f"{len(a.seeds)} seeds ({', '.join(map(str, a.seeds))}), mean ± std; {a.tiger_steps} TIGER and {a.sasrec_steps} SASRec "
        f"optimiser steps; TIGER's training time includes its RQ-VAE ({mean_std(t['rqvae_s'], 0)} s, "
        f"{int(t['rqvae_steps'][0])} steps).",
        f"TIGER / SASRec NDCG@10: {ratio:.2f}x; Recall@10: "
        f"{_ratio(t['recall@10'], s['recall@10']):.2f}x. "
        f"Training seconds without the RQ-VAE: TIGER {mean_std([a - b for a, b in zip(t['train_s'], t['rqvae_s'])], 0)}, "
        f"SASRec {mean_std(s['train_s'], 0)}.",
        f"Semantic-ID collisions (items whose codes another item has too): {mean_std([100 * x for x in t['collisions']], 1)} %. "
        f"Unconstrained beam search: {mean_std([100 * x for x in t['valid_share']], 1)} % of its top-10 IDs "
        "are real items.",
        f"Latency per user (batch 1, one thread, median of {a.latency_users}): TIGER constrained beam "
        f"{mean_std(t['latency_ms'], 1)} ms vs unconstrained {mean_std(t['latency_free_ms'], 1)} ms "
        f"({_ratio(t['latency_ms'], t['latency_free_ms']):.2f}x); SASRec "
        f"{mean_std(s['latency_ms'], 1)} ms.",
    ]
    print(table + "\n\n" + "\n".join(notes))
    if a.quick:
        return
    record("Generative retrieval on MovieLens-100k (benchmarks/recsys_ml100k.py)", "python " + " ".join(sys.argv),
           table, "\n\n".join(notes))


if __name__ == "__main__":
    main()
