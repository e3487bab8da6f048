"""Speech corpora as lists of utterances (audio file, transcript, duration), from the formats users
already have, plus the checks that keep bad utterances out of training.

Formats:

* JSONL manifest, one ``{"audio", "text", "duration", "speaker"?}`` object per line, the audio path
  relative to the manifest's folder (or absolute); NeMo's ``audio_filepath`` is read as ``audio``;
* LJSpeech: ``metadata.csv`` lines ``id|text|normalized text`` with audio at ``wavs/<id>.wav``;
* LibriSpeech: ``<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` lines ``ID TRANSCRIPT`` with
  audio ``ID.flac`` beside them.

Readers never crash on a bad record: they skip it under a reason with its line number in a
:class:`core.data.SkipReport`. :func:`validate` then checks the audio itself (cheaply, from file
headers: readable, mono, of the declared duration, long enough for the front end, not too long) and
the text against the model's alphabet, adds its skips to the same report, and emits ONE
:class:`core.data.DataWarning` per corpus, failing with a message naming the file when nothing is left.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from apps.speech.audio import SAMPLE_RATE, AudioError, audio_info
from apps.speech.features import FeatureConfig, min_audio_samples
from core.errors import DataError
from core.data import SkipReport, delimited_rows, jsonl_rows, text_lines

DURATION_TOLERANCE = 0.1  # seconds a manifest's duration may differ from the file's real duration
#: keys of a JSONL manifest record, each with the names other toolkits use (NeMo: audio_filepath)
MANIFEST_KEYS = (("audio", "audio_filepath"), "text", "duration")
#: the shortest audio the default front end turns into an encoder frame (92 ms at 16 kHz)
MIN_SAMPLES = min_audio_samples(FeatureConfig(sample_rate=SAMPLE_RATE))


@dataclass(frozen=True)
class Utterance:
    """One recording and its transcript; ``origin``/``line`` point at the record that described it."""

    audio: Path
    text: str
    duration: float
    speaker: str = ""
    origin: str = ""
    line: int = 0


def _skip(report: SkipReport, reason: str, utterance: Utterance) -> None:
    """Count a skip; when the utterance came from another file than the report's (LibriSpeech has one
    transcript file per chapter) the reason names that file so the line number stays meaningful."""
    if utterance.origin and utterance.origin != report.origin:
        reason = f"{reason} in {Path(utterance.origin).name}"
    report.skip(reason, utterance.line)


def _duration(path: Path) -> float:
    rate, frames, _ = audio_info(path)
    return frames / rate


def read_jsonl_manifest(path: str | Path) -> tuple[list[Utterance], SkipReport]:
    """Utterances of a JSONL manifest (ours or NeMo's: see :data:`MANIFEST_KEYS`)."""
    path = Path(path)
    report = SkipReport(str(path))
    utterances = []
    for lineno, obj in jsonl_rows(path, report, MANIFEST_KEYS, optional=("speaker",)):
        audio, text, duration, speaker = obj["audio"], obj["text"], obj["duration"], obj.get("speaker", "")
        if not all(isinstance(value, str) for value in (audio, text, speaker)):
            report.skip("not a string", lineno)
            continue
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 <= duration < math.inf:
            report.skip("bad duration", lineno)
            continue
        if not text.strip():
            report.skip("empty text", lineno)
            continue
        utterances.append(Utterance(path.parent / audio, text.strip(), float(duration), speaker, str(path), lineno))
    return utterances, report


def read_ljspeech(folder: str | Path) -> tuple[list[Utterance], SkipReport]:
    """Utterances of an LJSpeech-style folder (``metadata.csv`` + ``wavs/``), preferring the normalized text."""
    folder = Path(folder)
    path = folder / "metadata.csv"
    report = SkipReport(str(path))
    utterances = []
    for lineno, fields in delimited_rows(path, report, "|", (2, 3)):
        uid, text = fields[0].strip(), (fields[2] if len(fields) == 3 and fields[2].strip() else fields[1]).strip()
        if not uid or not text:
            report.skip("empty text" if uid else "empty id", lineno)
            continue
        audio = folder / "wavs" / f"{uid}.wav"
        try:
            duration = _duration(audio)
        except AudioError:
            report.skip("unreadable audio", lineno)
            continue
        utterances.append(Utterance(audio, text, duration, "", str(path), lineno))
    return utterances, report


def read_librispeech(folder: str | Path) -> tuple[list[Utterance], SkipReport]:
    """Utterances of a LibriSpeech-style tree: every ``*/*/*.trans.txt`` under ``folder``."""
    folder = Path(folder)
    report = SkipReport(str(folder))
    utterances = []
    for transcript in sorted(folder.glob("*/*/*.trans.txt")):
        for lineno, line in text_lines(transcript, report):
            uid, _, text = line.strip().partition(" ")
            speaker = uid.split("-")[0]
            record = Utterance(transcript.parent / f"{uid}.flac", text.strip(), 0.0, speaker, str(transcript), lineno)
            if not record.text:
                _skip(report, "empty text", record)
                continue
            try:
                duration = _duration(record.audio)
            except AudioError:
                _skip(report, "unreadable audio", record)
                continue
            utterances.append(Utterance(record.audio, record.text, duration, record.speaker, record.origin, lineno))
    return utterances, report


def read_corpus(path: str | Path, format: str = "auto") -> tuple[list[Utterance], SkipReport]:
    """Read ``path`` as ``format`` ("jsonl", "ljspeech", "librispeech"), or guess it with "auto"."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"file not found: {path}")
    if format == "auto":
        if path.is_file() and path.suffix == ".jsonl":
            format = "jsonl"
        elif (path / "metadata.csv").is_file():
            format = "ljspeech"
        elif path.is_dir() and next(path.glob("*/*/*.trans.txt"), None) is not None:
            format = "librispeech"
        else:
            raise DataError(
                f"cannot tell the format of {path}: expected a .jsonl manifest, a folder with metadata.csv "
                "(LJSpeech) or a LibriSpeech tree (<speaker>/<chapter>/*.trans.txt)"
            )
    readers = {"jsonl": read_jsonl_manifest, "ljspeech": read_ljspeech, "librispeech": read_librispeech}
    if format not in readers:
        raise DataError(f"unknown speech corpus format {format!r}; expected one of {sorted(readers)} or 'auto'")
    return readers[format](path)


def _audio_problem(utterance: Utterance, rate: int, max_seconds: float, min_samples: int) -> str | None:
    """Why the utterance's audio cannot be used, read from the file header only; None if it can."""
    try:
        file_rate, frames, channels = audio_info(utterance.audio)
    except AudioError:
        return "unreadable audio"
    samples = frames * rate // file_rate  # after resampling to ``rate``
    if samples == 0:
        return "empty audio"
    if samples < min_samples:
        return f"shorter than {1000 * min_samples / rate:.0f} ms"
    if channels != 1:
        return f"{channels} channels"
    seconds = frames / file_rate
    if abs(seconds - utterance.duration) > DURATION_TOLERANCE:
        return "duration mismatch"
    if seconds > max_seconds:
        return f"longer than {max_seconds:g} s"
    return None


def validate(
    utterances: list[Utterance],
    report: SkipReport,
    rate: int = SAMPLE_RATE,
    max_seconds: float = 30.0,
    alphabet: set[str] | None = None,
    min_samples: int = MIN_SAMPLES,
) -> list[Utterance]:
    """The utterances whose audio is a readable mono file of the declared duration, at least
    ``min_samples`` and at most ``max_seconds`` long (at ``rate`` Hz), and whose lowercased text uses
    only ``alphabet``. Shorter audio would crash the front end's convolutions (or give an empty
    encoder output): pass ``min_audio_samples`` of the model's features when they differ from the
    defaults.

    Skips are added to ``report`` (the reader's), which then warns once and fails if nothing is left.
    """
    kept = []
    for utterance in utterances:
        problem = _audio_problem(utterance, rate, max_seconds, min_samples)
        if problem is None and alphabet is not None:
            unknown = sorted(set(utterance.text.lower()) - alphabet)
            if unknown:
                problem = "unknown characters " + ", ".join(repr(c) for c in unknown)
        if problem is None:
            kept.append(utterance)
        else:
            _skip(report, problem, utterance)
    report.warn()
    report.require(len(kept))
    return kept


_APOSTROPHES = re.compile(r"[\u2018\u2019\u02bc\u0060\u00b4]")
_HYPHENS = re.compile(r"[-\u2010-\u2015]")
_DROPPED = re.compile(r"[^a-z' ]")
# Curly single quotes double as quotation marks: an apostrophe is kept inside a word ("don't") and
# after a final s ("the disciples' feet"), and dropped elsewhere (quotation marks, "'tis" too).
_LOOSE_APOSTROPHE = re.compile(r"(?<![a-z])'|(?<!s)'(?![a-z])")


def normalize_transcript(text: str) -> str:
    """ASR target text: lowercase a-z, apostrophes and single spaces.

    Accents are stripped ("café" -> "cafe"), curly apostrophes unified, hyphens and dashes become
    spaces, any other punctuation or digit is dropped.
    """
    text = unicodedata.normalize("NFKD", text.lower())
    text = _HYPHENS.sub(" ", _APOSTROPHES.sub("'", text))
    text = _LOOSE_APOSTROPHE.sub(" ", _DROPPED.sub("", text.replace("\n", " ").replace("\t", " ")))
    return " ".join(text.split())
