"""Reading and validating the series users bring, and the calendar facts a forecaster needs.

Two CSV layouts are read (gzip too, whatever the file's name):

* wide, as ETT and the long-horizon benchmarks ship them: a ``date`` column, then one column per
  channel (``date,HUFL,HULL,...,OT``); :func:`read_wide_csv`;
* long, one observation per line (``id,time,value``), as M4-style and database exports come:
  :func:`read_long_csv` pivots it so that each id becomes a channel named after it.

Both end in :func:`validate_series`, which refuses what would silently corrupt a forecast: dates
that do not parse, repeat or go back in time (always errors: which row to keep, or what order was
meant, is the user's call), values that are not finite numbers and missing timestamps (gaps
against the inferred frequency). Those last two are errors too unless the user asks for ``fill``
(``ffill`` or ``interpolate``); then they are filled and ONE :class:`~core.data.reports.DataWarning`
says how many and where, so nothing is ever filled silently. Every message is one line naming the
file, the column and the first CSV line numbers. The input file is only read, never changed.

:func:`time_features` and :func:`season_length` turn the inferred frequency into the calendar
inputs of Informer-style models and the seasonal period of seasonal-naive forecasts and MASE.
"""
from __future__ import annotations

import csv
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from core.data.reports import SHOWN_LINES, DataWarning, read_lines
from core.errors import DataError

FILLS = ("ffill", "interpolate")
#: the fewest rows a series may have: the frequency is inferred from at least three timestamps
MIN_ROWS = 3
#: cells that mean "no value" rather than text (a column of them is missing data, not a label column)
MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none", "-", "?"})
FILL_HINT = "give data.fill ffill|interpolate to fill them"


@dataclass
class Series:
    """A validated, regularly spaced multichannel series."""

    dates: np.ndarray  # datetime64[ns] [T], strictly increasing on the ``freq`` grid
    values: np.ndarray  # float64 [T, C], all finite
    columns: list[str]  # the C channel names
    freq: str | None  # pandas offset alias ("30min", "h", "D", "W-SAT", "MS" ...)
    source: str  # the file (or dataset) the series came from, for messages
    lines: np.ndarray  # int [T]: the CSV line each step came from (0: a timestamp inserted by fill)

    def __len__(self) -> int:
        return len(self.dates)

    def column_index(self, name: str, option: str) -> int:
        """Where channel ``name`` is; an unknown name is an error naming the ``option`` that gave it."""
        if name not in self.columns:
            raise DataError(f"{self.source}: {option} {name!r} is not a column (it has: {', '.join(self.columns)})")
        return self.columns.index(name)


# --------------------------------------------------------------------------- reading


def read_wide_csv(path: str | Path, date_column: str = "date", columns: list[str] | None = None,
                  fill: str | None = None) -> Series:
    """An ETT-style CSV: a date column and one numeric column per channel (``columns``: only these,
    in this order; default every column but the date)."""
    path = Path(path)
    header, rows = _csv_rows(path)
    date_at = _header_index(path, header, date_column, "data.date_column")
    if columns is None:
        names = [name for name in header if name != date_column]
    else:
        names = list(columns)
        for name in names:
            _header_index(path, header, name, "data.columns")
    if not names:
        raise DataError(f"{path}: no value columns besides {date_column!r}")
    if len(set(names)) != len(names):
        raise DataError(f"{path}: data.columns names a column twice ({', '.join(names)})")
    lines = np.array([line for line, _ in rows], dtype=np.int64)
    dates = _parse_dates(path, date_column, [fields[date_at] for _, fields in rows], lines)
    positions = [header.index(name) for name in names]
    values = np.column_stack([_numbers(path, name, [fields[at] for _, fields in rows], lines)
                              for name, at in zip(names, positions)])
    return validate_series(str(path), date_column, dates, values, names, lines, fill)


