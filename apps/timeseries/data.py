"""Sliding windows over one long series, split in time, for long-horizon forecasting.

The conventions are the long-horizon benchmarks' (Informer, PatchTST, Time-Series-Library), so
figures compare with theirs:

* where the series comes from: ``csv`` (a wide ETT-style file, or a long ``id,time,value`` file when
  ``id_column`` and ``value_column`` are given), else the bundled ``dataset``
  (:mod:`apps.timeseries.datasets`), read and validated by :mod:`apps.timeseries.series`;
* ``features``: ``M`` forecasts every channel from every channel, ``S`` the ``target`` from itself,
  ``MS`` the ``target`` from every channel; ``target`` defaults to the last column (ETT's ``OT``);
* ``split``: ``ratio`` cuts the series in time at ``ratios`` (TSLib's ``Dataset_Custom``: train is
  the first 70 %, test the last 20 %, validation what lies between); ``ett`` takes ETT's 12 / 4 / 4
  months of 30 days at the series' step (``Dataset_ETT_hour`` / ``_minute``) and ignores the rest.
  The validation and test segments start ``lookback`` steps before their borders, so their first
  window has a full history and every future step of a split is forecast;
* scaling: each channel is standardised by the mean and std of the TRAIN segment only (a
  constant channel gets std 1), so nothing about the future leaks into training;
* windows: the past is ``[i, i + lookback)`` and the future ``[i + lookback, i + lookback + horizon)``;
  training windows start every ``train_stride`` steps, validation and test windows every step,
  and no loader drops its last, partial batch (TSLib drops the test set's, which changes the
  reported figures with the batch size).

A batch is a dict: ``past`` [B, lookback, C_in] and ``future`` [B, horizon, C_in] (scaled,
float32; every input channel, so an autoregressive model can be teacher-forced, and
``output_index`` says which of them are forecast and scored), their calendar features ``past_time`` / ``future_time`` [B, *, F] and ``start`` [B], the
series index of the first future step. ``label_len`` is Informer's decoder warm-up (the last
``label_len`` past steps); it is recorded for models that read it and checked to fit the lookback.
"""
from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from apps.timeseries.datasets import DATASETS, bundled_series
from apps.timeseries.series import FILLS, Series, read_long_csv, read_wide_csv, season_length, steps_per_day
from apps.timeseries.series import time_features as calendar_features
from core.data import SplitDataModule
from core.errors import UserError

FEATURES = ("M", "S", "MS")
SPLIT_KINDS = ("ratio", "ett")
#: ETT's split in months of 30 days: train, valid, test (TSLib's Dataset_ETT_hour)
ETT_MONTHS = (12, 4, 4)


class Windows(Dataset):
    """Every window starting at ``starts``: past and future slices of the scaled series."""

    def __init__(self, inputs: torch.Tensor, calendar: torch.Tensor, starts: np.ndarray, lookback: int, horizon: int):
        self.inputs, self.calendar = inputs, calendar
        self.starts, self.lookback, self.horizon = starts, lookback, horizon

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        i = int(self.starts[k])
        mid, end = i + self.lookback, i + self.lookback + self.horizon
        return {"past": self.inputs[i:mid], "future": self.inputs[mid:end], "past_time": self.calendar[i:mid],
                "future_time": self.calendar[mid:end], "start": torch.tensor(mid, dtype=torch.int64)}


