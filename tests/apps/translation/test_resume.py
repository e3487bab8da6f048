"""A run killed with SIGKILL mid-epoch and resumed from its last checkpoint ends with the weights of
an uninterrupted run: the batch order is in the checkpoint (Lightning's stateful-dataloader
protocol), so the resumed run sees the same batches. (Without it the weights differed by up to 8e-3.)"""
import os
import random
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import lightning as L
import torch

from apps.translation.train import main

ROOT = Path(__file__).resolve().parents[3]
# 300 pairs make 7 batches an epoch: the checkpoint at step 10 is inside the second epoch, the kill
# comes 2 steps later, and the runs end in the fourth epoch
STEPS, CHECKPOINT_AT, KILL_AT = 24, 10, 12


class KillAt(L.Callback):
    """SIGKILL this process after ``step`` optimizer steps: no teardown, no final checkpoint."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def args(tmp_path, root, *extra):
    return ["fit", "--config", str(ROOT / "apps/translation/configs/tiny.yaml"), "--data.corpus", "files",
            "--data.train_path", str(tmp_path / "train.tsv"), "--data.cache_dir", str(tmp_path / "cache"),
            "--data.max_tokens", "512", "--trainer.default_root_dir", str(tmp_path / root),
            "--trainer.logger", "false", "--trainer.limit_val_batches", "0", "--trainer.max_steps", str(STEPS), *extra]


def test_run_killed_mid_epoch_resumes_like_an_uninterrupted_run(tmp_path):
    rng = random.Random(0)  # a spelling task: "cab" -> "C A B"
    words = ["".join(rng.choice("abcdefgh") for _ in range(rng.randint(2, 9))) for _ in range(300)]
    (tmp_path / "train.tsv").write_text("".join(f"{w}\t{' '.join(w.upper())}\n" for w in words))
    uninterrupted = main(args(tmp_path, "a"))
    epoch_batches = uninterrupted.trainer.num_training_batches
    assert epoch_batches < CHECKPOINT_AT < KILL_AT < 2 * epoch_batches < STEPS  # mid-epoch, not the first

    killed = subprocess.run(
        [sys.executable, "-m", "apps.translation.train", *args(tmp_path, "b"),
         "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
         "--trainer.callbacks.every_n_train_steps", str(CHECKPOINT_AT), "--trainer.callbacks.save_last", "true",
         "--trainer.callbacks.dirpath", str(tmp_path / "ckpt"),
         "--trainer.callbacks+=tests.apps.translation.test_resume.KillAt", "--trainer.callbacks.step", str(KILL_AT)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    last = tmp_path / "ckpt" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == CHECKPOINT_AT
    assert state["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "consumed": CHECKPOINT_AT - epoch_batches}]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = main(args(tmp_path, "c", "--ckpt_path", str(last)))
    assert not [w for w in caught if "not resumable" in str(w.message)]
    assert resumed.trainer.global_step == STEPS
    expected, got = uninterrupted.model.state_dict(), resumed.model.state_dict()
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6, msg=name)