def read_long_csv(path: str | Path, date_column: str, id_column: str, value_column: str,
                  columns: list[str] | None = None, fill: str | None = None) -> Series:
    """A long CSV, one ``(id, time, value)`` per line (other columns are ignored), pivoted so each
    id is a channel named after it (``columns``: only these ids, in this order; default every id in
    order of first appearance). A time an id has no line for is a missing value of that channel."""
    path = Path(path)
    header, rows = _csv_rows(path)
    at = {name: _header_index(path, header, name, option) for name, option in
          ((date_column, "data.date_column"), (id_column, "data.id_column"), (value_column, "data.value_column"))}
    if columns is not None:
        known = {fields[at[id_column]].strip() for _, fields in rows}
        absent = [name for name in columns if name not in known]
        if absent:
            raise DataError(f"{path}: column {id_column!r} has no id {absent[0]!r} (data.columns)")
        wanted = set(columns)
        rows = [(line, fields) for line, fields in rows if fields[at[id_column]].strip() in wanted]
    lines = np.array([line for line, _ in rows], dtype=np.int64)
    dates = _parse_dates(path, date_column, [fields[at[date_column]] for _, fields in rows], lines)
    values = _numbers(path, value_column, [fields[at[value_column]] for _, fields in rows], lines)
    ids = [fields[at[id_column]].strip() for _, fields in rows]
    step_dates, table, cell_lines, names = _pivot(path, ids, dates, values, lines)
    if columns is not None:
        order = [names.index(name) for name in columns]
        table, cell_lines, names = table[:, order], cell_lines[:, order], list(columns)
    present = np.where(cell_lines > 0, cell_lines, np.iinfo(np.int64).max)
    step_lines = present.min(axis=1)  # each step's first line (every step has at least one)
    return validate_series(str(path), date_column, step_dates, table, names, step_lines, fill, cell_lines)


def _csv_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header (first non-blank line) and ``(line number, fields)`` of every other non-blank line;
    a row whose field count differs from the header's is an error naming its lines."""
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    for line, raw in enumerate(read_lines(path), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{path}: line {line} is not valid UTF-8") from None
        try:
            fields = next(csv.reader([text], strict=True))
        except csv.Error:
            raise DataError(f"{path}: line {line}: bad CSV quoting") from None
        if header is None:
            header = [name.strip() for name in fields]
            _check_header(path, header, line)
        else:
            rows.append((line, fields))
    bad = [line for line, fields in rows if len(fields) != len(header or [])]
    if bad:
        raise DataError(f"{path}: wrong number of fields (the header has {len(header or [])}) at {_lines(bad)}")
    if header is None or not rows:
        raise DataError(f"{path}: no rows below the header")
    return header, rows


def _check_header(path: Path, header: list[str], line: int) -> None:
    if "" in header:
        raise DataError(f"{path}: header line {line} has an empty column name (column {header.index('') + 1})")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataError(f"{path}: header line {line} names column {repeated[0]!r} twice")


def _header_index(path: Path, header: list[str], name: str, option: str) -> int:
    if name not in header:
        raise DataError(f"{path}: no column {name!r} ({option}); the header has: {', '.join(header)}")
    return header.index(name)


def _parse_dates(path: Path, column: str, texts: list[str], lines: np.ndarray) -> pd.DatetimeIndex:
    """Timestamps of ``texts`` (one format, inferred from the first; times with a UTC offset are
    converted to UTC). A text that does not parse is always an error: fill never invents a date."""
    stripped = pd.Series([text.strip() for text in texts], dtype=object)
    with warnings.catch_warnings():  # "could not infer format": the NaT check below is the report
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(stripped, errors="coerce", utc=True)
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        raise DataError(f"{path}: column {column!r}: unparsable dates at {_lines(lines[bad])} "
                        f"(first {texts[bad[0]].strip()!r}); dates must parse, fill does not repair them")
    return pd.DatetimeIndex(parsed).tz_localize(None).as_unit("ns")


def _numbers(path: Path, column: str, texts: list[str], lines: np.ndarray) -> np.ndarray:
    """float64 values of one column; cells that are not finite numbers become NaN for
    :func:`validate_series` to report (or fill). A column that is mostly text is not a series at
    all: that is an error naming it."""
    values = np.array(pd.to_numeric(np.array(texts, dtype=object), errors="coerce"), dtype=np.float64)  # (a copy)
    text = [i for i in np.flatnonzero(np.isnan(values)) if texts[i].strip().lower() not in MISSING_TOKENS]
    if 2 * len(text) > len(values) or not np.isfinite(values).any():
        first = text[0] if text else 0
        raise DataError(f"{path}: column {column!r} is not numeric (e.g. {texts[first].strip()!r} at line "
                        f"{lines[first]}); choose the numeric columns with data.columns")
    values[~np.isfinite(values)] = np.nan  # inf is as unusable as a missing value
    return values


def _pivot(path: Path, ids: list[str], dates: pd.DatetimeIndex, values: np.ndarray, lines: np.ndarray
           ) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, list[str]]:
    """Long rows -> (sorted step dates, values [T, C] with NaN where an id has no line, the line of
    each cell [T, C] (0: none), the ids). An id with two lines for one time is an error."""
    id_codes, names = pd.factorize(pd.Series(ids, dtype=object), sort=False)
    time_codes, steps = pd.factorize(dates, sort=True)
    cell = time_codes * len(names) + id_codes
    order = np.argsort(cell, kind="stable")
    repeated = order[1:][cell[order][1:] == cell[order][:-1]]
    if len(repeated):
        first = repeated[0]
        raise DataError(f"{path}: id {ids[first]!r} has time {dates[first]} more than once "
                        f"({_lines(lines[repeated])}); each (id, time) must appear once (duplicates are always "
                        f"an error)")
    table = np.full((len(steps), len(names)), np.nan)
    cell_lines = np.zeros((len(steps), len(names)), dtype=np.int64)
    table[time_codes, id_codes] = values
    cell_lines[time_codes, id_codes] = lines
    return pd.DatetimeIndex(steps), table, cell_lines, [str(name) for name in names]


