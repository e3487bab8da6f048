"""The parallel-text formats users have, read into :class:`Record` s on :mod:`core.data.readers`.

* TSV: ``source<TAB>target`` per line;
* Moses-style aligned files: ``PREFIX.{src}`` and ``PREFIX.{tgt}``, line i of one translating line i
  of the other;
* JSON Lines: one object per line, the source and target under language keys; a list of targets is a
  multi-reference record.

Files are read as bytes and decoded line by line, so one bad line costs one record, not the file.
Bad records are skipped and counted by reason with their line numbers in a
:class:`core.data.SkipReport` (the data module warns once per file); blank lines are ignored, not
counted. Prediction input (:func:`read_sources`) keeps every line instead, so output line i answers
input line i.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from core.errors import DataError
from core.data import DataWarning, SkipReport, delimited_rows, jsonl_rows, read_lines

FORMATS = ("auto", "tsv", "moses", "jsonl")


@dataclass(frozen=True)
class Record:
    """One source sentence with its reference(s); ``refs[0]`` is the training target.

    ``origin``/``line`` say where it came from for error messages; ``key`` is
    what deterministic splits hash (a word, a verse reference).
    """

    src: str
    refs: tuple[str, ...]
    origin: str
    line: int
    key: str = ""

    @property
    def tgt(self) -> str:
        return self.refs[0]


def _decode(line: bytes) -> str | None:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _full(records: list, limit: int | None):
    """``done()`` for the row readers: stop once ``records`` holds ``limit`` records."""
    return lambda: limit is not None and len(records) >= limit


def read_tsv(path: str | Path, limit: int | None = None) -> tuple[list[Record], SkipReport]:
    """``source<TAB>target`` per line."""
    path = Path(path)
    report = SkipReport(str(path))
    records: list[Record] = []
    for lineno, (src, tgt) in delimited_rows(path, report, "\t", 2, done=_full(records, limit)):
        src, tgt = src.strip(), tgt.strip()
        if not src or not tgt:
            report.skip("empty side", lineno)
            continue
        records.append(Record(src, (tgt,), str(path), lineno))
    return records, report


def read_moses(
    prefix: str | Path, src_lang: str, tgt_lang: str, limit: int | None = None
) -> tuple[list[Record], SkipReport]:
    """Line-aligned ``PREFIX.{src_lang}`` and ``PREFIX.{tgt_lang}``; different line counts are an error."""
    src_path, tgt_path = Path(f"{prefix}.{src_lang}"), Path(f"{prefix}.{tgt_lang}")
    src_lines, tgt_lines = read_lines(src_path), read_lines(tgt_path)
    if len(src_lines) != len(tgt_lines):
        raise DataError(
            f"misaligned Moses files: {src_path} has {len(src_lines)} lines but {tgt_path} has {len(tgt_lines)}"
        )
    origin = f"{prefix}.{{{src_lang},{tgt_lang}}}"
    report = SkipReport(origin)
    records: list[Record] = []
    for lineno, (raw_src, raw_tgt) in enumerate(zip(src_lines, tgt_lines), start=1):
        if limit is not None and len(records) >= limit:
            break
        report.total += 1
        src, tgt = _decode(raw_src), _decode(raw_tgt)
        if src is None or tgt is None:
            report.skip("invalid UTF-8", lineno)
            continue
        src, tgt = src.strip(), tgt.strip()
        if not src or not tgt:
            report.skip("empty side", lineno)
            continue
        records.append(Record(src, (tgt,), origin, lineno))
    return records, report


def read_jsonl(
    path: str | Path, src_key: str, tgt_key: str, key_field: str | None = None, limit: int | None = None
) -> tuple[list[Record], SkipReport]:
    """One JSON object per line with string ``src_key``; ``tgt_key`` is a string or a list of references.

    A list gives a multi-reference record (all references feed BLEU/PER; the
    first is the training target). ``key_field`` names an optional field used
    as the record's split key (the Bible's ``"ref"``).
    """
    path = Path(path)
    report = SkipReport(str(path))
    records: list[Record] = []
    optional = (key_field,) if key_field else ()
    for lineno, row in jsonl_rows(path, report, (src_key, tgt_key), optional, done=_full(records, limit)):
        src, tgt = row[src_key], row[tgt_key]
        refs = [tgt] if isinstance(tgt, str) else tgt
        if not isinstance(src, str) or not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            report.skip("not a string", lineno)
            continue
        src, refs = src.strip(), [r.strip() for r in refs]
        if not src or not refs or not all(refs):
            report.skip("empty side", lineno)
            continue
        key = str(row.get(key_field, "")) if key_field else ""
        records.append(Record(src, tuple(refs), str(path), lineno, key))
    return records, report


def detect_format(path: str, format: str, src_lang: str, tgt_lang: str) -> str:
    """``format`` unless it is "auto": then by extension, or "moses" when ``path.{src_lang}`` exists."""
    if format != "auto":
        return format
    suffix = Path(path).suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if Path(f"{path}.{src_lang}").exists() or Path(f"{path}.{tgt_lang}").exists():
        return "moses"
    if not Path(path).exists():
        raise FileNotFoundError(f"file not found: {path} (nor Moses files {path}.{src_lang} / {path}.{tgt_lang})")
    raise DataError(f"cannot tell the format of {path}; set format to one of tsv, moses, jsonl")


def read_parallel(
    path: str, format: str = "auto", src_lang: str = "src", tgt_lang: str = "tgt", limit: int | None = None
) -> tuple[list[Record], SkipReport]:
    """Read a user file in any supported format (see :func:`detect_format`)."""
    fmt = detect_format(path, format, src_lang, tgt_lang)
    if fmt == "tsv":
        return read_tsv(path, limit)
    if fmt == "moses":
        return read_moses(path, src_lang, tgt_lang, limit)
    return read_jsonl(path, src_lang, tgt_lang, limit=limit)


def read_sources(path: str | Path) -> list[str]:
    """Prediction input: one source per line, blank lines kept (they get empty outputs).

    Undecodable bytes are replaced rather than dropped, so output line N still
    belongs to input line N; the affected lines are reported in one warning.
    """
    path = Path(path)
    report = SkipReport(str(path))
    sources = []
    for lineno, raw in enumerate(read_lines(path), start=1):
        report.total += 1
        text = _decode(raw)
        if text is None:
            report.skip("invalid UTF-8 (bytes replaced)", lineno)
            text = raw.decode("utf-8", errors="replace")
        sources.append(text.strip())
    if report.skipped:
        warnings.warn(report.summary().replace("skipped", "repaired"), DataWarning, stacklevel=2)
    return sources
