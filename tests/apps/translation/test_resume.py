"""A run resumed from a mid-epoch checkpoint ends with the weights of an uninterrupted run: the
batch order is in the checkpoint (Lightning's stateful-dataloader protocol), so the resumed run
sees the same batches. (Without it the weights differed by up to 8e-3.)"""
import warnings
from pathlib import Path

import torch

from apps.translation.train import main

ROOT = Path(__file__).resolve().parents[3]
STEPS, CHECKPOINT_AT = 24, 14  # 300 words make 11 batches an epoch: step 14 is inside the second


def fit(cache, root, *extra):
    return main(["fit", "--config", str(ROOT / "apps/translation/configs/tiny.yaml"), "--data.cache_dir", str(cache),
                 "--trainer.default_root_dir", str(root), "--trainer.logger", "false",
                 "--trainer.limit_val_batches", "0", "--trainer.max_steps", str(STEPS), "--data.train_limit", "300",
                 "--data.max_tokens", "512", *extra])


def test_resume_mid_epoch_matches_an_uninterrupted_run(tmp_path):
    uninterrupted = fit(tmp_path / "cache", tmp_path / "a",
                        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
                        "--trainer.callbacks.every_n_train_steps", str(CHECKPOINT_AT),
                        "--trainer.callbacks.save_top_k", "-1", "--trainer.callbacks.dirpath", str(tmp_path / "ckpt"))
    epoch_batches = uninterrupted.trainer.num_training_batches
    assert CHECKPOINT_AT % epoch_batches != 0 and STEPS > CHECKPOINT_AT > epoch_batches  # mid-epoch, not the first
    epoch, consumed = divmod(CHECKPOINT_AT, epoch_batches)
    ckpt = tmp_path / "ckpt" / f"epoch={epoch}-step={CHECKPOINT_AT}.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["loops"]["fit_loop"]["state_dict"]
    assert state["combined_loader"] == [{"epoch": epoch, "consumed": consumed}]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = fit(tmp_path / "cache", tmp_path / "b", "--ckpt_path", str(ckpt))
    assert not [w for w in caught if "not resumable" in str(w.message)]
    assert resumed.trainer.global_step == STEPS
    expected, got = uninterrupted.model.state_dict(), resumed.model.state_dict()
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6, msg=name)