# --------------------------------------------------------------------------- validation


def validate_series(source: str, date_column: str, dates: pd.DatetimeIndex, values: np.ndarray, columns: list[str],
                    lines: np.ndarray, fill: str | None = None, cell_lines: np.ndarray | None = None) -> Series:
    """Check a parsed table and return it as a :class:`Series` (or raise one :class:`DataError`).

    ``lines`` [T] is each row's CSV line; ``cell_lines`` [T, C] each value's, where it differs
    (long files; 0 where no line gave the value). Dates must be increasing and unique (always
    errors); values must be finite and timestamps must cover the inferred frequency without gaps,
    unless ``fill`` (``ffill``: the last value before; ``interpolate``: linear in time; values
    before the first observation take the first one) fills them, with one warning. A constant
    column is warned about: it carries no signal and the scaler uses std 1 for it."""
    if fill not in (None, *FILLS):
        raise DataError(f"{source}: data.fill must be ffill or interpolate (or unset), got {fill!r}")
    if cell_lines is None:
        cell_lines = np.broadcast_to(lines[:, None], values.shape)
    _check_order(source, date_column, dates, lines)
    if len(dates) < MIN_ROWS:
        raise DataError(f"{source}: only {len(dates)} rows; a series needs at least {MIN_ROWS}")
    freq = _frequency(source, date_column, dates, lines)
    grid = pd.date_range(dates[0], dates[-1], freq=freq)
    at = grid.get_indexer(dates)  # every date is on the grid (checked by _frequency)
    gaps = np.setdiff1d(np.arange(len(grid)), at)
    missing = ~np.isfinite(values)
    if fill is None:
        _refuse_missing(source, columns, missing, cell_lines, dates)
        if len(gaps):
            raise DataError(f"{source}: column {date_column!r}: {len(gaps)} missing timestamps against the "
                            f"frequency {freq!r} ({_gap_places(gaps, at, lines)}); {FILL_HINT}")
    full = np.full((len(grid), values.shape[1]), np.nan)
    full[at] = values
    full_lines = np.zeros(len(grid), dtype=np.int64)
    full_lines[at] = lines
    if len(gaps) or missing.any():
        full = _fill(full, fill)
        warnings.warn(_fill_summary(source, columns, fill, gaps, at, lines, missing, cell_lines), DataWarning,
                      stacklevel=2)
    _warn_constant(source, columns, full)
    return Series(dates=grid.as_unit("ns").to_numpy(), values=full, columns=list(columns), freq=freq,
                  source=source, lines=full_lines)


