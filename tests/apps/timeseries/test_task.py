"""The forecasting task through the CLI: every config runs, every backbone is one line, the
metrics are what they say (recomputed here from the model's own forecasts), and MS features with
a teacher-forced autoregressive model read every channel but score the target."""
from pathlib import Path

import numpy as np
import pytest
import torch

from apps.timeseries.data import ForecastDataModule
from apps.timeseries.series import read_wide_csv
from apps.timeseries.datasets import bundled_series
from apps.timeseries.task import ForecastTask
from apps.timeseries.train import main as train_main

CONFIGS = sorted(Path("apps/timeseries/configs").glob("*.yaml"))
TINY = "apps/timeseries/configs/patch_tiny.yaml"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_runs_fast_dev_run(config, tmp_path):
    cli = train_main(["fit", "--config", str(config), "--trainer.fast_dev_run", "1",
                      "--trainer.default_root_dir", str(tmp_path)])
    assert cli.trainer.state.finished and cli.trainer.global_step == 1


@pytest.mark.parametrize("options", [
    ["--model.arch.backbone.mixer", "mamba"], ["--model.arch.backbone.mixer", "mlstm"],
    ["--model.arch.backbone.mixer", "gla", "--model.arch.decoding", "autoregressive"],
    ["--model.arch.head", "quantile"], ["--model.arch.head", "student_t", "--model.arch.model", "dlinear"],
    ["--model.arch.model", "informer"],
], ids=lambda o: "-".join(o[1::2]))
def test_one_line_swaps_the_model_and_the_metrics_are_recomputable(options, tmp_path):
    fit = train_main(["fit", "--config", TINY, *options, "--trainer.default_root_dir", str(tmp_path)])
    ckpt = fit.trainer.checkpoint_callback.best_model_path
    tested = train_main(["test", "--config", TINY, *options, "--ckpt_path", ckpt,
                         "--trainer.default_root_dir", str(tmp_path)])
    m = {k: float(v) for k, v in tested.trainer.callback_metrics.items()}
    task = ForecastTask.from_checkpoint(ckpt)
    dm = ForecastDataModule(lookback=64, label_len=32, horizon=24, batch_size=8)
    points, truths = [], []
    with torch.no_grad():
        for k, batch in enumerate(dm.test_dataloader()):
            if k == 2:  # (the tiny config tests two batches)
                break
            points.append(task.head.point(task.raw(batch)))
            truths.append(task.truth(batch))
    point, truth = torch.cat(points), torch.cat(truths)
    assert m["test/mse"] == pytest.approx(float((point - truth).pow(2).mean()), rel=1e-4)
    assert m["test/mae"] == pytest.approx(float((point - truth).abs().mean()), rel=1e-4)
    units, real = dm.inverse(point), dm.inverse(truth)
    assert m["test/mase"] == pytest.approx(float(((units - real).abs() / dm.mase_scale[0]).mean()), rel=1e-4)
    smape = 100 * (2 * (units - real).abs() / (units.abs() + real.abs())).mean()
    assert m["test/smape"] == pytest.approx(float(smape), rel=1e-4)
    assert ("test/crps" in m) == ("quantile" in options or "student_t" in options)
    predicted = train_main(["predict", "--config", TINY, *options, "--ckpt_path", ckpt,
                            "--trainer.limit_predict_batches", "1", "--trainer.default_root_dir", str(tmp_path)])
    out = predicted.trainer.predict_loop.predictions[0]
    assert out["forecast"].shape == (8, 24, 1) and 5_000 < float(out["forecast"].mean()) < 60_000  # megawatts
    if "low" in out:
        assert (out["low"] <= out["high"]).all()


def test_ms_features_read_every_channel_and_score_the_target(tmp_path):
    demand = read_wide_csv(bundled_series("electricity")).values[:1500, 0]
    dates = np.datetime_as_string(read_wide_csv(bundled_series("electricity")).dates[:1500], unit="m")
    csv = tmp_path / "two.csv"  # demand and its value one day earlier, target last
    csv.write_text("date,yesterday,demand\n" + "".join(f"{d},{y},{x}\n" for d, y, x in
                                                       zip(dates[48:], demand[:-48], demand[48:])))
    options = ["--data.csv", str(csv), "--data.features", "MS", "--model.arch.decoding", "autoregressive",
               "--trainer.default_root_dir", str(tmp_path)]
    fit = train_main(["fit", "--config", TINY, *options])
    task = fit.model
    assert task.arch.channels_in == 2 and task.output_index == [1]
    assert float(fit.trainer.callback_metrics["val/mse"]) >= 0
    batch = next(iter(fit.datamodule.val_dataloader()))
    assert task.raw(batch).shape[2] == 1 and batch["future"].shape[2] == 2
