"""Readers for the record files users bring: JSON Lines, delimited text (TSV, CSV, ``|``), FASTA.

Every reader validates the shape of each record, skips a bad one under a reason with its line
number in a :class:`~core.data.reports.SkipReport`, and goes on, so one bad line costs one
record, not the file. What a record *means* (a sentence pair, an utterance, a labelled sequence)
is the app's business: readers hand back plain values with their line numbers, and the app checks
its own fields and adds its own skips to the same report, which then warns once per file.

Each format has a generator (``*_rows``) that fills a report the caller owns and can stop early
(``done()``, e.g. once an app has enough valid records), and a ``read_*`` function that reads a
whole file into ``(rows, report)``. Files may be gzip-compressed (see :func:`read_lines`).
"""
from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.data.reports import SkipReport, read_lines, text_lines
from core.errors import DataError

#: a JSON key and the other names it may go by, canonical name first: ``("audio", "audio_filepath")``
Key = str | tuple[str, ...]


def _never() -> bool:
    return False


def _names(key: Key) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


def describe_keys(keys: Sequence[Key]) -> str:
    """``expected keys "audio" (or "audio_filepath"), "text", "duration"``: for messages."""
    parts = []
    for key in keys:
        first, *aliases = _names(key)
        alias = f" (or {', '.join(json.dumps(a) for a in aliases)})" if aliases else ""
        parts.append(json.dumps(first) + alias)
    return "expected keys " + ", ".join(parts)


# --------------------------------------------------------------------------- JSON Lines