def _check_order(source: str, column: str, dates: pd.DatetimeIndex, lines: np.ndarray) -> None:
    step = np.diff(dates.asi8)
    back = np.flatnonzero(step < 0) + 1
    if len(back):
        raise DataError(f"{source}: column {column!r}: timestamps go back in time at {_lines(lines[back])}; "
                        f"sort the file by date (unsorted dates are always an error)")
    repeated = np.flatnonzero(step == 0) + 1
    if len(repeated):
        raise DataError(f"{source}: column {column!r}: duplicated timestamps at {_lines(lines[repeated])} "
                        f"(first {dates[repeated[0]]}); keep one row per time (duplicates are always an error)")


def _frequency(source: str, column: str, dates: pd.DatetimeIndex, lines: np.ndarray) -> str:
    """The offset alias the dates follow. :func:`pandas.infer_freq` needs a series without gaps, so
    with gaps it is asked about short stretches instead (most of which have none) and the commonest
    answer wins; failing that, the most common step. The alias must put every date on its grid."""
    whole = _infer(dates)
    if whole is not None:
        return whole
    votes: Counter[str] = Counter()
    for start in np.unique(np.linspace(0, max(len(dates) - 8, 0), num=64).astype(int)):
        alias = _infer(dates[start:start + 8])
        if alias is not None:
            votes[alias] += 1
    steps = pd.Series(np.diff(dates.asi8)).value_counts()
    common = pd.Timedelta(int(steps.index[0]))
    candidates = [alias for alias, _ in votes.most_common()] + [_step_alias(common)]
    for alias in candidates:
        grid = pd.date_range(dates[0], dates[-1], freq=alias)
        if dates.isin(grid).all():
            return alias
    off = np.flatnonzero(~dates.isin(pd.date_range(dates[0], dates[-1], freq=candidates[-1])))
    raise DataError(f"{source}: column {column!r}: timestamps follow no regular frequency (the most common step "
                    f"is {candidates[-1]}; off its grid at {_lines(lines[off])})")


def _infer(dates: pd.DatetimeIndex) -> str | None:
    if len(dates) < 3:
        return None
    with warnings.catch_warnings():  # pandas 3 announces that infer_freq will return an offset
        warnings.simplefilter("ignore")
        alias = pd.infer_freq(dates)
    return alias if alias is None or isinstance(alias, str) else alias.freqstr


def _step_alias(step: pd.Timedelta) -> str:
    """``7D`` for a week of days (pandas would write ``168h``), else pandas' own alias."""
    day = pd.Timedelta(days=1)
    if step >= day and step % day == pd.Timedelta(0):
        return f"{step // day}D"
    return to_offset(step).freqstr


def _refuse_missing(source: str, columns: list[str], missing: np.ndarray, cell_lines: np.ndarray,
                    dates: pd.DatetimeIndex) -> None:
    """Without ``fill``, the first column holding a value that is not a finite number is an error."""
    bad = np.flatnonzero(missing.any(axis=0))
    if len(bad):
        c = bad[0]
        rows = np.flatnonzero(missing[:, c])
        raise DataError(f"{source}: column {columns[c]!r}: {_missing_places(rows, cell_lines[:, c], dates)}; "
                        f"{FILL_HINT}")


def _missing_places(rows: np.ndarray, lines: np.ndarray, dates: pd.DatetimeIndex) -> str:
    """``not a number at lines 17, 240 (2 rows)``; in a long file also ``no line for 3 times (first …)``."""
    given, absent = rows[lines[rows] > 0], rows[lines[rows] == 0]
    parts = []
    if len(given):
        parts.append(f"not a number at {_lines(lines[given])} ({len(given)} row{'s' * (len(given) > 1)})")
    if len(absent):
        parts.append(f"no line for {len(absent)} time{'s' * (len(absent) > 1)} (first {dates[absent[0]]})")
    return "; ".join(parts)