class ForecastDataModule(SplitDataModule):
    """Train / valid / test windows over one series (see the module docstring); the sizes, scaler and
    MASE scale a forecaster needs are read lazily from the series, so links and checkpoints get them."""

    predict_split = "test"

    def __init__(self, dataset: str = "electricity", csv: str | None = None, date_column: str = "date",
                 target: str | None = None, features: str = "S", columns: list[str] | None = None,
                 id_column: str | None = None, value_column: str | None = None, lookback: int = 96,
                 label_len: int = 48, horizon: int = 96, split: str = "ratio",
                 ratios: tuple[float, float, float] = (0.7, 0.1, 0.2), scale: bool = True, fill: str | None = None,
                 train_stride: int = 1, batch_size: int = 32, num_workers: int = 0, cache_dir: str | None = None):
        """``csv`` replaces the bundled ``dataset`` (naming another bundled dataset as well is an
        error); ``columns`` picks the channels (the ids of a long file); ``fill`` (``ffill`` or
        ``interpolate``) repairs missing timestamps and values, which are errors otherwise."""
        super().__init__()
        self.save_hyperparameters()  # in checkpoints: predict and export read the same data
        _check_options(dataset, csv, date_column, features, id_column, value_column, lookback, label_len, horizon,
                       split, ratios, fill, train_stride, batch_size)
        self.dataset, self.csv, self.date_column = dataset, csv, date_column
        self.target_name, self.features, self.columns = target, features, columns
        self.id_column, self.value_column = id_column, value_column
        self.lookback, self.label_len, self.horizon = lookback, label_len, horizon
        self.split, self.ratios, self.scale, self.fill = split, tuple(ratios), scale, fill
        self.train_stride, self.batch_size, self.num_workers = train_stride, batch_size, num_workers
        self.cache_dir = cache_dir

    # ------------------------------------------------------------------ the series and its parts

    def series(self) -> Series:
        """The validated series (read on first use)."""
        return self._series

    @cached_property
    def _series(self) -> Series:
        path = Path(self.csv) if self.csv is not None else bundled_series(self.dataset, self.cache_dir)
        if self.id_column is not None:
            return read_long_csv(path, self.date_column, self.id_column, self.value_column, self.columns, self.fill)
        return read_wide_csv(path, self.date_column, self.columns, self.fill)

    @cached_property
    def _target(self) -> int:
        series = self.series()
        if self.target_name is None:
            return len(series.columns) - 1  # ETT's convention: the target is the last column
        return series.column_index(self.target_name, "data.target")

    def target_column(self) -> str:
        """The forecast channel of ``S`` and ``MS`` (``data.target``, default the last column)."""
        return self.series().columns[self._target]

    @cached_property
    def _input_index(self) -> list[int]:
        return [self._target] if self.features == "S" else list(range(len(self.series().columns)))

    @cached_property
    def _output_index(self) -> list[int]:
        return list(range(len(self.series().columns))) if self.features == "M" else [self._target]

    def segments(self) -> dict[str, tuple[int, int]]:
        """{split: (start, end)} indices into the series; valid and test start ``lookback`` steps
        before their borders (their first windows' history)."""
        return self._segments

    @cached_property
    def _segments(self) -> dict[str, tuple[int, int]]:
        n = len(self.series())
        train, valid, test = self._ett_sizes() if self.split == "ett" else _ratio_sizes(n, self.ratios)
        borders = {"train": (0, train), "valid": (train, train + valid), "test": (train + valid, train + valid + test)}
        segments = {name: (max(start - (self.lookback if name != "train" else 0), 0), end)
                    for name, (start, end) in borders.items()}
        self._check_windows_fit(borders, segments)
        return segments

    def _ett_sizes(self) -> tuple[int, int, int]:
        """12 / 4 / 4 months of 30 days in steps of the series (TSLib: 30 * 24 steps a month hourly,
        four times that at 15 minutes)."""
        series = self.series()
        per_day = steps_per_day(series.freq)
        if per_day is None:
            raise UserError(f"{series.source}: data.split ett needs a step that divides a day (ETT is hourly or "
                            f"15-minute); this series' frequency is {series.freq}: use data.split ratio")
        per_month = 30 * per_day
        sizes = tuple(months * per_month for months in ETT_MONTHS)
        if sum(sizes) > len(series):
            raise UserError(f"{series.source}: data.split ett needs {sum(ETT_MONTHS)} months of 30 days = "
                            f"{sum(sizes)} steps, the series has {len(series)}: use data.split ratio")
        return sizes  # type: ignore[return-value]

    def _check_windows_fit(self, borders: dict[str, tuple[int, int]], segments: dict[str, tuple[int, int]]) -> None:
        """Every split must hold at least one whole window; the error says what each split holds."""
        window = self.lookback + self.horizon
        short = [name for name, (start, end) in segments.items() if end - start < window]
        if short:
            sizes = ", ".join(f"{name} {end - start}" + (f" (incl. {borders[name][0] - start} steps of lookback)"
                                                          if name != "train" else "")
                              for name, (start, end) in segments.items())
            raise UserError(f"{self.series().source}: the {short[0]} split is too short for one window: a window "
                            f"needs lookback {self.lookback} + horizon {self.horizon} = {window} steps, the splits "
                            f"have {sizes} of {len(self.series())}; lower data.lookback or data.horizon, or "
                            f"change data.ratios")

    def train_values(self) -> np.ndarray:
        """The output channels of the train segment, in original units [T_train, C_out]: what
        statistical baselines (seasonal naive, ETS) fit on."""
        start, end = self.segments()["train"]
        return self.series().values[start:end][:, self._output_index].copy()

    # ------------------------------------------------------------------ what the model and metrics need

    @property
    def channels_in(self) -> int:
        return len(self._input_index)

    @property
    def channels_out(self) -> int:
        return len(self._output_index)

    @property
    def output_index(self) -> list[int]:
        """Where the output channels are among the input ones (``MS``: the target among all)."""
        return [self._input_index.index(c) for c in self._output_index]

    @property
    def input_columns(self) -> list[str]:
        return [self.series().columns[c] for c in self._input_index]

    @property
    def output_columns(self) -> list[str]:
        return [self.series().columns[c] for c in self._output_index]

    @property
    def time_features(self) -> int:
        """F, the calendar features per step (:func:`apps.timeseries.series.time_features`)."""
        return self._calendar.shape[1]

    @property
    def season(self) -> int:
        return season_length(self.series().freq)

    @property
    def scale_mean(self) -> list[float]:
        """Per input channel, the training mean (the scaler a checkpoint carries to read new data)."""
        return [float(self._mean[c]) for c in self._input_index]

    @property
    def scale_std(self) -> list[float]:
        return [float(self._std[c]) for c in self._input_index]

    @cached_property
    def mase_scale(self) -> list[float]:
        """Per output channel, the in-sample MAE of the seasonal-naive forecast on the train
        segment, ``mean |y_t - y_{t-season}|`` in original units (the 1-step naive forecast's when
        the segment is not longer than a season; 1 for a channel that never changes)."""
        values = self.train_values()
        lag = self.season if len(values) > self.season else 1
        scale = np.abs(values[lag:] - values[:-lag]).mean(axis=0)
        return [float(s) if s > 0 else 1.0 for s in scale]

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Scaled output channels ``[..., C_out]`` -> original units."""
        mean = torch.tensor([self._mean[c] for c in self._output_index], dtype=y.dtype, device=y.device)
        std = torch.tensor([self._std[c] for c in self._output_index], dtype=y.dtype, device=y.device)
        return y * std + mean

    @cached_property
    def _mean(self) -> np.ndarray:
        start, end = self.segments()["train"]
        return self.series().values[start:end].mean(axis=0) if self.scale else np.zeros(len(self.series().columns))

    @cached_property
    def _std(self) -> np.ndarray:
        start, end = self.segments()["train"]
        if not self.scale:
            return np.ones(len(self.series().columns))
        std = self.series().values[start:end].std(axis=0)  # population std, as sklearn's StandardScaler
        return np.where(std > 0, std, 1.0)

    @cached_property
    def _scaled(self) -> torch.Tensor:
        return torch.from_numpy(((self.series().values - self._mean) / self._std).astype(np.float32))

    @cached_property
    def _calendar(self) -> torch.Tensor:
        series = self.series()
        return torch.from_numpy(calendar_features(series.dates, series.freq))

    # ------------------------------------------------------------------ loaders

    def setup(self, stage: str | None = None) -> None:
        """Read and validate the series, find the target and check that every split holds a window:
        a bad file or option fails here, before a model is built."""
        self.target_column()
        self.segments()

    def windows(self, split: str) -> Windows:
        start, end = self.segments()[split]
        stride = self.train_stride if split == "train" else 1
        starts = np.arange(start, end - self.lookback - self.horizon + 1, stride)
        return Windows(self._scaled[:, self._input_index], self._calendar, starts, self.lookback, self.horizon)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(self.windows(split), batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, drop_last=False)


def _ratio_sizes(n: int, ratios: tuple[float, float, float]) -> tuple[int, int, int]:
    """Train and test take their shares rounded down, validation the rest (TSLib's Dataset_Custom)."""
    train, test = int(n * ratios[0]), int(n * ratios[2])
    return train, n - train - test, test


def _check_options(dataset: str, csv: str | None, date_column: str, features: str, id_column: str | None,
                   value_column: str | None, lookback: int, label_len: int, horizon: int, split: str,
                   ratios: tuple[float, float, float], fill: str | None, train_stride: int, batch_size: int) -> None:
    """Options that are wrong whatever the series: one line each, naming the option."""
    if csv is None and dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose {', '.join(DATASETS)}")
    if csv is not None and dataset not in (None, "electricity"):
        raise UserError(f"{csv}: data.csv and data.dataset {dataset!r} both name the series; give one")
    if csv is None and (id_column is not None or value_column is not None or date_column != "date"):
        raise UserError(f"data.date_column, data.id_column and data.value_column describe a data.csv; the bundled "
                        f"{dataset!r} needs none")
    if (id_column is None) != (value_column is None):
        raise UserError(f"{csv}: a long CSV needs both data.id_column and data.value_column")
    if features not in FEATURES:
        raise UserError(f"data.features must be one of {', '.join(FEATURES)}, got {features!r}")
    if split not in SPLIT_KINDS:
        raise UserError(f"data.split must be one of {', '.join(SPLIT_KINDS)}, got {split!r}")
    if len(ratios) != 3 or min(ratios) <= 0 or not math.isclose(sum(ratios), 1.0, abs_tol=1e-6):
        raise UserError(f"data.ratios must be three positive shares (train, valid, test) summing to 1, "
                        f"got {list(ratios)}")
    if fill not in (None, *FILLS):
        raise UserError(f"data.fill must be one of {', '.join(FILLS)} (or unset), got {fill!r}")
    for name, value in (("lookback", lookback), ("horizon", horizon), ("train_stride", train_stride),
                        ("batch_size", batch_size)):
        if value < 1:
            raise UserError(f"data.{name} must be at least 1, got {value}")
    if not 0 <= label_len <= lookback:
        raise UserError(f"data.label_len must be between 0 and data.lookback {lookback}, got {label_len} "
                        f"(Informer's decoder warm-up is the last label_len steps of the lookback)")
