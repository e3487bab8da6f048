"""Reading the interaction logs recommenders learn from, and cutting them into leave-one-out examples.

Four formats are read, each into the same :class:`Interactions` (one entry per event: user id,
item id, timestamp in whole seconds, plus a table of item metadata):

* MovieLens-1M ``ratings.dat`` (``user::item::rating::timestamp``) with ``movies.dat``
  (``item::Title (Year)::Genre|Genre``, latin-1): :func:`read_movielens_1m`;
* MovieLens-100k ``u.data`` (tab-separated user, item, rating, timestamp) with ``u.item``
  (``|``-separated, latin-1, 19 genre flags last, named by ``u.genre`` beside it):
  :func:`read_movielens_100k`;
* RecBole atomic files ``.inter`` / ``.item``: tab-separated under a header of ``name:type``
  fields, read by column name: :func:`read_recbole`;
* Amazon review 5-core JSON lines (``reviewerID``, ``asin``, ``unixReviewTime``) with the
  metadata JSON lines (or the Python-literal lines of the older dumps): :func:`read_amazon`.

:func:`read_interactions` picks the reader from the file name. Ratings are not kept: generative
retrieval learns which item comes next, not how it was rated.

Bad input follows the project's rule: a record that cannot be used is skipped and counted under a
reason with its line number in the file's :class:`~core.data.reports.SkipReport`, each file with
skips gets ONE :class:`~core.data.reports.DataWarning` naming it, and a file with nothing usable
left is a :class:`~core.errors.DataError` naming it. An item whose title, year or genres are
missing is not skipped: it is kept with the gap (empty title, ``year`` None, no genres) and
counted under ``missing ...`` so the gap is never silent. Files are only read, never written.

The rest are pure functions on the result, in the order a data module calls them:
:func:`filter_k_core` (drop users, optionally items, with too few events), :func:`user_sequences`
(each user's items oldest first, ids remapped to 1..N), :func:`leave_one_out` (last item: test,
second-to-last: validation, the rest: training) and :func:`examples` (the (history, target) pairs
of one split, histories cut to the last ``max_history`` items, never showing a later split's item).
"""
from __future__ import annotations

import ast
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from core.data.readers import delimited_rows, jsonl_rows
from core.data.reports import SkipReport, read_lines, text_lines
from core.data.splits import SPLITS
from core.errors import DataError, UserError

# Why an event is skipped. core's readers add "missing column" / "extra column" (a line with too
# few / too many fields), "invalid JSON", "missing key" and "invalid UTF-8".
EMPTY_FIELD = "empty field"
BAD_TIMESTAMP = "timestamp not a number"
DUPLICATE_EVENT = "duplicate event"
UNKNOWN_ITEM = "unknown item"
# Why an item line is skipped; an item missing only metadata is kept and counted as "missing <what>".
DUPLICATE_ITEM = "duplicate item"
KEPT = "item kept"

#: the genre flags of MovieLens-100k's u.item, in order, when no u.genre lies beside it
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western")

#: RecBole column names (before ``:type``) for each field we read, the usual name first
RECBOLE_USER = ("user_id",)
RECBOLE_ITEM = ("item_id",)
RECBOLE_TIME = ("timestamp",)
RECBOLE_TITLE = ("movie_title", "title", "item_name", "name")
RECBOLE_YEAR = ("release_year", "year")
RECBOLE_GENRES = ("class", "genre", "genres", "categories", "category")

#: ``Toy Story (1995)``: MovieLens puts the release year at the end of the title
TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")
#: the index 0 of :attr:`Sequences.item_ids`: padding, not an item (no item id is empty)
PAD = ""


class ItemMeta(TypedDict):
    """What is known about an item: its title ("" when unknown), genres or categories (possibly
    none), release year (None when unknown or when the format has none, as Amazon's)."""

    title: str
    genres: list[str]
    year: int | None


