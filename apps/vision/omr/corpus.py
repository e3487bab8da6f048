"""The bundled OMR corpus: real scores from the music21 corpus, cut into systems and engraved.

    python -m apps.vision.data omr --out DIR [--measures 3] [--limit 50] [--jobs 2]

Every Humdrum ``.krn`` score that ships in the PyPI ``music21`` package (1,326 files: Palestrina
masses, Bach chorales, quartet movements, a Chopin mazurka) is read into its **kern spines and cut
into systems of ``--measures`` measures (:mod:`apps.vision.omr.kern`); each system is engraved by
Verovio and rasterised (:mod:`apps.vision.omr.engrave`). The split is by piece, never by
excerpt: every system of a piece lands in the same split (90/5/5, hashed from the file name), so
the test set holds music the model never saw.

Output: ``images/<piece>-<n>.png`` (grayscale) and ``{train,valid,test}.jsonl`` manifests with
``{"image", "kern", "piece", "system"}`` per line, plus ``build.json`` with the counts. Pieces
the reader cannot cut (spine splits) and systems Verovio cannot engrave are skipped and counted.
"""
from __future__ import annotations

import json
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from PIL import Image

from apps.vision.omr.engrave import DEFAULT_SCALE, engrave
from apps.vision.omr.kern import excerpts, read_kern
from core.data import SPLITS, split_of
from core.errors import DataError, UserError
from core.io import atomic_write, atomic_write_text

SPLIT_PERCENT = (90, 5, 5)


def corpus_scores() -> list[Path]:
    """The ``.krn`` files of the installed music21 corpus, in a stable order."""
    from music21 import corpus

    return sorted(Path(p) for p in corpus.getPaths(fileExtensions=["krn"]))


def piece_id(path: Path) -> str:
    """``<composer folder>/<file stem>``: the key of the split (stable across machines)."""
    return f"{path.parent.name}/{path.stem}"


@dataclass
class OmrBuild:
    out: Path
    systems: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    pieces: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    skipped_pieces: dict[str, int] = field(default_factory=dict)
    unengravable: int = 0


def _build_piece(args: tuple[Path, Path, int, int]) -> tuple[str, list[dict], str | None, int]:
    """Engrave one piece's systems: (piece id, manifest rows, reason it was skipped, systems lost)."""
    path, out, measures, scale = args
    piece = piece_id(path)
    try:
        score = read_kern(path)
    except DataError as err:
        return piece, [], re.sub(r"line \d+ ", "", str(err).split(": ", 1)[-1]), 0
    rows, lost = [], 0
    for n, kern in enumerate(excerpts(score, measures)):
        image = engrave(kern, scale)
        if image is None:
            lost += 1
            continue
        name = f"images/{piece.replace('/', '-')}-{n:03d}.png"
        atomic_write(out / name, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))
        rows.append({"image": name, "kern": kern, "piece": piece, "system": n})
    return piece, rows, None, lost


def engrave_pieces(build_piece, scores: list[Path], out: Path, measures: int, scale: int, jobs: int,
                   progress: bool, build) -> Iterator[tuple[str, list]]:
    """Run ``build_piece((path, out, measures, scale)) -> (piece, rows, skip reason, systems lost)``
    over the scores in ``jobs`` processes (with a progress bar): yields (split, rows) of each piece
    it could cut, and counts the rest into ``build.skipped_pieces`` / ``build.unengravable``."""
    work = [(p, out, measures, scale) for p in scores]
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = pool.map(build_piece, work, chunksize=4)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(work), desc="engraving", unit="piece")
        for piece, rows, skipped, lost in results:
            build.unengravable += lost
            if skipped is not None:
                build.skipped_pieces[skipped] = build.skipped_pieces.get(skipped, 0) + 1
                continue
            yield split_of(piece, SPLIT_PERCENT), rows


def build_omr_corpus(out: str | Path, measures: int = 3, limit: int | None = None, jobs: int = 2,
                     scale: int = DEFAULT_SCALE, progress: bool = True) -> OmrBuild:
    """Build the corpus into ``out`` (a new or empty folder); see the module docstring."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} is not empty; choose a new --out (nothing is overwritten)")
    if measures < 1:
        raise UserError(f"--measures must be at least 1, got {measures}")
    scores = corpus_scores()[:limit]
    if not scores:
        raise DataError("the music21 corpus has no .krn scores (is music21 installed?)")
    (out / "images").mkdir(parents=True, exist_ok=True)
    build = OmrBuild(out)
    manifests: dict[str, list[str]] = {s: [] for s in SPLITS}
    for split, rows in engrave_pieces(_build_piece, scores, out, measures, scale, jobs, progress, build):
        build.pieces[split] += bool(rows)
        build.systems[split] += len(rows)
        manifests[split].extend(json.dumps(r, ensure_ascii=False) for r in rows)
    for split, lines in manifests.items():
        atomic_write_text(out / f"{split}.jsonl", "".join(line + "\n" for line in lines))
    summary = {"measures": measures, "scale": scale, "pieces": build.pieces, "systems": build.systems,
               "skipped_pieces": build.skipped_pieces, "unengravable_systems": build.unengravable}
    atomic_write_text(out / "build.json", json.dumps(summary, indent=2) + "\n")
    return build
