"""Protein property regression on the bundled proteins: pooled encoders against the classical
composition baselines, on the same genome-region split.

    python benchmarks/peptide_property.py [--targets isoelectric_point instability_index]
           [--mixers mamba attention] [--budget-min 5] [--quick]

Each (target, mixer) trains ``configs/peptide_pi.yaml``'s model for the same wall-clock budget and
is scored on the held-out proteins (the genome's last 10 % of genes). The peers are ridge
regressions fitted on the same training proteins: on amino-acid composition + length (the
standard sequence-only baseline), and on dipeptide composition (420 features), which is close to
the exact formula for the instability index (a sum over dipeptides) and so is an upper bound
there, not a fair rival. The labels are ProtParam's computations, not measurements.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import hardware, markdown_table, record  # noqa: E402
from apps.genomics.property.data import PropertyDataModule  # noqa: E402
from apps.genomics.train import main as train_main  # noqa: E402
from core.data.reports import DataWarning  # noqa: E402

CONFIG = "apps/genomics/configs/peptide_pi.yaml"


def features(examples, dipeptides: bool) -> np.ndarray:
    rows = []
    for e in examples:
        ids = e.ids - 4  # token ids 4-24 are the twenty residues and X (after core's four specials)
        comp = np.bincount(ids, minlength=21)[:21] / len(ids)
        if dipeptides:
            pairs = ids[:-1] * 21 + ids[1:]
            comp = np.concatenate([comp, np.bincount(pairs, minlength=441)[:441] / max(len(pairs), 1)])
        rows.append(np.concatenate([comp, [np.log(len(ids)), 1.0]]))
    return np.array(rows)


def ridge(train, valid, test, dipeptides: bool) -> np.ndarray:
    """Ridge regression, its penalty chosen on the validation proteins."""
    x, y = features(train, dipeptides), np.array([float(e.label) for e in train])
    xv, yv = features(valid, dipeptides), np.array([float(e.label) for e in valid])

    def fit(alpha: float) -> np.ndarray:
        return np.linalg.solve(x.T @ x + alpha * len(x) * np.eye(x.shape[1]), x.T @ y)

    alpha = min(10.0 ** np.arange(-9, 0), key=lambda al: float(np.mean((xv @ fit(al) - yv) ** 2)))
    return features(test, dipeptides) @ fit(alpha)


def scores(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    import torch
    from torchmetrics.functional import pearson_corrcoef, spearman_corrcoef

    p, t = torch.from_numpy(pred).float(), torch.from_numpy(true).float()
    return {"rmse": float(np.sqrt(np.mean((pred - true) ** 2))), "pearson": float(pearson_corrcoef(p, t)),
            "spearman": float(spearman_corrcoef(p, t))}


def train_model(target: str, mixer: str, minutes: float, root: str, quick: bool) -> tuple[dict, int, str, int]:
    pos = "rope" if mixer == "attention" else "none"
    args = ["--config", CONFIG, "--data.init_args.target", target, "--model.init_args.arch.encoder.mixer", mixer,
            "--model.init_args.arch.encoder.position", pos, "--trainer.default_root_dir", root,
            "--trainer.enable_progress_bar", "false"]
    if quick:
        args += ["--trainer.max_steps", "3", "--model.init_args.arch.encoder.d_model", "32",
                 "--model.init_args.arch.encoder.n_layers", "1", "--trainer.limit_val_batches", "2"]
    fit = train_main(["fit", *args, "--trainer.max_time", f"00:00:{int(minutes):02d}:{int(minutes % 1 * 60):02d}",
                      "--trainer.max_epochs", "1000"])
    ckpt = fit.trainer.checkpoint_callback.best_model_path
    tested = train_main(["test", *args, "--ckpt_path", ckpt])
    m = tested.trainer.callback_metrics
    params = sum(p.numel() for p in fit.model.parameters())
    return {k: float(m[f"test/{k}"]) for k in ("rmse", "pearson", "spearman")}, params, ckpt, fit.trainer.global_step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", nargs="+", default=["isoelectric_point", "instability_index"])
    p.add_argument("--mixers", nargs="+", default=["mamba", "attention"])
    p.add_argument("--budget-min", type=float, default=5.0)
    p.add_argument("--plot", default="docs/images/peptide_scatter.png")
    p.add_argument("--quick", action="store_true", help="smoke run, not recorded")
    a = p.parse_args()
    print(hardware(), flush=True)
    rows, best = [], None
    for target in a.targets:
        dm = PropertyDataModule(target=target, max_length=1000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            splits = dm.splits()
        true = np.array([float(e.label) for e in splits["test"]])
        for name, dip in (("ridge, residue composition + length", False), ("ridge, dipeptide composition", True)):
            s = scores(ridge(splits["train"], splits["valid"], splits["test"], dip), true)
            rows.append([target, name, "-", "-", *(f"{s[k]:.3f}" for k in ("rmse", "pearson", "spearman"))])
            print(rows[-1], flush=True)
        for mixer in a.mixers:
            with tempfile.TemporaryDirectory() as root:
                s, params, ckpt, steps = train_model(target, mixer, a.budget_min, root, a.quick)
                rows.append([target, f"bidirectional {mixer}, mean-pooled", f"{params / 1e6:.2f} M", steps,
                             *(f"{s[k]:.3f}" for k in ("rmse", "pearson", "spearman"))])
                print(rows[-1], flush=True)
                if target == a.targets[0] and (best is None or s["pearson"] > best[0]) and not a.quick:
                    from apps.genomics.predict import main as predict_main

                    best = (s["pearson"], mixer)
                    predict_main(["--checkpoint", ckpt, "--plot", a.plot])
    table = markdown_table(["target", "model", "params", "steps", "RMSE", "Pearson", "Spearman"], rows)
    print(table)
    if a.quick:
        return
    n = {k: len(v) for k, v in splits.items()}
    notes = (f"Bundled proteins up to 1,000 residues ({n['train']:,} train / {n['test']:,} test, split by genome "
             f"region); {a.budget_min:g} minutes of training per model; labels computed with Biopython ProtParam. "
             f"Scatter of the best {a.targets[0]} model ({best[1] if best else '-'}): `{a.plot}`.")
    record("Peptide properties vs composition baselines (benchmarks/peptide_property.py)",
           "python " + " ".join(sys.argv), table, notes)


if __name__ == "__main__":
    main()