@dataclass
class Interactions:
    """The usable events of one log, in file order, and the metadata of the items."""

    source: str  # the events file, for messages
    user_ids: np.ndarray  # str [E]
    item_ids: np.ndarray  # str [E]
    timestamps: np.ndarray  # int64 [E], seconds
    lines: np.ndarray  # int64 [E]: each event's line in the events file
    items: dict[str, ItemMeta]  # every item the item file described ({} without one)
    reports: tuple[SkipReport, ...]  # one per file read, the events file first

    def __len__(self) -> int:
        return len(self.user_ids)

    @property
    def n_users(self) -> int:
        return len(np.unique(self.user_ids))

    @property
    def n_items(self) -> int:
        """Distinct items among the events (the item table may describe more)."""
        return len(np.unique(self.item_ids))

    def subset(self, keep: np.ndarray) -> Interactions:
        """The events where ``keep`` is true, in the same order; items and reports unchanged."""
        return replace(self, user_ids=self.user_ids[keep], item_ids=self.item_ids[keep],
                       timestamps=self.timestamps[keep], lines=self.lines[keep])


# --------------------------------------------------------------------------- choosing a reader


def detect_format(path: str | Path) -> str:
    """``movielens-1m``, ``movielens-100k``, ``recbole`` or ``amazon``, from the file's name (a
    ``.gz`` ending is ignored: every reader decompresses gzip, whatever the name)."""
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith(".dat"):
        return "movielens-1m"
    if re.fullmatch(r"u[0-9ab]?\.(data|base|test)", name):  # u.data and its splits u1.base, ua.test ...
        return "movielens-100k"
    if name.endswith(".inter"):
        return "recbole"
    if name.endswith((".json", ".jsonl")):
        return "amazon"
    raise UserError(f"{path}: unknown interaction format; expected MovieLens ratings.dat or u.data, a RecBole "
                    f".inter file or Amazon reviews as .json/.jsonl (optionally .gz)")


def read_interactions(path: str | Path, items_path: str | Path | None = None) -> Interactions:
    """Events of ``path`` (and item metadata of ``items_path``, read as the same format's item file:
    movies.dat, u.item, .item or Amazon metadata), the format chosen by :func:`detect_format`."""
    readers = {"movielens-1m": read_movielens_1m, "movielens-100k": read_movielens_100k,
               "recbole": read_recbole, "amazon": read_amazon}
    return readers[detect_format(path)](path, items_path)


# --------------------------------------------------------------------------- the four formats


def read_movielens_1m(ratings: str | Path, movies: str | Path | None = None) -> Interactions:
    """MovieLens-1M (also 10M): ``ratings.dat`` and, optionally, ``movies.dat``."""
    return _rating_rows(Path(ratings), movies, _movielens_1m_items, "::")


def read_movielens_100k(data: str | Path, item: str | Path | None = None) -> Interactions:
    """MovieLens-100k: ``u.data`` (or a split such as ``u1.base``) and, optionally, ``u.item``."""
    return _rating_rows(Path(data), item, _movielens_100k_items, "\t")


def _rating_rows(path: Path, items_path, parse_items, sep: str) -> Interactions:
    """The MovieLens event files: ``user, item, rating, timestamp`` rows split by ``sep``."""
    items, item_reports = _item_table(items_path, parse_items)
    events = _Events(path, items, items_path)
    for line, fields in delimited_rows(events.path, events.report, sep, 4):
        user, item_id, _rating, timestamp = fields
        events.add(line, user, item_id, timestamp)
    return events.finish(items, item_reports)


def read_recbole(inter: str | Path, item: str | Path | None = None) -> Interactions:
    """RecBole atomic files: ``.inter`` with ``user_id``, ``item_id`` and ``timestamp`` columns (any
    order, other columns ignored) and, optionally, ``.item``."""
    items, item_reports = _item_table(item, _recbole_items)
    events = _Events(Path(inter), items, item)
    header, rows = _atomic_file(events.path, events.report)
    user_at, item_at, time_at = (_column(events.path, header, names, required=True)
                                 for names in (RECBOLE_USER, RECBOLE_ITEM, RECBOLE_TIME))
    for line, fields in rows:
        events.add(line, fields[user_at], fields[item_at], fields[time_at])
    return events.finish(items, item_reports)


def read_amazon(reviews: str | Path, meta: str | Path | None = None) -> Interactions:
    """Amazon reviews (a 5-core JSON-lines file) and, optionally, the matching metadata file."""
    items, item_reports = _item_table(meta, _amazon_items)
    events = _Events(Path(reviews), items, meta)
    for line, row in jsonl_rows(events.path, events.report, ("reviewerID", "asin", "unixReviewTime")):
        events.add(line, row["reviewerID"], row["asin"], row["unixReviewTime"])
    return events.finish(items, item_reports)


