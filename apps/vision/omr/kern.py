"""Humdrum **kern for optical music recognition: cutting scores into systems, and "bekern" tokens.

A score is read into its **kern spines only (lyrics, dynamics and other spines are dropped) and cut
into excerpts of a few measures. Each excerpt is a complete, valid **kern file: the header, the
clef, key signature and meter in force where it starts (carried over from earlier in the piece),
its measures with their barlines, and the terminator. Pieces whose spines split or merge
(``*^``, ``*v``) are skipped: an excerpt could not carry their layout simply.

Stem directions and beam marks (``/ \\ L J K k``) are removed from notes: they are layout the
engraver decides, so the image and the target transcription agree (images are engraved from the
cleaned text).

Tokens ("bekern", after the Sheet Music Transformer): a note splits into duration, pitch and
accidental sub-tokens (``4.`` ``cc`` ``#``; ties, slurs and articulations one character each),
chord notes are joined by ``<s>``, spines by ``<t>``, lines by ``<b>``; interpretations
(``*clefG2``) and barlines (``=3``) are single tokens. :func:`detokenize` inverts
:func:`tokenize` exactly on cleaned kern.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import DataError

LINE, TAB, SPACE = "<b>", "<t>", "<s>"
#: spine manipulators an excerpt cannot carry (the terminator ``*-`` ends the piece)
MANIPULATORS = ("*^", "*v", "*x", "*+")
#: interpretations carried into every excerpt, and kept where they change mid-excerpt
CARRIED = ("*clef", "*k[", "*M", "*met(")
_LAYOUT = str.maketrans("", "", "/\\LJKk")
_SUBTOKEN = re.compile(r"\d+\.*|[A-Ga-g]+|r|#+|-+|n|.")


@dataclass
class KernScore:
    """The **kern spines of one piece: ``measures[i]`` are the lines of measure i (its closing
    barline last), ``state[i]`` the carried interpretations in force where it starts."""

    path: str
    measures: list[list[list[str]]]
    state: list[list[list[str]]]

    @property
    def n_spines(self) -> int:
        return len(self.state[0]) if self.state else 0


def _kind(tokens: list[str]) -> str:
    first = tokens[0]
    if first.startswith("="):
        return "barline"
    if first.startswith("*"):
        return "interpretation"
    if first.startswith("!"):
        return "comment"
    return "data"


def clean_note(token: str) -> str:
    """A data token without stems and beams; ``.`` (null) and rests stay as they are."""
    if token == ".":
        return token
    return " ".join(note.translate(_LAYOUT) for note in token.split(" ") if note.translate(_LAYOUT))


def read_kern(path: str | Path, text: str | None = None) -> KernScore:
    """Parse ``path`` (or ``text``) into measures of its **kern spines; :class:`DataError` for a
    file this reader cannot cut (no **kern spine, ragged lines, spine splits or merges)."""
    text = Path(path).read_text(encoding="utf-8", errors="replace") if text is None else text
    lines = [line.rstrip("\r") for line in text.split("\n")]
    header = next((i for i, line in enumerate(lines) if line.startswith("**")), None)
    if header is None:
        raise DataError(f"{path}: no exclusive interpretation (**kern) line")
    columns = lines[header].split("\t")
    keep = [i for i, c in enumerate(columns) if c == "**kern"]
    if not keep:
        raise DataError(f"{path}: no **kern spine")
    state = [["", "", ""] for _ in keep]  # clef, key signature, meter in force
    measures: list[list[list[str]]] = []
    states: list[list[list[str]]] = []
    current: list[list[str]] = []
    start_state = [list(s) for s in state]
    for lineno, line in enumerate(lines[header + 1:], start=header + 2):
        if not line or line.startswith("!"):
            continue
        tokens = line.split("\t")
        if len(tokens) != len(columns):
            raise DataError(f"{path}: line {lineno} has {len(tokens)} spines, the header {len(columns)}")
        if any(t in MANIPULATORS for t in tokens):
            raise DataError(f"{path}: line {lineno} splits or merges spines")
        kern = [tokens[i] for i in keep]
        kind = _kind(kern)
        if kind == "comment":
            continue
        if kind == "interpretation":
            if all(t == "*-" for t in kern):
                break
            changed = False
            for spine, token in zip(state, kern):
                for slot, prefix in enumerate(("*clef", "*k[", "*M")):
                    if token.startswith(prefix) and not (prefix == "*M" and token.startswith("*MM")):
                        spine[slot], changed = token, True
            if changed and any(m for m in measures + [current] if m):  # a change inside the music
                current.append([t if t.startswith(CARRIED) else "*" for t in kern])
            elif changed:
                start_state = [list(s) for s in state]
            continue
        if kind == "data":
            current.append([clean_note(t) for t in kern])
            continue
        current.append(kern)  # barline: closes the measure
        if any(_kind(row) == "data" for row in current):
            measures.append(current)
            states.append(start_state)
        current, start_state = [], [list(s) for s in state]
    if any(_kind(row) == "data" for row in current):
        measures.append(current + [["=="] * len(keep)])
        states.append(start_state)
    if not measures:
        raise DataError(f"{path}: no measures with notes")
    return KernScore(str(path), measures, states)


def excerpt(score: KernScore, first: int, n_measures: int) -> str:
    """Measures ``first .. first + n_measures - 1`` as a complete **kern file."""
    n = score.n_spines
    rows = [["**kern"] * n]
    for slot in range(3):
        values = [spine[slot] for spine in score.state[first]]
        if any(values):
            rows.append([v or "*" for v in values])
    for measure in score.measures[first:first + n_measures]:
        rows.extend(measure)
    rows.append(["*-"] * n)
    return "\n".join("\t".join(row) for row in rows) + "\n"


def excerpts(score: KernScore, n_measures: int) -> list[str]:
    """The piece cut into consecutive systems of ``n_measures`` measures (the last may be shorter)."""
    return [excerpt(score, i, n_measures) for i in range(0, len(score.measures), n_measures)]


def spine_error(kern: str) -> str | None:
    """Why the spines of a **kern text do not hold together (None when they do): every line must
    have as many non-empty fields as there are open spines, counting splits ``*^``, joins ``*v``,
    additions ``*+`` and ends ``*-``, and every spine must be closed at the end."""
    open_spines = 0
    for lineno, line in enumerate(kern.rstrip("\n").split("\n"), start=1):
        if not line or line.startswith("!!"):
            continue
        fields = line.split("\t")
        if not all(fields):
            return f"line {lineno} has an empty field"
        if not open_spines:
            if not line.startswith("**"):
                return f"line {lineno} comes after every spine ended" if lineno > 1 else "no ** header line"
            open_spines = len(fields)
            continue
        if len(fields) != open_spines:
            return f"line {lineno} has {len(fields)} fields for {open_spines} spines"
        if line.startswith("*"):
            open_spines, joining = 0, False
            for field in fields:
                if field == "*v":
                    open_spines += 0 if joining else 1  # a run of *v joins into one spine
                else:
                    open_spines += {"*^": 2, "*+": 2, "*-": 0}.get(field, 1)
                joining = field == "*v"
            if not open_spines:
                return None
    return "spines never end (*-)" if open_spines else "no ** header line"


def tokenize(kern: str) -> list[str]:
    """bekern tokens of a **kern text (see the module docstring)."""
    out: list[str] = []
    for i, line in enumerate(kern.rstrip("\n").split("\n")):
        if i:
            out.append(LINE)
        for j, token in enumerate(line.split("\t")):
            if j:
                out.append(TAB)
            if token.startswith(("*", "=", "!")) or token == ".":
                out.append(token)
                continue
            for k, note in enumerate(token.split(" ")):
                if k:
                    out.append(SPACE)
                out.extend(_SUBTOKEN.findall(note))
    return out


def detokenize(tokens: list[str]) -> str:
    """The **kern text of bekern ``tokens`` (a trailing newline, as files end)."""
    text = "".join({LINE: "\n", TAB: "\t", SPACE: " "}.get(t, t) for t in tokens)
    return text + "\n"
