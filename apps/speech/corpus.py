"""The bundled default speech corpus: real English sentences read aloud by Debian's ``espeak-ng``.

No recordings ship with the repository and nothing is downloaded, so a fresh machine builds its own:

1. verses of the World English Bible (Debian ``sword-text-web``; the KJV as fallback) are read with
   :mod:`core.data`, cleaned of OSIS markup, and kept when their ASR transcript has ``min_words`` to
   ``max_words`` words and no digits (espeak would read "12" as "twelve", which the text does not say);
2. a seeded shuffle picks ``n_sentences`` of them;
3. each is spoken by a voice, speaking rate (words per minute) and pitch drawn from a generator seeded
   by the verse reference, so the same verse always gets the same voice whatever else is built;
   espeak gets the original verse text (punctuation kept, it shapes the prosody);
4. the 22 kHz espeak WAV is resampled to 16 kHz mono and written to ``out/wavs/<ref>.wav``;
5. ``out/{train,valid,test}.jsonl`` list the utterances, split by the hash of the normalized text
   (90/5/5), so a sentence heard in training is never a test sentence.

With ``voice`` set (``--voice en-us``) every verse is read by that one voice at its default rate and
pitch instead: the single-speaker corpus a TTS model without speaker conditioning wants (as LJSpeech
is), with the same sentences and the same split.

The speech is synthetic and fairly robotic: good for checking that an ASR or TTS pipeline learns,
not a measure of real-world accuracy.
"""
from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from apps.speech.audio import SAMPLE_RATE, AudioError, read_audio, write_wav
from apps.speech.manifests import normalize_transcript
from core.data import SPLITS, clean_osis, installed_module, read_sword_verses, split_of
from core.io import atomic_write_text

BIBLE_MODULES = ("engWEB2015eb", "engKJV2006eb")
SPLIT_PERCENT = (90, 5, 5)
# espeak-ng's own English voices (the "mb-*" ones need MBROLA, which Debian installs separately),
# some with a variant ("+f3": a female variant, "+m3": another male one) for more speaker variety.
VOICES = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
    "en-us+f3", "en-gb+m3", "en-gb-x-rp+f2", "en-us+m5", "en-gb-scotland+f4", "en-029+f1",
)
RATES = (130, 190)  # words per minute
PITCHES = (35, 65)  # espeak's 0-99 scale, 50 is the voice's default


def espeak_binary() -> str:
    """Path of the ``espeak-ng`` program, or a clear error saying how to install it."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise FileNotFoundError("espeak-ng not found: install it with `apt-get install espeak-ng`")
    return binary


def english_verses() -> tuple[str, dict[str, str]]:
    """The installed English Bible module's name and its verses, ``{"Gen.1.1": "In the beginning, God ...", ...}``."""
    module = installed_module(BIBLE_MODULES)
    if module is None:
        raise FileNotFoundError(
            f"no English SWORD Bible module ({' or '.join(BIBLE_MODULES)}): install one with "
            "`apt-get install sword-text-web` (or sword-text-kjv)"
        )
    return module, {ref: clean_osis(raw) for ref, raw in read_sword_verses(module).items()}


def pick_sentences(verses: dict[str, str], n: int, seed: int, min_words: int, max_words: int) -> list[tuple[str, str]]:
    """``n`` (reference, text) pairs chosen by a seeded shuffle among verses of a fitting length,
    one per distinct transcript."""
    fitting, seen = [], set()
    for ref, text in sorted(verses.items()):
        target = normalize_transcript(text)
        if re.search(r"\d", text) or not min_words <= len(target.split()) <= max_words or target in seen:
            continue
        seen.add(target)
        fitting.append((ref, text))
    random.Random(seed).shuffle(fitting)
    return fitting[:n]


DEFAULT_RATE, DEFAULT_PITCH = 175, 50  # espeak-ng's own defaults


def voice_for(ref: str, seed: int, voice: str | None = None) -> dict:
    """The voice, rate and pitch that read verse ``ref``: a pure function of (seed, ref), or the one
    ``voice`` at its default rate and pitch."""
    if voice is not None:
        return {"voice": voice, "rate": DEFAULT_RATE, "pitch": DEFAULT_PITCH}
    rng = random.Random(f"{seed}:{ref}")
    return {"voice": rng.choice(VOICES), "rate": rng.randint(*RATES), "pitch": rng.randint(*PITCHES)}


