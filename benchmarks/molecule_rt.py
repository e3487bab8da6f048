"""Regression Transformer on MOSES: property prediction against a fingerprint ridge regression,
and property-primed generation judged by RDKit, after a fixed wall-clock budget on CPU.

    python benchmarks/molecule_rt.py [--minutes 10] [--train 20000] [--seeds 300] [--mixer attention]
                                     [--plot P.png] [--quick]

The RT is ``configs/molecule_rt.yaml`` at a CPU-sized width (d 128 x 4) trained on the first
``--train`` MOSES molecules for ``--minutes``; the peer is a ridge regression on Morgan
fingerprints (radius 2, 2,048 bits, counts; RDKit) fitted on the same molecules, its penalty chosen
on the validation ones. Both are scored on the same MOSES test molecules. Generation: ``--seeds``
test molecules, each primed with another's property values and 40 % of its atoms rewritten
(:mod:`apps.genomics.molecule.evaluate`), by sampling, greedily and by constrained beam search.
Properties are RDKit's computations.
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
from apps.genomics.molecule.data import MoleculeDataModule  # noqa: E402
from apps.genomics.molecule.evaluate import generation_metrics  # noqa: E402
from apps.genomics.molecule.task import RegressionTransformerTask  # noqa: E402
from apps.genomics.molecules import canonical  # noqa: E402
from apps.genomics.predict import main as predict_main  # noqa: E402
from apps.genomics.train import main as train_main  # noqa: E402
from core.data.reports import DataWarning  # noqa: E402

CONFIG = "apps/genomics/configs/molecule_rt.yaml"


def fingerprints(molecules) -> np.ndarray:
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    return np.stack([gen.GetCountFingerprintAsNumPy(Chem.MolFromSmiles(m.smiles)).astype(np.float32)
                     for m in molecules])


def ridge_peer(splits, prop: str) -> np.ndarray:
    x, xv, xt = (np.log1p(fingerprints(splits[s])) for s in ("train", "valid", "test"))
    y, yv = (np.array([m.values[prop] for m in splits[s]]) for s in ("train", "valid"))
    mean = y.mean()
    gram, rhs = x.T @ x, x.T @ (y - mean)

    def fit(alpha: float) -> np.ndarray:
        return np.linalg.solve(gram + alpha * len(x) * np.eye(x.shape[1]), rhs)

    alpha = min(10.0 ** np.arange(-5, 2), key=lambda al: float(np.mean((xv @ fit(al) + mean - yv) ** 2)))
    return xt @ fit(alpha) + mean


def scores(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    import torch
    from torchmetrics.functional import pearson_corrcoef, spearman_corrcoef

    p, t = torch.from_numpy(np.asarray(pred)).float(), torch.from_numpy(np.asarray(true)).float()
    return {"rmse": float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(true)) ** 2))),
            "pearson": float(pearson_corrcoef(p, t)), "spearman": float(spearman_corrcoef(p, t))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--train", type=int, default=20000)
    p.add_argument("--steps", type=int, help="end the cosine schedule here (and stop, unless --minutes comes first)")
    p.add_argument("--seeds", type=int, default=300)
    p.add_argument("--mixer", default="attention")
    p.add_argument("--quick", action="store_true", help="smoke run, not recorded")
    p.add_argument("--plot", help="predicted against RDKit's values on the test molecules (PNG)")
    a = p.parse_args()
    if a.quick:
        a.minutes, a.train, a.seeds = 0.2, 600, 20
    print(hardware(), flush=True)
    data = ["--data.init_args.train_limit", str(a.train), "--data.init_args.valid_size", str(max(100, a.train // 20)),
            "--data.init_args.test_limit", "1000"]
    model = ["--model.init_args.arch.encoder.d_model", "128", "--model.init_args.arch.encoder.n_layers", "4",
             "--model.init_args.arch.encoder.n_heads", "4", "--model.init_args.arch.encoder.mixer", a.mixer]
    with tempfile.TemporaryDirectory() as root:
        common = ["--config", CONFIG, *data, *model, "--trainer.default_root_dir", root,
                  "--trainer.enable_progress_bar", "false"]
        minutes = int(a.minutes)
        schedule = ["--trainer.max_steps", str(a.steps), "--model.init_args.optim.total_steps", str(a.steps)] if a.steps else []
        fit = train_main(["fit", *common, *schedule, "--trainer.max_epochs", "1000",
                          "--trainer.max_time", f"00:00:{minutes:02d}:{int((a.minutes - minutes) * 60):02d}"])
        ckpt = fit.trainer.checkpoint_callback.best_model_path
        tested = train_main(["test", *common, "--ckpt_path", ckpt])
        if a.plot:
            predict_main(["--checkpoint", ckpt, "--plot", a.plot])
        task = RegressionTransformerTask.from_checkpoint(ckpt)
        steps, params = fit.trainer.global_step, sum(q.numel() for q in task.parameters())
    dm = MoleculeDataModule(targets=task.properties, train_limit=a.train, valid_size=max(100, a.train // 20),
                            test_limit=1000)
    dm.use_tokenizers_json(task.tokenizers_json)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        splits = dm.splits()
    m = tested.trainer.callback_metrics
    rows = []
    for prop in task.properties:
        true = np.array([x.values[prop] for x in splits["test"]])
        peer = scores(ridge_peer(splits, prop), true)
        rows.append([prop, "ridge on Morgan fingerprints (RDKit)", "-", "-",
                     *(f"{peer[k]:.3f}" for k in ("rmse", "pearson", "spearman"))])
        rows.append([prop, f"Regression Transformer ({a.mixer})", f"{params / 1e6:.2f} M", steps,
                     *(f"{float(m[f'test/{prop}_{k}']):.3f}" for k in ("rmse", "pearson", "spearman"))])
    table = markdown_table(["property", "model", "params", "steps", "RMSE", "Pearson", "Spearman"], rows)
    training = {canonical(x.smiles) for x in splits["train"]}
    gen_rows = []
    for how, options in (("sampling, temperature 1", {}), ("greedy", {"top_k": 1}), ("beam 4, likeliest valid", {"beam": 4})):
        gen = generation_metrics(task.eval(), splits["test"][: a.seeds], dm.prefix_length, training, **options)
        gen_rows.append([how, *(f"{gen[k]:.3f}" for k in ("validity", "uniqueness", "novelty", "changed")),
                         *(f"{gen[f'{p}_spearman']:.3f}" for p in task.properties)])
    gen_table = markdown_table(["decoding", "validity", "uniqueness", "novelty", "changed",
                                *(f"{p} Spearman primed vs measured" for p in task.properties)], gen_rows)
    print(table, "\n\n", gen_table)
    if a.quick:
        return
    notes = (f"MOSES: first {a.train:,} training molecules ({len(splits['train']):,} train / {len(splits['valid']):,} valid), "
             f"{len(splits['test']):,} test; {a.minutes:g} minutes of training"
             + (f" (cosine schedule over {a.steps:,} steps)" if a.steps else "") + "; properties computed with RDKit.\n\n"
             f"Generation, {a.seeds} test seeds primed with other seeds' values, 40 % of atoms rewritten:"
             f"\n\n{gen_table}")
    record("Regression Transformer on MOSES (benchmarks/molecule_rt.py)", "python " + " ".join(sys.argv), table, notes)


if __name__ == "__main__":
    main()
