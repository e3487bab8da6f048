"""``python -m apps.timeseries.forecast``: the forecast it writes is the model's forecast of the
same window in training (scaler, calendar and all), in original units with future timestamps;
bad options and files end as one line."""
import numpy as np
import pandas as pd
import pytest
import torch

from apps.timeseries.data import ForecastDataModule
from apps.timeseries.forecast import main as forecast_main
from apps.timeseries.task import ForecastTask
from apps.timeseries.train import main as train_main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast")
    cli = train_main(["fit", "--config", "apps/timeseries/configs/patch_tiny.yaml", "--model.arch.head", "quantile",
                      "--model.arch.model", "informer", "--trainer.default_root_dir", str(root)])
    return cli.trainer.checkpoint_callback.best_model_path


def test_the_cli_forecast_is_the_models_forecast_of_that_window(checkpoint, tmp_path, capsys):
    out, plot = tmp_path / "f.csv", tmp_path / "f.png"
    assert forecast_main(["--checkpoint", checkpoint, "--cutoff", "2000-08-20 00:00", "--horizon", "12",
                          "--output", str(out), "--plot", str(plot)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["date", "demand", "demand_p10", "demand_p90", "demand_actual"]
    assert len(table) == 12 and table["date"][0] == "2000-08-20 00:30:00" and table["date"][11] == "2000-08-20 06:00:00"
    assert (table["demand_p10"] <= table["demand_p90"]).all() and plot.stat().st_size > 0
    assert "MAE against the 12 known steps" in capsys.readouterr().err
    task = ForecastTask.from_checkpoint(checkpoint)
    dm = ForecastDataModule(lookback=64, label_len=32, horizon=24)
    series = dm.series()
    first = int(np.searchsorted(series.dates, np.datetime64("2000-08-20T00:30")))  # the first future step
    test = dm.windows("test")
    window = next(test[k] for k in range(len(test)) if int(test[k]["start"]) == first)
    batch = {k: v[None] for k, v in window.items()}
    with torch.no_grad():
        want = task.to_units(task.head.point(task.raw(batch)))[0, :12, 0].numpy()
    assert np.allclose(table["demand"].to_numpy(), want, rtol=1e-4)
    assert np.allclose(table["demand_actual"].to_numpy(), series.values[first:first + 12, 0])


def test_a_user_csv_and_the_options_a_user_can_get_wrong(checkpoint, tmp_path, capsys):
    dm = ForecastDataModule()
    series = dm.series()
    csv = tmp_path / "recent.csv"
    dates = pd.DatetimeIndex(series.dates[-100:]).strftime("%Y-%m-%d %H:%M")
    csv.write_text("date,demand\n" + "".join(f"{d},{v}\n" for d, v in zip(dates, series.values[-100:, 0])))
    before = csv.read_bytes()
    assert forecast_main(["--checkpoint", checkpoint, "--csv", str(csv), "--output", str(tmp_path / "o.csv")]) == 0
    table = pd.read_csv(tmp_path / "o.csv")
    assert len(table) == 24 and table["date"][0] == "2000-08-28 00:00:00" and "demand_actual" not in table
    assert csv.read_bytes() == before
    bad = tmp_path / "bad.csv"
    bad.write_text("date,demand\n2000-01-01 00:00,1\nnot a date,2\n")
    for argv, message in [(["--horizon", "99"], "forecasts 1 to 24 steps"), (["--cutoff", "soon"], "not a date"),
                          (["--cutoff", "2000-06-05 01:00"], "needs 64 steps of history"),
                          (["--csv", str(bad)], "bad.csv")]:
        with pytest.raises(SystemExit) as exit_:
            forecast_main(["--checkpoint", checkpoint, *argv])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("options", [["--model.arch.backbone.mixer", "mamba"],
                                     ["--model.arch.decoding", "autoregressive", "--model.arch.backbone.mixer", "gla"],
                                     ["--model.arch.model", "dlinear", "--model.arch.head", "student_t"]],
                         ids=lambda o: "-".join(o[1::2]))
def test_export_matches_pytorch(options, tmp_path, capsys):
    from apps.timeseries.export import main as export_main
    from apps.timeseries.onnx import OnnxForecaster, forecaster_parity

    cli = train_main(["fit", "--config", "apps/timeseries/configs/patch_tiny.yaml", *options,
                      "--trainer.default_root_dir", str(tmp_path)])
    ckpt = cli.trainer.checkpoint_callback.best_model_path
    export_main(["--checkpoint", ckpt, "--out", str(tmp_path / "onnx"), "--samples", "5"])  # exits 1 on mismatch
    assert "on 5 held-out windows" in capsys.readouterr().out
    task = ForecastTask.from_checkpoint(ckpt)
    dm = ForecastDataModule(lookback=64, label_len=32, horizon=24, batch_size=7)
    batch = next(iter(dm.val_dataloader()))  # another batch size and other windows than the command's
    assert forecaster_parity(task, OnnxForecaster(tmp_path / "onnx"), batch)["ok"]
    with pytest.raises(SystemExit) as exit_:
        export_main(["--checkpoint", ckpt, "--out", str(tmp_path / "onnx")])  # not empty: never overwritten
    assert exit_.value.code == 2


def test_informer_with_quantiles_exports_with_parity(checkpoint, tmp_path, capsys):
    from apps.timeseries.export import main as export_main

    export_main(["--checkpoint", checkpoint, "--out", str(tmp_path / "onnx"), "--samples", "5"])  # exits 1 on mismatch
    assert "on 5 held-out windows" in capsys.readouterr().out
