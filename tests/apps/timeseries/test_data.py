"""Forecasting data: the bundled real series, TSLib-style chronological splits with train-only
scaling, windows that equal slices of the scaled series, calendar features, the formats users bring
and every bad input they can give (one line naming the file, the column and the CSV lines, with
the file left as it was)."""
import gzip
import math
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from apps.timeseries.data import ForecastDataModule
from apps.timeseries.datasets import bundled_series
from apps.timeseries.series import (read_long_csv, read_wide_csv, season_length, steps_per_day, time_feature_names,
                                    time_features)
from core.data.reports import DataWarning
from core.data.wheels import wheel_members
from core.errors import DataError, UserError

HOURS = [f"2020-01-01 {h:02d}:00:00" for h in range(24)]


def csv_file(tmp_path: Path, text: str, name: str = "ett.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return path


def hourly(rows: int, columns: str = "a,OT", start: str = "2020-01-01") -> str:
    """``rows`` hourly lines of smooth, distinct values (line k+2 holds step k)."""
    names = columns.split(",")
    dates = np.arange(np.datetime64(start), np.datetime64(start) + np.timedelta64(rows, "h"), np.timedelta64(1, "h"))
    lines = [",".join([str(d).replace("T", " ")] + [f"{10 * (c + 1) + np.sin(k / 5 + c):.6f}"
                                                     for c in range(len(names))])
             for k, d in enumerate(dates)]
    return "\n".join(["date," + columns, *lines]) + "\n"


def refused(path: Path, error=DataError, **kw) -> str:
    """The message reading ``path`` raises; the file's bytes must be unchanged afterwards."""
    before = path.read_bytes()
    with pytest.raises(error) as info:
        read_wide_csv(path, **kw)
    assert path.read_bytes() == before
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


@pytest.fixture(scope="module")
def electricity() -> ForecastDataModule:
    dm = ForecastDataModule(lookback=96, horizon=96, batch_size=64)
    dm.setup("fit")
    return dm


# --------------------------------------------------------------------------- bundled series


def test_bundled_electricity_is_taylors_half_hourly_demand(electricity):
    series = electricity.series()
    assert len(series) == 4032 and series.freq == "30min" and series.columns == ["demand"]
    assert series.dates.dtype == np.dtype("datetime64[ns]")
    assert series.dates[0] == np.datetime64("2000-06-05T00:00")
    assert series.dates[-1] == np.datetime64("2000-08-27T23:30")
    assert np.allclose(series.values[:3, 0], [22262.0, 21756.0, 22247.0])  # pmdarima's load_taylor()[:3]
    assert 15_000 < series.values.min() and series.values.max() < 45_000 and 25_000 < series.values.mean() < 35_000
    assert series.lines[0] == 2 and series.lines[-1] == 4033  # the cached CSV's lines (after its header)
    assert electricity.season == 48 and electricity.time_features == 5


def test_bundled_sunspots_are_monthly_from_1749():
    series = read_wide_csv(bundled_series("sunspots"))
    assert len(series) == 2820 and series.freq == "MS"
    assert series.dates[0] == np.datetime64("1749-01-01") and series.dates[-1] == np.datetime64("1983-12-01")
    assert np.allclose(series.values[:3, 0], [58.0, 62.6, 70.0]) and series.values[-1, 0] == pytest.approx(33.4)
    assert season_length(series.freq) == 12


def test_bundled_co2_needs_fill_and_interpolates_with_it():
    with pytest.raises(DataError, match=r"co2\.csv: column 'co2': not a number at lines .*data\.fill"):
        ForecastDataModule(dataset="co2", lookback=52, horizon=26).setup()
    dm = ForecastDataModule(dataset="co2", fill="interpolate", lookback=52, horizon=26)
    with pytest.warns(DataWarning, match=r"co2\.csv: filled 59 values of column 'co2'.*linear interpolation"):
        dm.setup()
    series = dm.series()
    assert len(series) == 2284 and series.freq == "W-SAT" and np.isfinite(series.values).all()
    assert dm.season == 52 and dm.time_features == 2
    assert 310 < series.values.min() and series.values.max() < 380


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(UserError, match="unknown dataset 'x'; choose electricity, sunspots, co2"):
        ForecastDataModule(dataset="x")


# --------------------------------------------------------------------------- splits, scaling, windows


def test_ratio_split_is_chronological_and_valid_test_reach_back_a_lookback(electricity):
    train, test = int(4032 * 0.7), int(4032 * 0.2)
    assert (train, test) == (2822, 806)
    assert electricity.segments() == {"train": (0, 2822), "valid": (2822 - 96, 2822 + 404), "test": (3226 - 96, 4032)}
    sizes = {split: len(electricity.windows(split)) for split in ("train", "valid", "test")}
    assert sizes == {"train": 2822 - 192 + 1, "valid": 404 - 96 + 1, "test": 806 - 96 + 1}
    # the first validation window forecasts the first step after the train border, from train's last lookback
    first = electricity.windows("valid")[0]
    assert int(first["start"]) == 2822
    last = electricity.windows("test")[len(electricity.windows("test")) - 1]
    assert int(last["start"]) + 96 == 4032  # the test windows forecast up to the series' end


def test_scaler_is_fitted_on_the_train_segment_only(electricity):
    values = electricity.series().values[:, 0]
    assert electricity.scale_mean == pytest.approx([values[:2822].mean()], rel=1e-9)
    assert electricity.scale_std == pytest.approx([values[:2822].std()], rel=1e-9)
    assert abs(electricity.scale_mean[0] - values.mean()) > 100  # the whole series would give another mean
    assert np.allclose(electricity.train_values()[:, 0], values[:2822])


def test_a_window_is_the_scaled_series_and_inverse_gives_megawatts_back(electricity):
    values = electricity.series().values
    mean, std = electricity.scale_mean[0], electricity.scale_std[0]
    window = electricity.windows("test")[17]
    i = 3130 + 17
    assert window["past"].dtype == torch.float32 and window["past"].shape == (96, 1)
    assert np.allclose(window["past"].numpy()[:, 0], (values[i:i + 96, 0] - mean) / std, atol=1e-5)
    assert np.allclose(window["future"].numpy()[:, 0], (values[i + 96:i + 192, 0] - mean) / std, atol=1e-5)
    back = electricity.inverse(window["future"].double())
    assert torch.allclose(back[:, 0], torch.from_numpy(values[i + 96:i + 192, 0]), atol=1e-2)
    calendar = time_features(electricity.series().dates, "30min")
    assert np.array_equal(window["future_time"].numpy(), calendar[i + 96:i + 192])


def test_mase_scale_is_the_train_segments_seasonal_naive_error(electricity):
    y = electricity.series().values[:2822, 0]
    assert electricity.mase_scale == pytest.approx([np.abs(y[48:] - y[:-48]).mean()], rel=1e-9)


def test_test_loader_keeps_the_last_partial_batch(electricity):
    loader = electricity.test_dataloader()
    windows = 806 - 96 + 1
    assert len(loader) == math.ceil(windows / 64) == 12
    batches = list(loader)
    assert [len(b["past"]) for b in batches][-1] == windows - 11 * 64
    batch = batches[0]
    assert batch["past"].shape == (64, 96, 1) and batch["future"].shape == (64, 96, 1)
    assert batch["past_time"].shape == (64, 96, 5) and batch["future_time"].shape == (64, 96, 5)
    assert batch["start"].dtype == torch.int64 and batch["start"][:3].tolist() == [3226, 3227, 3228]
    assert len(electricity.train_dataloader()) == math.ceil((2822 - 192 + 1) / 64)


def test_train_stride_thins_only_the_training_windows():
    dm = ForecastDataModule(lookback=96, horizon=96, train_stride=4)
    assert len(dm.windows("train")) == len(range(0, 2822 - 192 + 1, 4))
    assert len(dm.windows("valid")) == 404 - 96 + 1


def test_ett_split_takes_12_4_4_months_of_hourly_steps(tmp_path):
    path = csv_file(tmp_path, hourly(20 * 30 * 24 + 50))
    dm = ForecastDataModule(csv=str(path), split="ett", lookback=48, horizon=24)
    month = 30 * 24
    assert dm.segments() == {"train": (0, 12 * month), "valid": (12 * month - 48, 16 * month),
                             "test": (16 * month - 48, 20 * month)}
    assert steps_per_day("15min") == 96 and steps_per_day("h") == 24 and steps_per_day("MS") is None
    with pytest.raises(UserError, match=r"electricity\.csv: data.split ett needs 20 months of 30 days = 28800 steps, "
                                        r"the series has 4032"):
        ForecastDataModule(split="ett").setup()


def test_features_decide_the_channels_in_and_out(tmp_path):
    path = csv_file(tmp_path, hourly(60, "HUFL,HULL,OT"))
    counts = {}
    for features in ("M", "S", "MS"):
        dm = ForecastDataModule(csv=str(path), features=features, lookback=8, label_len=4, horizon=4, batch_size=5)
        batch = next(iter(dm.test_dataloader()))
        counts[features] = (dm.channels_in, dm.channels_out, batch["past"].shape[-1], batch["future"].shape[-1])
        assert dm.output_columns == (["HUFL", "HULL", "OT"] if features == "M" else ["OT"])
        assert len(dm.scale_mean) == len(dm.scale_std) == dm.channels_in and len(dm.mase_scale) == dm.channels_out
    assert counts == {"M": (3, 3, 3, 3), "S": (1, 1, 1, 1), "MS": (3, 1, 3, 3)}  # (future: every input channel)
    ms = ForecastDataModule(csv=str(path), features="MS", target="HULL", lookback=8, label_len=4, horizon=4)
    assert ms.output_columns == ["HULL"] and ms.output_index == [1] and ms.input_columns == ["HUFL", "HULL", "OT"]
    window = ms.windows("train")[0]
    assert torch.equal(window["future"][:, 1], ms.windows("train")[8]["past"][:4, 1])  # the target, 8 steps on


def test_scale_false_keeps_original_units(tmp_path):
    path = csv_file(tmp_path, hourly(60))
    dm = ForecastDataModule(csv=str(path), scale=False, lookback=8, label_len=4, horizon=4)
    assert dm.scale_mean == [0.0] and dm.scale_std == [1.0]
    assert np.allclose(dm.windows("train")[0]["past"].numpy()[:, 0], dm.series().values[:8, 1], atol=1e-5)


# --------------------------------------------------------------------------- calendar


@pytest.mark.parametrize("freq,count", [("s", 6), ("15min", 5), ("30min", 5), ("h", 4), ("D", 3), ("B", 3),
                                        ("W-SUN", 2), ("MS", 1), ("ME", 1), ("QS-JAN", 1), ("YS-JAN", 1)])
def test_time_features_stay_in_half_unit_and_depend_on_the_frequency(freq, count):
    import pandas as pd

    dates = pd.date_range("2019-12-20", periods=200, freq=freq).as_unit("ns").to_numpy()
    features = time_features(dates, freq)
    assert features.dtype == np.float32 and features.shape == (200, count) == (200, len(time_feature_names(freq)))
    assert features.min() >= -0.5 and features.max() <= 0.5


def test_hourly_time_features_are_hour_weekday_day_and_day_of_year():
    dates = np.array(["2000-06-05T00:00", "2000-06-11T23:00"], dtype="datetime64[ns]")  # a Monday, a Sunday
    assert time_feature_names("h") == ["hour_of_day", "day_of_week", "day_of_month", "day_of_year"]
    expected = [[-0.5, -0.5, 4 / 30 - 0.5, 156 / 365 - 0.5], [0.5, 0.5, 10 / 30 - 0.5, 162 / 365 - 0.5]]
    assert np.allclose(time_features(dates, "h"), expected, atol=1e-6)


@pytest.mark.parametrize("freq,season", [("30min", 48), ("15min", 96), ("h", 24), ("D", 7), ("B", 5),
                                         ("W-SAT", 52), ("7D", 52), ("MS", 12), ("ME", 12), ("QS-OCT", 4),
                                         ("YS-JAN", 1), (None, 1), ("7min", 1)])
def test_season_lengths(freq, season):
    assert season_length(freq) == season


# --------------------------------------------------------------------------- formats users bring


def test_long_csv_pivots_each_id_into_a_channel(tmp_path):
    rows = [f"{station},{HOURS[h]},{value}" for station, offset in (("b", 100), ("a", 0))
            for h, value in enumerate(range(offset, offset + 6))]
    path = csv_file(tmp_path, "station,time,load,note\n" + "\n".join(f"{r},x" for r in rows) + "\n", "long.csv.gz")
    series = read_long_csv(path, "time", "station", "load")
    assert series.columns == ["b", "a"] and series.freq == "h" and len(series) == 6
    assert series.values[:, 0].tolist() == list(range(100, 106)) and series.values[:, 1].tolist() == list(range(6))
    assert series.lines.tolist() == [2, 3, 4, 5, 6, 7]  # each step's first line
    dm = ForecastDataModule(csv=str(path), date_column="time", id_column="station", value_column="load",
                            columns=["a", "b"], features="M", lookback=2, label_len=1, horizon=1,
                            ratios=(0.5, 0.25, 0.25))
    assert dm.output_columns == ["a", "b"] and dm.channels_in == 2


def test_long_csv_reports_an_id_missing_a_time_and_a_repeated_pair(tmp_path):
    text = "id,time,value\n" + "\n".join([f"a,{HOURS[h]},{h}" for h in range(5)] +
                                         [f"b,{HOURS[h]},{h}" for h in (0, 1, 3, 4)]) + "\n"
    path = csv_file(tmp_path, text, "long.csv")
    with pytest.raises(DataError, match=r"long\.csv: column 'b': no line for 1 time \(first 2020-01-01 02:00:00\); "
                                        r"give data.fill"):
        read_long_csv(path, "time", "id", "value")
    with pytest.warns(DataWarning, match=r"filled 1 values of column 'b' by linear"):
        series = read_long_csv(path, "time", "id", "value", fill="interpolate")
    assert series.values[:, 1].tolist() == [0, 1, 2, 3, 4]
    twice = csv_file(tmp_path, text + f"a,{HOURS[3]},9\n", "twice.csv")
    with pytest.raises(DataError, match=r"twice\.csv: id 'a' has time 2020-01-01 03:00:00 more than once \(line 11\)"):
        read_long_csv(twice, "time", "id", "value")


def test_fill_repairs_gaps_and_missing_values_with_one_warning(tmp_path):
    rows = ["00:00,1", "01:00,2", "03:00,4", "04:00,nan", "05:00,8"]  # 02:00 is missing, 04:00 not a number
    text = "date,OT\n" + "".join(f"2020-01-01 {row}\n" for row in rows)
    path = csv_file(tmp_path, text)
    message = refused(path)
    assert "column 'OT': not a number at line 5 (1 row); give data.fill ffill|interpolate" in message
    cleaned = csv_file(tmp_path, text.replace("nan", "6"), "gap.csv")
    assert ("column 'date': 1 missing timestamps against the frequency 'h' (after line 3); give data.fill"
            in refused(cleaned))
    expected = {"ffill": [1, 2, 2, 4, 4, 8], "interpolate": [1, 2, 3, 4, 6, 8]}
    for fill, values in expected.items():
        with pytest.warns(DataWarning) as caught:
            series = read_wide_csv(path, fill=fill)
        assert len(caught) == 1
        assert (f"filled 1 missing timestamps (after line 3); 1 values of column 'OT' at line 5 by "
                f"{'forward fill' if fill == 'ffill' else 'linear interpolation'}") in str(caught[0].message)
        assert series.values[:, 0].tolist() == values and series.lines.tolist() == [2, 3, 0, 4, 5, 6]
    assert path.read_bytes() == text.encode()


def test_monthly_gaps_are_found_against_month_starts(tmp_path):
    months = [f"2001-{m:02d}-01" for m in range(1, 13) if m != 7] + [f"2002-{m:02d}-01" for m in range(1, 13)]
    path = csv_file(tmp_path, "date,x\n" + "\n".join(f"{d},{k % 5}.5" for k, d in enumerate(months)) + "\n")
    assert "1 missing timestamps against the frequency 'MS' (after line 7)" in refused(path)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("rows,expected", [
    (["2020-01-01 00:00,1,2", "yesterday,1,3", "2020-01-01 02:00,1,4"],
     "column 'date': unparsable dates at line 3 (first 'yesterday'); dates must parse"),
    (["2020-01-01 00:00,1,2", "2020-01-01 01:00,1,3", "2020-01-01 01:00,1,4", "2020-01-01 02:00,1,5"],
     ("column 'date': duplicated timestamps at line 4 (first 2020-01-01 01:00:00); keep one row per time "
      "(duplicates are always an error)")),
    (["2020-01-01 00:00,1,2", "2020-01-01 02:00,1,3", "2020-01-01 01:00,1,4", "2020-01-01 03:00,1,5"],
     ("column 'date': timestamps go back in time at line 4; sort the file by date (unsorted dates are always "
      "an error)")),
    (["2020-01-01 00:00,1,2", "2020-01-01 01:00,1,x", "2020-01-01 02:00,1,inf", "2020-01-01 03:00,1,5"],
     "column 'OT': not a number at lines 3, 4 (2 rows); give data.fill ffill|interpolate to fill them"),
    (["2020-01-01 00:00,1,2", "2020-01-01 01:00,1,3"], "only 2 rows; a series needs at least 3"),
    (["2020-01-01 00:00,1,2", "2020-01-01 01:00,1", "2020-01-01 02:00,1,3"],
     "wrong number of fields (the header has 3) at line 3"),
    (["2020-01-01 00:00,1,2", "2020-01-01 01:00,1,3", "2020-01-01 02:00,1,4", "2020-01-01 02:07,1,5"],
     "column 'date': timestamps follow no regular frequency (the most common step is h; off its grid at line 5)"),
])
def test_bad_series_are_one_line_naming_file_column_and_lines(tmp_path, rows, expected):
    path = csv_file(tmp_path, "date,a,OT\n" + "\n".join(rows) + "\n")
    assert expected in refused(path)
    if "always an error" in expected or "unparsable" in expected:
        assert expected in refused(path, fill="interpolate")  # fill never repairs dates


def test_text_and_unknown_columns_are_errors_naming_them(tmp_path):
    path = csv_file(tmp_path, "date,station,OT\n" + "\n".join(f"{HOURS[h]},st{h},{h}" for h in range(5)) + "\n")
    assert "column 'station' is not numeric (e.g. 'st0' at line 2); choose the numeric columns" in refused(path)
    assert len(read_wide_csv(path, columns=["OT"]).columns) == 1
    assert "no column 'load' (data.columns); the header has: date, station, OT" in refused(path, columns=["load"])
    assert "no column 'time' (data.date_column)" in refused(path, date_column="time")
    before = path.read_bytes()
    with pytest.raises(DataError, match=r"ett\.csv: data.target 'load' is not a column \(it has: OT\)"):
        ForecastDataModule(csv=str(path), columns=["OT"], target="load").setup()
    assert path.read_bytes() == before


def test_a_constant_column_is_warned_about_and_scaled_with_std_one(tmp_path):
    path = csv_file(tmp_path, "date,flat,OT\n" + "\n".join(f"{HOURS[h]},3.5,{h % 7}" for h in range(24)) + "\n")
    dm = ForecastDataModule(csv=str(path), features="M", lookback=4, label_len=2, horizon=2)
    with pytest.warns(DataWarning, match=r"ett\.csv: column 'flat' constant: no signal to learn \(scaling uses std 1"):
        dm.setup()
    assert dm.scale_mean[0] == pytest.approx(3.5) and dm.scale_std[0] == pytest.approx(1.0)
    assert torch.all(dm.windows("train")[0]["past"][:, 0] == 0)


def test_a_series_too_short_for_the_window_says_what_each_split_holds(tmp_path):
    path = csv_file(tmp_path, hourly(50))
    with pytest.raises(UserError) as info:
        ForecastDataModule(csv=str(path), lookback=10, label_len=5, horizon=20).setup()
    message = str(info.value)
    assert message.startswith(f"{path}: the valid split is too short for one window: a window needs lookback 10 "
                              f"+ horizon 20 = 30 steps, the splits have train 35, valid 15 (incl. 10 steps of "
                              f"lookback), test 20 (incl. 10 steps of lookback) of 50")


@pytest.mark.parametrize("options,expected", [
    ({"features": "X"}, "data.features must be one of M, S, MS, got 'X'"),
    ({"split": "random"}, "data.split must be one of ratio, ett, got 'random'"),
    ({"ratios": (0.7, 0.2, 0.2)}, "data.ratios must be three positive shares (train, valid, test) summing to 1"),
    ({"ratios": (0.8, 0.0, 0.2)}, "data.ratios must be three positive shares"),
    ({"fill": "zero"}, "data.fill must be one of ffill, interpolate (or unset), got 'zero'"),
    ({"horizon": 0}, "data.horizon must be at least 1, got 0"),
    ({"label_len": 200}, "data.label_len must be between 0 and data.lookback 96, got 200"),
    ({"csv": "my.csv", "dataset": "co2"}, "my.csv: data.csv and data.dataset 'co2' both name the series; give one"),
    ({"csv": "my.csv", "id_column": "id"}, "my.csv: a long CSV needs both data.id_column and data.value_column"),
    ({"id_column": "id", "value_column": "v"}, "describe a data.csv; the bundled 'electricity' needs none"),
])
def test_bad_options_are_one_line_errors(options, expected):
    with pytest.raises(UserError) as info:
        ForecastDataModule(**options)
    assert expected in str(info.value)


def test_a_gzip_csv_reads_like_the_plain_one(tmp_path):
    text = hourly(30)
    plain, packed = read_wide_csv(csv_file(tmp_path, text)), read_wide_csv(csv_file(tmp_path, text, "ett.csv.gz"))
    assert np.array_equal(plain.values, packed.values) and np.array_equal(plain.dates, packed.dates)


# --------------------------------------------------------------------------- files out of wheels


def test_wheel_members_copies_the_named_files_and_fetches_nothing_once_they_exist(tmp_path, monkeypatch):
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("pkg/data/a.csv", "x\n1\n")

    def download(cmd, **_):  # stands in for pip: puts the wheel where -d says
        (Path(cmd[-1]) / wheel.name).write_bytes(wheel.read_bytes())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr("core.data.wheels.subprocess.run", download)
    dest = tmp_path / "cache"
    paths = wheel_members("pkg==1.0", {"pkg/data/a.csv": "a.csv"}, dest)
    assert paths == {"pkg/data/a.csv": dest / "a.csv"} and (dest / "a.csv").read_text() == "x\n1\n"
    assert sorted(p.name for p in dest.iterdir()) == ["a.csv"]  # the wheel is gone
    with pytest.raises(DataError, match=r"pkg==1.0: the wheel holds no pkg/b.txt; or copy a.csv, pkg/b.txt as b.csv"):
        wheel_members("pkg==1.0", {"pkg/data/a.csv": "a.csv", "pkg/b.txt": "b.csv"}, dest)

    def offline(cmd, **_):
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: index ignored\nERROR: No matching distribution\n")

    monkeypatch.setattr("core.data.wheels.subprocess.run", offline)
    assert wheel_members("pkg==1.0", {"pkg/data/a.csv": "a.csv"}, dest) == paths  # cached: pip is not asked
    with pytest.raises(DataError) as info:
        wheel_members("pkg==2.0", {"pkg/data/c.csv": "c.csv"}, dest)
    assert str(info.value) == (f"pkg==2.0: could not fetch the wheel from the package index (ERROR: No matching "
                               f"distribution); or copy c.csv from it into {dest}")
