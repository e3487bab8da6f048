"""Real series that a fresh machine can build offline from packages, written once as wide CSVs.

Each bundled series becomes ``<cache>/timeseries/<name>.csv`` (``date,<column>``) and is then read
through :func:`apps.timeseries.series.read_wide_csv`, exactly as a user's file would be: the
bundled path is the user path, so its validation is the one users get.

* ``electricity`` (the default): half-hourly electricity demand of England and Wales in megawatts,
  Monday 5 June to Sunday 27 August 2000, 4,032 steps (Taylor 2003; R's ``forecast::taylor``). The
  ``pmdarima`` wheel ships it as a numpy array literal in ``pmdarima/datasets/taylor.py``; the
  literal is read with :mod:`ast`, so pmdarima is neither installed nor imported.
* ``sunspots``: monthly mean relative sunspot numbers, January 1749 to December 1983, 2,820
  steps (R's ``datasets::sunspots``), from the same wheel's ``sunspots.txt.gz`` (12 months a line,
  one line per year, as pmdarima's ``load_sunspots`` reads it).
* ``co2``: weekly atmospheric CO2 at Mauna Loa in ppm, March 1958 to December 2001, 2,284 weeks
  (statsmodels' ``co2``). It has 59 missing weeks, left empty in the CSV: reading it needs
  ``data.fill``.
"""
from __future__ import annotations

import ast
import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.splits import default_cache_dir
from core.data.wheels import wheel_members
from core.errors import DataError, UserError
from core.io import atomic_write_text

PMDARIMA_WHEEL = "pmdarima==2.1.1"
TAYLOR_MEMBER = "pmdarima/datasets/taylor.py"
SUNSPOTS_MEMBER = "pmdarima/datasets/data/sunspots.txt.gz"
TAYLOR_STEPS = 4032

DATASETS = {
    "electricity": "half-hourly electricity demand of England and Wales in MW, 2000-06-05 to 2000-08-27 "
                   "(Taylor 2003, from the pmdarima wheel; 4,032 steps, 30min)",
    "sunspots": "monthly mean sunspot numbers, 1749-1983 (from the pmdarima wheel; 2,820 steps, monthly)",
    "co2": "weekly Mauna Loa CO2 in ppm, 1958-2001 (from statsmodels; 2,284 steps, weekly, 59 missing: "
           "needs data.fill)",
}
#: the one column of each bundled series
COLUMNS = {"electricity": "demand", "sunspots": "sunspots", "co2": "co2"}


def bundled_series(name: str, cache_dir: str | Path | None = None) -> Path:
    """The wide CSV of bundled series ``name``, built on first use."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose {', '.join(DATASETS)}")
    root = Path(cache_dir or default_cache_dir()) / "timeseries"
    path = root / f"{name}.csv"
    if not path.is_file():
        dates, values = BUILDERS[name](root)
        atomic_write_text(path, _wide_csv(dates, COLUMNS[name], values))
    return path


def _wide_csv(dates: pd.DatetimeIndex, column: str, values: np.ndarray) -> str:
    """``date,<column>`` lines; a missing value is an empty field (the reader reports or fills it)."""
    stamps = dates.strftime("%Y-%m-%d %H:%M:%S" if (dates != dates.normalize()).any() else "%Y-%m-%d")
    rows = [f"{stamp},{'' if np.isnan(value) else repr(float(value))}" for stamp, value in zip(stamps, values)]
    return "\n".join([f"date,{column}", *rows]) + "\n"


def _pmdarima_file(root: Path, member: str) -> Path:
    members = {TAYLOR_MEMBER: "taylor.py", SUNSPOTS_MEMBER: "sunspots.txt.gz"}
    return wheel_members(PMDARIMA_WHEEL, members, root / "pmdarima")[member]


def _electricity(root: Path) -> tuple[pd.DatetimeIndex, np.ndarray]:
    path = _pmdarima_file(root, TAYLOR_MEMBER)
    values = np.array(_array_literal(path), dtype=np.float64)
    if len(values) != TAYLOR_STEPS:
        raise DataError(f"{path}: expected the {TAYLOR_STEPS} half-hours of Taylor's series, found {len(values)}")
    return pd.date_range("2000-06-05 00:00", periods=len(values), freq="30min"), values


def _array_literal(path: Path) -> list[float]:
    """The numbers of the longest list literal in a Python file (``np.array([22262, 21756, ...])``),
    read with :mod:`ast`: the file is parsed, never run."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lists = [node for node in ast.walk(tree) if isinstance(node, ast.List)]
    if not lists:
        raise DataError(f"{path}: no list literal holding the series")
    longest = max(lists, key=lambda node: len(node.elts))
    try:
        return [float(x) for x in ast.literal_eval(longest)]
    except (ValueError, TypeError) as err:
        raise DataError(f"{path}: the series literal is not a list of numbers ({err})") from None


def _sunspots(root: Path) -> tuple[pd.DatetimeIndex, np.ndarray]:
    path = _pmdarima_file(root, SUNSPOTS_MEMBER)
    text = gzip.decompress(path.read_bytes()).decode("ascii")
    values = np.array([float(x) for x in text.split()], dtype=np.float64)  # a year a line, January first
    return pd.date_range("1749-01-01", periods=len(values), freq="MS"), values


def _co2(root: Path) -> tuple[pd.DatetimeIndex, np.ndarray]:
    from statsmodels.datasets import co2  # statsmodels.api.datasets.co2, without importing all of statsmodels

    frame = co2.load_pandas().data
    return pd.DatetimeIndex(frame.index), frame["co2"].to_numpy(dtype=np.float64)


BUILDERS = {"electricity": _electricity, "sunspots": _sunspots, "co2": _co2}