# --------------------------------------------------------------------------- events


class _Events:
    """Collects the usable events of one file, skipping (and counting) the rest."""

    def __init__(self, path: Path, items: dict[str, ItemMeta] | None, items_path: str | Path | None):
        self.path = path
        self.report = SkipReport(str(path))
        self.items = items
        self.items_name = Path(items_path).name if items_path is not None else None
        self.seen: set[tuple[str, str, int]] = set()
        self.rows: list[tuple[str, str, int, int]] = []  # (user, item, seconds, line)

    def add(self, line: int, user: object, item: object, timestamp: object) -> None:
        user, item = _token(user), _token(item)
        if not user or not item or not _token(timestamp):
            self.report.skip(EMPTY_FIELD, line, "user, item and timestamp must be given")
            return
        seconds = _seconds(timestamp)
        if seconds is None:
            self.report.skip(BAD_TIMESTAMP, line)
            return
        if self.items is not None and item not in self.items:
            self.report.skip(UNKNOWN_ITEM, line, f"not in {self.items_name}")
            return
        if (user, item, seconds) in self.seen:  # the same event twice: keep the first
            self.report.skip(DUPLICATE_EVENT, line, "same user, item and timestamp as an earlier line")
            return
        self.seen.add((user, item, seconds))
        self.rows.append((user, item, seconds, line))

    def finish(self, items: dict[str, ItemMeta] | None, item_reports: list[SkipReport]) -> Interactions:
        self.report.require(len(self.rows))
        self.report.warn()
        users, item_ids, seconds, lines = zip(*self.rows)
        return Interactions(source=str(self.path), user_ids=np.array(users, dtype=str),
                            item_ids=np.array(item_ids, dtype=str), timestamps=np.array(seconds, dtype=np.int64),
                            lines=np.array(lines, dtype=np.int64), items=items or {},
                            reports=(self.report, *item_reports))


def _token(value: object) -> str:
    """An id or timestamp as text (JSON may give numbers); "" for nothing usable (null, a list ...)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


def _seconds(value: object) -> int | None:
    """Whole seconds of a timestamp written as an integer or a decimal (RecBole types timestamps
    ``float``; fractions are floored); None when it is not a finite number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        return int(text)  # exact, also past 2**53
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return math.floor(number) if math.isfinite(number) else None


# --------------------------------------------------------------------------- items


class _ItemTable:
    """Collects the items of one item file: a line without an id, or an id seen before, is skipped;
    an item missing its title, year or genres is kept and counted, so the gap is reported."""

    def __init__(self, path: Path):
        self.path = path
        self.report = SkipReport(str(path))
        self.items: dict[str, ItemMeta] = {}

    def add(self, line: int, item: str, title: str, genres: Iterable[str], year: int | None,
            has_years: bool = True) -> None:
        """``has_years``: the format records a year, so a missing one is a gap worth reporting."""
        item, title = item.strip(), title.strip()
        if not item:
            self.report.skip(EMPTY_FIELD, line, "the item id must be given")
            return
        if item in self.items:
            self.report.skip(DUPLICATE_ITEM, line, "the first line describing it is kept")
            return
        genres = list(dict.fromkeys(g.strip() for g in genres if g.strip()))  # unique, in order
        gaps = [what for what, missing in (("title", not title), ("year", has_years and year is None),
                                           ("genres", not genres)) if missing]
        if gaps:
            self.report.skip(f"missing {'/'.join(gaps)}", line, KEPT)
        self.items[item] = ItemMeta(title=title, genres=genres, year=year)


def _item_table(path: str | Path | None, read: Callable[[Path], _ItemTable]
                ) -> tuple[dict[str, ItemMeta] | None, list[SkipReport]]:
    """The items of ``path`` read with ``read`` (None and no report without a file), warned about."""
    if path is None:
        return None, []
    table = read(Path(path))
    table.report.require(len(table.items))
    table.report.warn()
    return table.items, [table.report]


def _movielens_1m_items(path: Path) -> _ItemTable:
    table = _ItemTable(path)
    for line, text in _latin1_lines(path, table.report):
        fields = text.split("::")
        if len(fields) != 3:
            table.report.skip("missing column" if len(fields) < 3 else "extra column", line)
            continue
        item, titled, genres = fields
        title, year = _title_and_year(titled)
        table.add(line, item, title, genres.split("|"), year)
    return table


