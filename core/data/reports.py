"""Skipping bad records without losing track of them.

Data modules never crash deep inside training on a bad record: readers skip it, count it under a
reason with its line number in a :class:`SkipReport`, and each file then gets ONE
:class:`DataWarning` naming the file, the reasons and the first offending lines. When nothing
usable is left, :meth:`SkipReport.require` fails with a message that names the file.
"""
from __future__ import annotations

import gzip
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import DataError

SHOWN_LINES = 5  # offending line numbers listed per reason in a warning


class DataWarning(UserWarning):
    """Records were skipped while reading a corpus (one warning per file)."""


@dataclass
class SkipReport:
    """Counts skipped records per reason for one file, and turns them into one message."""

    origin: str
    unit: str = "line"
    total: int = 0
    skipped: dict[str, list[int]] = field(default_factory=dict)
    #: what a reason means for this file (e.g. the keys a record needs), shown once in the summary
    details: dict[str, str] = field(default_factory=dict)

    def skip(self, reason: str, line: int, detail: str | None = None) -> None:
        self.skipped.setdefault(reason, []).append(line)
        if detail is not None:
            self.details.setdefault(reason, detail)

    @property
    def n_skipped(self) -> int:
        return sum(len(lines) for lines in self.skipped.values())

    def summary(self) -> str:
        """E.g. ``train.tsv: skipped 3 of 120 records (missing column: lines 4, 9; empty side: line 17)``."""
        parts = []
        for reason, lines in self.skipped.items():
            shown = ", ".join(map(str, lines[:SHOWN_LINES]))
            more = f" (+{len(lines) - SHOWN_LINES} more)" if len(lines) > SHOWN_LINES else ""
            detail = f" ({self.details[reason]})" if reason in self.details else ""
            parts.append(f"{reason}{detail}: {self.unit}{'s' if len(lines) > 1 else ''} {shown}{more}")
        return f"{self.origin}: skipped {self.n_skipped} of {self.total} records ({'; '.join(parts)})"

    def copy(self) -> SkipReport:
        return SkipReport(self.origin, self.unit, self.total, {k: list(v) for k, v in self.skipped.items()},
                          dict(self.details))

    def warn(self) -> None:
        if self.skipped:
            warnings.warn(self.summary(), DataWarning, stacklevel=2)

    def require(self, kept: int) -> None:
        """Raise if nothing usable is left; the message names the file."""
        if kept == 0:
            detail = self.summary().split(": ", 1)[1] if self.skipped else "no records"
            raise DataError(f"{self.origin}: no usable records ({detail})")


def read_lines(path: Path) -> list[bytes]:
    """Raw lines of ``path`` (split on "\\n", trailing "\\r" removed) with one-line errors naming the file.

    A gzip file (recognised by its magic bytes, whatever its name) is decompressed first: genomes
    and large corpora usually come as ``.gz``.
    """
    if not path.is_file():
        if path.exists():
            raise DataError(f"not a regular file: {path}")
        raise FileNotFoundError(f"file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from err
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{path}: broken gzip file ({err})") from err
    if not data.strip():
        raise DataError(f"file is empty: {path}")
    return split_lines(data)


def split_lines(data: bytes) -> list[bytes]:
    """Lines of ``data`` split at "\\n" only (never at the other characters ``str.splitlines``
    breaks on, such as form feed or U+2028: line i of the output must be line i of the input),
    trailing "\\r" and a UTF-8 byte-order mark removed."""
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [line.removesuffix(b"\r") for line in lines]


def text_lines(path: Path, report: SkipReport, done: Callable[[], bool] = lambda: False) -> Iterator[tuple[int, str]]:
    """(line number, text) of the non-blank lines of ``path``, counting each in ``report`` and
    skipping (and counting) invalid UTF-8; stops before the next line once ``done()`` is true
    (a reader's record limit), so lines never read are not counted."""
    for lineno, raw in enumerate(read_lines(path), start=1):
        if done():
            return
        if not raw.strip():
            continue
        report.total += 1
        try:
            yield lineno, raw.decode("utf-8")
        except UnicodeDecodeError:
            report.skip("invalid UTF-8", lineno)