def synthesize(binary: str, text: str, voice: dict, path: Path) -> float:
    """Speak ``text`` into a 16 kHz mono WAV at ``path``; returns its duration in seconds.

    The text goes through stdin, so a verse can never be mistaken for a command-line option.
    """
    with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
        raw = Path(tmp) / "raw.wav"
        command = [binary, "-v", voice["voice"], "-s", str(voice["rate"]), "-p", str(voice["pitch"]), "-w", str(raw)]
        subprocess.run(command, input=text, text=True, capture_output=True, check=True, timeout=120)
        audio = read_audio(raw, SAMPLE_RATE)
    write_wav(path, audio, SAMPLE_RATE)
    return len(audio) / SAMPLE_RATE


def _check_writable(out: Path, overwrite: bool) -> None:
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty: pass overwrite=True (--overwrite) to rebuild the corpus there")
        shutil.rmtree(out / "wavs", ignore_errors=True)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


README = """Synthetic speech from real text, built offline by apps.speech.corpus.build_espeak_corpus.

Text: {n} verses of the {module} Bible (Debian SWORD module), {min_words}-{max_words} words, no digits.
Speech: Debian espeak-ng, {speech}; resampled to {rate} Hz mono 16-bit WAV (wavs/).
Manifests: train/valid/test.jsonl (audio, text, duration, speaker = voice name, voice settings),
split 90/5/5 by the normalized transcript, so no sentence is shared between splits.
The "text" field is the original verse; apps.speech.manifests.normalize_transcript gives ASR targets.
"""


def build_espeak_corpus(
    out: str | Path,
    n_sentences: int = 2000,
    seed: int = 0,
    min_words: int = 4,
    max_words: int = 20,
    jobs: int = 2,
    overwrite: bool = False,
    voice: str | None = None,
) -> dict:
    """Build the corpus in ``out`` (see the module docstring); returns a summary
    ``{"utterances": {split: n}, "hours": h, "skipped": k, "out": path}``."""
    out = Path(out)
    binary = espeak_binary()
    _check_writable(out, overwrite)
    module, verses = english_verses()
    chosen = pick_sentences(verses, n_sentences, seed, min_words, max_words)
    (out / "wavs").mkdir(parents=True, exist_ok=True)

    def speak(item: tuple[str, str]) -> dict | None:
        ref, text = item
        settings = voice_for(ref, seed, voice)
        try:
            duration = synthesize(binary, text, settings, out / "wavs" / f"{ref}.wav")
        except (subprocess.SubprocessError, AudioError):
            return None
        return {
            "audio": f"wavs/{ref}.wav", "text": text, "duration": round(duration, 3),
            "speaker": settings["voice"], "voice": settings,
        }

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        rows = list(pool.map(speak, chosen))
    made = [row for row in rows if row is not None]
    by_split = {name: [] for name in SPLITS}
    for row in made:  # held out by text: every reading of a sentence lands in the same split
        by_split[split_of(normalize_transcript(row["text"]), SPLIT_PERCENT)].append(row)
    for name, split_rows in by_split.items():
        _write_jsonl(out / f"{name}.jsonl", split_rows)
    (out / "README.txt").write_text(README.format(
        n=len(made), module=module, min_words=min_words, max_words=max_words, rate=SAMPLE_RATE,
        speech=(f"one voice, {voice}, at {DEFAULT_RATE} wpm and pitch {DEFAULT_PITCH}" if voice else
                f"voices {', '.join(VOICES)}, rates {RATES[0]}-{RATES[1]} wpm, pitches {PITCHES[0]}-{PITCHES[1]}, "
                f"chosen per verse from seed {seed}"),
    ), encoding="utf-8")
    return {
        "out": str(out),
        "utterances": {name: len(split_rows) for name, split_rows in by_split.items()},
        "hours": sum(row["duration"] for row in made) / 3600,
        "skipped": len(rows) - len(made),
    }