def jsonl_rows(path: Path, report: SkipReport, keys: Sequence[Key] = (), optional: Sequence[Key] = (),
               done: Callable[[], bool] = _never) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each line of ``path`` that is a JSON object holding every key.

    The object comes back under the canonical names of ``keys`` and of the ``optional`` keys it
    has, whichever alias the file used (NeMo's ``audio_filepath`` becomes ``audio``); other keys are
    dropped. Skips: ``invalid JSON`` (also valid JSON that is not an object), ``missing key`` (the
    summary lists the expected keys), plus ``invalid UTF-8`` from :func:`text_lines`.
    """
    for lineno, text in text_lines(path, report, done):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            obj = None
        if not isinstance(obj, dict):
            report.skip("invalid JSON", lineno)
            continue
        row: dict[str, Any] = {}
        for key in (*keys, *optional):
            names = _names(key)
            found = next((name for name in names if name in obj), None)
            if found is not None:
                row[names[0]] = obj[found]
        if not all(_names(key)[0] in row for key in keys):
            report.skip("missing key", lineno, describe_keys(keys))
            continue
        yield lineno, row


def read_jsonl(path: str | Path, keys: Sequence[Key] = (), optional: Sequence[Key] = (),
               limit: int | None = None) -> tuple[list[tuple[int, dict[str, Any]]], SkipReport]:
    """The first ``limit`` (default all) valid rows of :func:`jsonl_rows` and the file's report."""
    path = Path(path)
    report = SkipReport(str(path))
    rows: list[tuple[int, dict[str, Any]]] = []
    rows.extend(jsonl_rows(path, report, keys, optional, lambda: limit is not None and len(rows) >= limit))
    return rows, report


# --------------------------------------------------------------------------- delimited text


def _split(text: str, delimiter: str, quote: str | None) -> list[str]:
    if quote is None:
        return text.split(delimiter)
    return next(csv.reader([text], delimiter=delimiter, quotechar=quote, strict=True))


def delimited_rows(path: Path, report: SkipReport, delimiter: str = "\t", columns: int | tuple[int, int] | Sequence[str] = 2,
                   quote: str | None = None, done: Callable[[], bool] = _never
                   ) -> Iterator[tuple[int, list[str] | dict[str, str]]]:
    """(line number, fields) for each line of ``path`` with the expected number of fields.

    ``columns`` is a field count, a ``(fewest, most)`` range of counts (LJSpeech has 2 or 3), or the
    names of the columns a header line must hold: then the first non-blank line is that header
    (not counted as a record; missing names are a :class:`DataError`), every line must have as many
    fields as the header, and rows come back as ``{name: value}`` of the named columns. Lines are
    split on ``delimiter`` as they are, or, with a ``quote`` character (``'"'`` for CSV), by
    :mod:`csv` so quoted fields may hold the delimiter (not newlines: one record per line).
    Skips: ``missing column``, ``extra column``, ``bad quoting``, ``invalid UTF-8``.
    """
    names: list[str] | None = None
    header: list[str] | None = None
    if isinstance(columns, int):
        fewest = most = columns
    elif len(columns) == 2 and all(isinstance(c, int) for c in columns):
        fewest, most = columns  # type: ignore[misc]
    else:
        names = list(columns)  # type: ignore[arg-type]
    for lineno, text in text_lines(path, report, done):
        try:
            fields = _split(text, delimiter, quote)
        except csv.Error:
            report.skip("bad quoting", lineno)
            continue
        if names is not None and header is None:
            report.total -= 1  # the header is not a record
            header = [f.strip() for f in fields]
            absent = [n for n in names if n not in header]
            if absent:
                raise DataError(f"{path}: header line {lineno} lacks column(s) {', '.join(absent)} "
                                f"(it has: {', '.join(header)})")
            fewest = most = len(header)
            continue
        if len(fields) < fewest or len(fields) > most:
            report.skip("missing column" if len(fields) < fewest else "extra column", lineno)
            continue
        if header is not None:
            yield lineno, {name: fields[header.index(name)] for name in names}  # type: ignore[union-attr]
        else:
            yield lineno, fields


def read_delimited(path: str | Path, delimiter: str = "\t", columns: int | tuple[int, int] | Sequence[str] = 2,
                   quote: str | None = None, limit: int | None = None
                   ) -> tuple[list[tuple[int, list[str] | dict[str, str]]], SkipReport]:
    """The first ``limit`` (default all) valid rows of :func:`delimited_rows` and the file's report."""
    path = Path(path)
    report = SkipReport(str(path))
    rows: list[tuple[int, list[str] | dict[str, str]]] = []
    rows.extend(delimited_rows(path, report, delimiter, columns, quote,
                               lambda: limit is not None and len(rows) >= limit))
    return rows, report


# --------------------------------------------------------------------------- FASTA


@dataclass(frozen=True)
class FastaRecord:
    """One FASTA entry; ``id`` is the header's first word, ``line`` the header's line number."""

    id: str
    description: str
    sequence: str
    line: int


def fasta_records(path: Path, report: SkipReport, alphabet: set[str] | None = None,
                  done: Callable[[], bool] = _never) -> Iterator[FastaRecord]:
    """Entries of a (possibly gzipped) FASTA file: ``>id description`` then sequence lines.

    Sequence lines are joined with whitespace removed; case is kept (lowercase is soft-masking in
    genomes). ``;`` lines are comments. Each entry counts as one record. Skips: ``sequence before
    header`` (the first such stretch counts as one record), ``empty id``, ``empty sequence``,
    ``duplicate id``, ``invalid UTF-8`` (anywhere in the entry), and, with an ``alphabet``,
    ``invalid characters 'X', ...``.
    """
    seen: set[str] = set()
    header: tuple[int, str] | None = None  # (line, header text)
    parts: list[str] = []
    bad_utf8 = False

    def finish() -> FastaRecord | None:
        assert header is not None
        line, text = header
        fields = text.split(None, 1)
        ident = fields[0] if fields else ""
        description = fields[1].strip() if len(fields) > 1 else ""
        sequence = "".join(parts)
        reason = None
        if bad_utf8:
            reason = "invalid UTF-8"
        elif not ident:
            reason = "empty id"
        elif not sequence:
            reason = "empty sequence"
        elif ident in seen:
            reason = "duplicate id"
        elif alphabet is not None and (unknown := sorted(set(sequence) - alphabet)):
            reason = "invalid characters " + ", ".join(repr(c) for c in unknown[:10])
        if reason is not None:
            report.skip(reason, line)
            return None
        seen.add(ident)
        return FastaRecord(ident, description, sequence, line)

    orphan_reported = False
    for lineno, raw in enumerate(read_lines(path), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and text.startswith(">"):
            if header is not None and (record := finish()) is not None:
                yield record
            if done():
                return
            report.total += 1
            header, parts, bad_utf8 = (lineno, text[1:].strip()), [], False
            continue
        if text is not None and (not text.strip() or text.startswith(";")):
            continue
        if header is None:
            if not orphan_reported:
                report.total += 1
                report.skip("sequence before header", lineno)
                orphan_reported = True
            continue
        if text is None:
            bad_utf8 = True
        else:
            parts.append("".join(text.split()))
    if header is not None and (record := finish()) is not None:
        yield record


def read_fasta(path: str | Path, alphabet: set[str] | None = None,
               limit: int | None = None) -> tuple[list[FastaRecord], SkipReport]:
    """The first ``limit`` (default all) valid entries of :func:`fasta_records` and the file's report."""
    path = Path(path)
    report = SkipReport(str(path))
    records: list[FastaRecord] = []
    records.extend(fasta_records(path, report, alphabet, lambda: limit is not None and len(records) >= limit))
    return records, report
