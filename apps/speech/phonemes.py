"""Text -> phonemes for TTS, through Debian's ``espeak-ng`` (the same engine that reads the bundled
corpus, so its phonemes describe exactly what was said).

``espeak-ng -q --ipa --sep=" "`` prints one line per clause, phonemes separated by one space and
words by two. :func:`phonemize` turns that into one token string per text: phonemes (stress marks
stay attached to their vowel, "ˈɛ"), ``|`` between words and ``,`` between clauses, e.g.
"hello, world" -> ``h ə l ˈoʊ , w ˈɜː l d``. espeak runs once per text: it splits its input into
clauses itself, so several texts in one call could not be told apart again.
"""
from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

from apps.speech.corpus import espeak_binary

WORD, CLAUSE = "|", ","


def phonemize_one(text: str, voice: str = "en-us", binary: str | None = None) -> str:
    command = [binary or espeak_binary(), "-q", "--ipa", "--sep= ", "-v", voice]
    out = subprocess.run(command, input=text, text=True, capture_output=True, check=True, timeout=60).stdout
    clauses = []
    for line in out.splitlines():
        words = [w.split() for w in line.strip().split("  ") if w.strip()]
        if words:
            clauses.append(f" {WORD} ".join(" ".join(w) for w in words))
    return f" {CLAUSE} ".join(clauses)


def phonemize(texts: list[str], voice: str = "en-us", jobs: int = 2) -> list[str]:
    binary = espeak_binary()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda t: phonemize_one(t, voice, binary), texts))
