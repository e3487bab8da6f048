"""Bible texts from SWORD modules that Debian packages install (``sword-text-web``,
``sword-text-kjv``, ``sword-text-sparv`` ...), read offline with PyPI ``pysword``: real,
public-domain sentences in several languages, aligned by verse reference across translations.
"""
from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

SWORD_PATH = Path("/usr/share/sword")

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