def _movielens_100k_items(path: Path) -> _ItemTable:
    """``id|Title (Year)|release date|video release date|IMDb URL|flag|flag...``: a genre's flag is
    1 when the movie has it (flags other than 0/1 give no genres). The year is the release date's
    (``01-Jan-1995``), else the title's."""
    table = _ItemTable(path)
    names = _genre_names(path)
    for line, text in _latin1_lines(path, table.report):
        fields = text.split("|")
        if len(fields) != 5 + len(names):
            table.report.skip("missing column" if len(fields) < 5 + len(names) else "extra column", line)
            continue
        flags = [flag.strip() for flag in fields[5:]]
        genres = [name for name, flag in zip(names, flags) if flag == "1"] if set(flags) <= {"0", "1"} else []
        title, title_year = _title_and_year(fields[1])
        released = re.search(r"(\d{4})\s*$", fields[2])
        table.add(line, fields[0], title, genres, int(released.group(1)) if released else title_year)
    return table


def _genre_names(item_path: Path) -> list[str]:
    """The genre of each u.item flag, from ``u.genre`` (``name|index`` lines) beside u.item, else
    the 19 MovieLens-100k genres."""
    path = item_path.with_name("u.genre")
    if not path.is_file():
        return list(ML100K_GENRES)
    named: dict[int, str] = {}
    for line, raw in enumerate(read_lines(path), start=1):
        text = _decode_latin1(raw)
        if not text.strip():
            continue
        name, _, index = text.rpartition("|")
        if not name.strip() or not index.strip().isdecimal():
            raise DataError(f"{path}: line {line} is not 'genre|index' (got {text!r})")
        named[int(index)] = name.strip()
    if sorted(named) != list(range(len(named))):
        raise DataError(f"{path}: genre indices must be 0 to {len(named) - 1}, each once (got {sorted(named)})")
    return [named[i] for i in range(len(named))]


def _recbole_items(path: Path) -> _ItemTable:
    """A ``.item`` file: ``item_id`` required; title, year and genres by their usual names (a
    ``token_seq`` genre column holds space-separated genres, a ``token`` column one)."""
    table = _ItemTable(path)
    header, rows = _atomic_file(path, table.report)
    item_at = _column(path, header, RECBOLE_ITEM, required=True)
    title_at, year_at, genres_at = (_column(path, header, names) for names in
                                    (RECBOLE_TITLE, RECBOLE_YEAR, RECBOLE_GENRES))
    several = genres_at is not None and header[genres_at][1] == "token_seq"
    for line, fields in rows:
        title = fields[title_at] if title_at is not None else ""
        year_text = fields[year_at].strip() if year_at is not None else ""
        genres_text = fields[genres_at] if genres_at is not None else ""
        genres = genres_text.split() if several else [genres_text]
        table.add(line, fields[item_at], title, genres, int(year_text) if year_text.isdecimal() else None)
    return table


def _amazon_items(path: Path) -> _ItemTable:
    """Metadata lines: JSON, or (older dumps) Python dict literals, read with :func:`ast.literal_eval`
    (parsed, never run). ``categories`` is a list of category paths (``[["Books", "Fiction"]]``),
    ``category`` (2018 dumps) one path; their names become the genres. Amazon gives no year."""
    table = _ItemTable(path)
    for line, text in text_lines(path, table.report):
        record = _json_or_literal(text)
        if not isinstance(record, dict):
            table.report.skip("invalid JSON", line, "neither JSON nor a Python dict literal")
            continue
        if "asin" not in record:
            table.report.skip("missing key", line, 'expected key "asin"')
            continue
        title = record.get("title")
        table.add(line, _token(record["asin"]), title if isinstance(title, str) else "",
                  _category_names(record.get("categories", record.get("category"))), None, has_years=False)
    return table