def _gap_places(gaps: np.ndarray, at: np.ndarray, lines: np.ndarray) -> str:
    """``after lines 17, 240``: the rows after which timestamps are missing."""
    before = np.unique(np.searchsorted(at, gaps) - 1)
    shown = ", ".join(str(line) for line in lines[before][:SHOWN_LINES])
    more = f" (+{len(before) - SHOWN_LINES} more)" if len(before) > SHOWN_LINES else ""
    return f"after line{'s' * (len(before) > 1)} {shown}{more}"


def _fill(values: np.ndarray, fill: str) -> np.ndarray:
    frame = pd.DataFrame(values)
    if fill == "ffill":
        frame = frame.ffill()
    else:
        frame = frame.interpolate(method="linear", limit_direction="forward")
    return frame.bfill().to_numpy(dtype=np.float64)  # before the first observation: the first value


def _fill_summary(source: str, columns: list[str], fill: str, gaps: np.ndarray, at: np.ndarray, lines: np.ndarray,
                  missing: np.ndarray, cell_lines: np.ndarray) -> str:
    how = "forward fill" if fill == "ffill" else "linear interpolation"
    parts = []
    if len(gaps):
        parts.append(f"{len(gaps)} missing timestamps ({_gap_places(gaps, at, lines)})")
    for c in np.flatnonzero(missing.any(axis=0)):
        rows = np.flatnonzero(missing[:, c])
        where = cell_lines[rows, c]
        shown = f" at {_lines(where[where > 0])}" if (where > 0).any() else ""
        parts.append(f"{len(rows)} values of column {columns[c]!r}{shown}")
    return f"{source}: filled {'; '.join(parts)} by {how} (data.fill {fill})"


def _warn_constant(source: str, columns: list[str], values: np.ndarray) -> None:
    flat = [name for name, column in zip(columns, values.T) if np.ptp(column) == 0]
    if flat:
        names = ", ".join(repr(name) for name in flat)
        warnings.warn(f"{source}: column{'s' * (len(flat) > 1)} {names} constant: no signal to learn "
                      f"(scaling uses std 1 for it)", DataWarning, stacklevel=3)


def _lines(lines) -> str:
    """``line 4`` / ``lines 4, 9, 17 (+3 more)``: the first offending lines, as SkipReport lists them."""
    lines = [int(line) for line in lines]
    shown = ", ".join(map(str, lines[:SHOWN_LINES]))
    more = f" (+{len(lines) - SHOWN_LINES} more)" if len(lines) > SHOWN_LINES else ""
    return f"line{'s' * (len(lines) > 1)} {shown}{more}"


# --------------------------------------------------------------------------- calendar


def _calendar_unit(freq: str | None) -> tuple[str | None, int]:
    """(unit, multiple) of an offset alias: ``30min`` -> (minute, 30), ``W-SAT`` -> (week, 1);
    (None, 1) for no frequency. Seven days count as a week."""
    if freq is None:
        return None, 1
    offset = to_offset(freq)
    units = [((pd.offsets.BusinessDay, pd.offsets.CustomBusinessDay), "bday"), (pd.offsets.BusinessHour, "hour"),
             (pd.offsets.Week, "week"), (pd.offsets.Day, "day"), (pd.offsets.Hour, "hour"),
             (pd.offsets.Minute, "minute"),
             ((pd.offsets.Second, pd.offsets.Milli, pd.offsets.Micro, pd.offsets.Nano), "second"),
             ((pd.offsets.MonthBegin, pd.offsets.MonthEnd, pd.offsets.BusinessMonthBegin,
               pd.offsets.BusinessMonthEnd, pd.offsets.SemiMonthBegin, pd.offsets.SemiMonthEnd), "month"),
             ((pd.offsets.QuarterBegin, pd.offsets.QuarterEnd, pd.offsets.BQuarterBegin,
               pd.offsets.BQuarterEnd), "quarter"),
             ((pd.offsets.YearBegin, pd.offsets.YearEnd, pd.offsets.BYearBegin, pd.offsets.BYearEnd), "year")]
    for kinds, unit in units:
        if isinstance(offset, kinds):
            if unit == "day" and offset.n % 7 == 0:
                return "week", offset.n // 7
            return unit, offset.n
    return None, 1


