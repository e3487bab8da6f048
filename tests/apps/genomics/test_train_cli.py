"""``python -m apps.genomics.train validate|predict`` on every tiny config's fitted checkpoint (fit
and test are exercised by each task's own tests)."""
import math

import pytest

from apps.genomics.train import main as train_main


@pytest.mark.parametrize("config", ["dna_lm_tiny.yaml", "gene_tag_tiny.yaml", "peptide_tiny.yaml", "molecule_rt_tiny.yaml"])
def test_validate_and_predict_from_a_checkpoint(fitted, tmp_path, config):
    ckpt = fitted(config)
    common = ["--config", f"apps/genomics/configs/{config}", "--ckpt_path", ckpt, "--trainer.default_root_dir", str(tmp_path)]
    validated = train_main(["validate", *common, "--trainer.limit_val_batches", "2"])
    assert math.isfinite(float(validated.trainer.callback_metrics["val/loss"]))
    predicted = train_main(["predict", *common, "--trainer.limit_predict_batches", "2"])
    batches = predicted.trainer.predict_loop.predictions
    assert len(batches) == 2
    first = batches[0]
    if config.startswith("dna_lm"):
        batch = next(iter(predicted.datamodule.predict_dataloader()))  # the loss on the same windows
        want = float(predicted.model.losses(batch)["bits_per_nt"])
        assert math.isclose(float(first["nll"].sum() / first["bases"].sum()) / math.log(2), want, rel_tol=1e-4)
    elif config.startswith("gene_tag"):
        assert ((first >= -100) & (first < 7)).all()
    elif config.startswith("peptide"):
        assert first.ndim == 1 and first.isfinite().all()
    else:
        assert ((first["qed"] >= 0) & (first["qed"] <= 1)).all()