def _json_or_literal(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _category_names(value: Any) -> list[str]:
    """The names in a category path or a list of them, flattened in order (non-text is ignored)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [name for part in value for name in _category_names(part)]
    return []


def _title_and_year(text: str) -> tuple[str, int | None]:
    """``Toy Story (1995)`` -> (``Toy Story``, 1995); a title without a year comes back whole."""
    match = TITLE_YEAR.match(text.strip())
    if match is None:
        return text.strip(), None
    return match.group("title"), int(match.group("year"))


# --------------------------------------------------------------------------- line helpers


def _decode_latin1(raw: bytes) -> str:
    """MovieLens writes latin-1, but a file someone re-saved as UTF-8 must not turn into mojibake: a
    line that is valid UTF-8 is read as UTF-8 (latin-1 text with accents almost never is)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _latin1_lines(path: Path, report: SkipReport) -> Iterator[tuple[int, str]]:
    """(line number, text) of the non-blank lines of a MovieLens metadata file, each counted."""
    for line, raw in enumerate(read_lines(path), start=1):
        text = _decode_latin1(raw)
        if text.strip():
            report.total += 1
            yield line, text


def _atomic_file(path: Path, report: SkipReport) -> tuple[list[tuple[str, str]], list[tuple[int, list[str]]]]:
    """The header of a RecBole atomic file as (name, type) pairs, and (line, fields) of each row with
    as many fields as the header (others are skipped as missing / extra column)."""
    header: list[tuple[str, str]] | None = None
    rows: list[tuple[int, list[str]]] = []
    for line, text in text_lines(path, report):
        fields = text.split("\t")
        if header is None:
            report.total -= 1  # the header is not a record
            header = [(name.strip(), kind.strip()) for name, _, kind in (f.partition(":") for f in fields)]
            continue
        if len(fields) != len(header):
            report.skip("missing column" if len(fields) < len(header) else "extra column", line)
            continue
        rows.append((line, fields))
    if header is None:
        raise DataError(f"{path}: no header line of name:type fields")
    return header, rows


def _column(path: Path, header: list[tuple[str, str]], names: tuple[str, ...], required: bool = False) -> int | None:
    """Where the first of ``names`` is in ``header``; a missing required column is an error."""
    present = [name for name, _ in header]
    for name in names:
        if name in present:
            return present.index(name)
    if required:
        raise DataError(f"{path}: no {names[0]} column in the header (it has: {', '.join(present)})")
    return None


# --------------------------------------------------------------------------- filtering


def filter_k_core(data: Interactions, min_user_events: int = 5, min_item_events: int = 0) -> Interactions:
    """The events of users with at least ``min_user_events`` events and (when ``min_item_events``
    is set; 0: off) of items with at least ``min_item_events``.

    Dropping an item's events can push a user below its minimum and the other way round, so with
    both set the two filters alternate until neither removes anything: every kept user and item
    then meets its minimum (the k-core). Events stay in file order. Nothing left is an error
    naming the file: there would be nothing to train on."""
    if min_user_events < 0 or min_item_events < 0:
        raise UserError(f"min_user_events and min_item_events must be at least 0, got {min_user_events} and "
                        f"{min_item_events}")
    keep = np.ones(len(data), dtype=bool)
    while True:
        before = int(keep.sum())
        if min_item_events:
            keep &= _frequent(data.item_ids, keep, min_item_events)
        keep &= _frequent(data.user_ids, keep, min_user_events)
        if int(keep.sum()) == before:
            break
    if not keep.any():
        raise DataError(f"{data.source}: no events left after keeping users with at least {min_user_events} "
                        f"events and items with at least {min_item_events} (of {data.n_users} users, "
                        f"{data.n_items} items)")
    return data.subset(keep)


def _frequent(ids: np.ndarray, keep: np.ndarray, minimum: int) -> np.ndarray:
    """Which kept events have an id that occurs at least ``minimum`` times among the kept events."""
    _, inverse, counts = np.unique(ids[keep], return_inverse=True, return_counts=True)
    frequent = np.zeros(len(ids), dtype=bool)
    frequent[np.flatnonzero(keep)] = counts[inverse] >= minimum
    return frequent


# --------------------------------------------------------------------------- sequences and the split


@dataclass
class Sequences:
    """Each user's items oldest first, as contiguous indices: item index i (1..N) is
    ``item_ids[i]``; index 0 (``item_ids[0]``, an empty id) is padding."""

    source: str
    users: list[str]
    items: list[np.ndarray]  # int64, one per user
    item_ids: list[str]  # index -> item id, [0] is PAD
    item_index: dict[str, int]  # item id -> index (1..N)

    @property
    def n_items(self) -> int:
        return len(self.item_ids) - 1


def user_sequences(data: Interactions) -> Sequences:
    """Group events by user, each user's oldest first; events at the same second keep their file
    order (a stable sort), so the same file always gives the same sequences.

    Users and items are numbered in id order (numeric ids as numbers: 2 before 10), not in file
    order, so the same events give the same numbers whichever format or line order they came in."""
    users = _id_order(data.user_ids)
    item_ids = [PAD, *_id_order(data.item_ids)]
    item_index = {item: index for index, item in enumerate(item_ids) if index}
    user_index = {user: index for index, user in enumerate(users)}
    user_codes = np.array([user_index[user] for user in data.user_ids.tolist()], dtype=np.int64)
    item_codes = np.array([item_index[item] for item in data.item_ids.tolist()], dtype=np.int64)
    order = np.lexsort((np.arange(len(data)), data.timestamps, user_codes))  # last key sorts first
    starts = np.searchsorted(user_codes[order], np.arange(len(users) + 1))
    sequences = [item_codes[order[a:b]] for a, b in itertools.pairwise(starts)]
    return Sequences(source=data.source, users=users, items=sequences, item_ids=item_ids, item_index=item_index)


def _id_order(ids: np.ndarray) -> list[str]:
    """The distinct ids, numeric ones first in numeric order, then the others alphabetically."""
    def key(text: str) -> tuple[int, int, str]:
        return (0, int(text), text) if text.isascii() and text.isdigit() else (1, 0, text)

    return sorted(set(ids.tolist()), key=key)


@dataclass
class LeaveOneOut:
    """Chronological leave-one-out: per user, the last item is the test target, the one before it
    the validation target, and everything earlier is training."""

    users: list[str]
    train: list[np.ndarray]  # int64 item indices, oldest first, one per user
    valid: np.ndarray  # int64 [U]
    test: np.ndarray  # int64 [U]


#: a user needs a training item to have any history, a validation item and a test item
MIN_SPLIT_EVENTS = 3


def leave_one_out(sequences: Sequences) -> LeaveOneOut:
    """Split every user's sequence; a user with fewer than three events cannot be split (filter
    with ``min_user_events`` of at least 3 first)."""
    short = [user for user, items in zip(sequences.users, sequences.items) if len(items) < MIN_SPLIT_EVENTS]
    if short:
        raise UserError(f"{sequences.source}: {len(short)} users have fewer than {MIN_SPLIT_EVENTS} events (first "
                        f"{short[0]!r}); leave-one-out needs {MIN_SPLIT_EVENTS}: filter with min_user_events >= "
                        f"{MIN_SPLIT_EVENTS}")
    return LeaveOneOut(users=list(sequences.users), train=[items[:-2] for items in sequences.items],
                       valid=np.array([items[-2] for items in sequences.items], dtype=np.int64),
                       test=np.array([items[-1] for items in sequences.items], dtype=np.int64))


@dataclass(frozen=True)
class Example:
    """Predict ``target`` (an item index) from ``history`` (item indices, oldest first)."""

    user: str
    history: tuple[int, ...]
    target: int


def examples(split: LeaveOneOut, which: str, max_history: int = 20) -> list[Example]:
    """The (history, target) examples of split ``which`` (train, valid or test), users in order.

    * train: every training item after a user's first is a target, its history the training items
      before it (the first item has no history to predict from);
    * valid: the validation item, from the training items;
    * test: the test item, from the training items and the validation item.

    Histories keep the last ``max_history`` items. No example ever shows a later split's item: the
    training examples see neither the validation nor the test item, validation sees no test item.
    (A user who interacted with the same item twice has it in the history as the earlier event:
    that is the user's history, not the held-out event.)"""
    if which not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)}, got {which!r}")
    if max_history < 1:
        raise UserError(f"max_history must be at least 1, got {max_history}")
    out: list[Example] = []
    for user, train, valid, test in zip(split.users, split.train, split.valid.tolist(), split.test.tolist()):
        items = train.tolist()
        if which == "train":
            out.extend(Example(user, tuple(items[max(0, t - max_history):t]), items[t]) for t in range(1, len(items)))
        elif which == "valid":
            out.append(Example(user, tuple(items[-max_history:]), valid))
        else:
            out.append(Example(user, tuple([*items, valid][-max_history:]), test))
    return out