def season_length(freq: str | None) -> int:
    """The seasonal period, in steps, of seasonal-naive forecasts and MASE: a day for sub-daily data
    (``30min`` -> 48, ``15min`` -> 96, ``h`` -> 24), a week for daily (7; business days 5), a year
    for weekly (52), monthly (12) and quarterly (4) data; 1 (no season) for yearly, second-level or
    unknown frequencies and for multiples that do not divide the period."""
    unit, n = _calendar_unit(freq)
    period = {"minute": 24 * 60, "hour": 24, "day": 7, "bday": 5, "week": 52, "month": 12, "quarter": 4}.get(unit)
    if period is None or period % n:
        return 1
    return period // n


def steps_per_day(freq: str | None) -> int | None:
    """How many steps make a day for a fixed step that divides one (``15min`` -> 96, ``h`` -> 24,
    ``D`` -> 1); None for calendar steps (business days, weeks, months) and steps that do not."""
    if freq is None:
        return None
    offset = to_offset(freq)
    if isinstance(offset, pd.offsets.Day):  # (not a fixed Tick in pandas 3: a calendar day)
        step = pd.Timedelta(days=offset.n)
    elif isinstance(offset, pd.offsets.Tick):
        step = pd.Timedelta(offset.nanos)
    else:
        return None
    day = pd.Timedelta(days=1)
    return day // step if step <= day and day % step == pd.Timedelta(0) else None


#: Informer / Time-Series-Library "timeF" features: each maps a calendar field to [-0.5, 0.5]
CALENDAR = {
    "second_of_minute": lambda d: d.second / 59.0 - 0.5,
    "minute_of_hour": lambda d: d.minute / 59.0 - 0.5,
    "hour_of_day": lambda d: d.hour / 23.0 - 0.5,
    "day_of_week": lambda d: d.day_of_week / 6.0 - 0.5,
    "day_of_month": lambda d: (d.day - 1) / 30.0 - 0.5,
    "day_of_year": lambda d: (d.day_of_year - 1) / 365.0 - 0.5,
    "month_of_year": lambda d: (d.month - 1) / 11.0 - 0.5,
    "week_of_year": lambda d: (d.isocalendar().week.to_numpy() - 1) / 52.0 - 0.5,
}

#: which features each frequency gets (TSLib's table; yearly data keeps the month so F >= 1, and an
#: unknown frequency gets the minute-level set)
FEATURES_BY_UNIT = {
    "second": ["second_of_minute", "minute_of_hour", "hour_of_day", "day_of_week", "day_of_month", "day_of_year"],
    "minute": ["minute_of_hour", "hour_of_day", "day_of_week", "day_of_month", "day_of_year"],
    "hour": ["hour_of_day", "day_of_week", "day_of_month", "day_of_year"],
    "day": ["day_of_week", "day_of_month", "day_of_year"],
    "bday": ["day_of_week", "day_of_month", "day_of_year"],
    "week": ["day_of_month", "week_of_year"],
    "month": ["month_of_year"],
    "quarter": ["month_of_year"],
    "year": ["month_of_year"],
    None: ["minute_of_hour", "hour_of_day", "day_of_week", "day_of_month", "day_of_year"],
}


def time_feature_names(freq: str | None) -> list[str]:
    """The columns :func:`time_features` returns for ``freq``, in order."""
    return list(FEATURES_BY_UNIT[_calendar_unit(freq)[0]])


def time_features(dates: np.ndarray, freq: str | None) -> np.ndarray:
    """float32 [T, F] calendar features in [-0.5, 0.5], the columns :func:`time_feature_names` lists:
    the fields finer than the data's step carry nothing and are left out (hourly data: hour of
    day, day of week, day of month, day of year)."""
    index = pd.DatetimeIndex(dates)
    columns = [np.asarray(CALENDAR[name](index), dtype=np.float64) for name in time_feature_names(freq)]
    return np.stack(columns, axis=1).astype(np.float32)
