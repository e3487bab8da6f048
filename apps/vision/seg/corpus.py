"""The bundled segmentation corpus: the OMR corpus's engraved systems with per-pixel class masks.

    python -m apps.vision.data seg --out DIR [--measures 3] [--limit N] [--jobs 2]

The same pieces, excerpts and by-piece split as :mod:`apps.vision.omr.corpus` (every **kern score
of the music21 corpus, cut into systems of ``--measures`` measures, 90/5/5 by hashed piece name),
engraved by Verovio; each image is exactly the grayscale image the OMR corpus holds for the same
system, and its mask labels every inked pixel with the class of the SVG element that drew it
(:mod:`apps.vision.seg.masks`).

Output (Pascal VOC style): ``images/<piece>-<n>.png`` (grayscale), ``masks/<piece>-<n>.png``
(uint8 class ids, 0 = background), ``{train,valid,test}.txt`` (one file stem per line) and
``build.json`` with the class names (``classes``, index = label) and the counts.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from apps.vision.omr.corpus import corpus_scores, engrave_pieces, piece_id
from apps.vision.omr.engrave import DEFAULT_SCALE, engrave_svg
from apps.vision.omr.kern import excerpts, read_kern
from apps.vision.seg.masks import CLASSES, engrave_with_mask
from core.data import SPLITS
from core.errors import DataError, UserError
from core.io import atomic_write, atomic_write_text

BUILD_FILE = "build.json"


@dataclass
class SegBuild:
    out: Path
    images: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    pieces: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    skipped_pieces: dict[str, int] = field(default_factory=dict)
    unengravable: int = 0


def _save_png(path: Path, array) -> None:
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


def _build_piece(args: tuple[Path, Path, int, int]) -> tuple[str, list[str], str | None, int]:
    """Engrave one piece's systems with their masks: (piece id, file stems, reason skipped, systems lost)."""
    path, out, measures, scale = args
    piece = piece_id(path)
    try:
        score = read_kern(path)
    except DataError as err:
        return piece, [], re.sub(r"line \d+ ", "", str(err).split(": ", 1)[-1]), 0
    stems, lost = [], 0
    for n, kern in enumerate(excerpts(score, measures)):
        svg = engrave_svg(kern, scale)
        if svg is None:
            lost += 1
            continue
        image, mask = engrave_with_mask(svg)
        if not (image < 128).any():  # nothing drawn (what apps.vision.omr.engrave.engrave refuses)
            lost += 1
            continue
        stem = f"{piece.replace('/', '-')}-{n:03d}"
        _save_png(out / "images" / f"{stem}.png", image)
        _save_png(out / "masks" / f"{stem}.png", mask)
        stems.append(stem)
    return piece, stems, None, lost


def build_seg_corpus(out: str | Path, measures: int = 3, limit: int | None = None, jobs: int = 2,
                     scale: int = DEFAULT_SCALE, progress: bool = True) -> SegBuild:
    """Build the corpus into ``out`` (a new or empty folder); see the module docstring."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; choose a new --out (nothing is overwritten)")
    if measures < 1:
        raise UserError(f"--measures must be at least 1, got {measures}")
    scores = corpus_scores()[:limit]
    if not scores:
        raise DataError("the music21 corpus has no .krn scores (is music21 installed?)")
    for sub in ("images", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    build = SegBuild(out)
    lists: dict[str, list[str]] = {s: [] for s in SPLITS}
    for split, stems in engrave_pieces(_build_piece, scores, out, measures, scale, jobs, progress, build):
        build.pieces[split] += bool(stems)
        build.images[split] += len(stems)
        lists[split].extend(stems)
    for split, stems in lists.items():
        atomic_write_text(out / f"{split}.txt", "".join(s + "\n" for s in stems))
    summary = {"classes": list(CLASSES), "measures": measures, "scale": scale, "pieces": build.pieces,
               "images": build.images, "skipped_pieces": build.skipped_pieces,
               "unengravable_systems": build.unengravable}
    atomic_write_text(out / BUILD_FILE, json.dumps(summary, indent=2) + "\n")
    return build
