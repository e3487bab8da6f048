"""Data for the vision app: building the bundled corpora from the music21 scores.

    python -m apps.vision.data omr --out DIR [--measures 3] [--limit N] [--jobs 2]
    python -m apps.vision.data seg --out DIR [--measures 3] [--limit N] [--jobs 2]
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from apps.vision.omr.corpus import build_omr_corpus
from apps.vision.omr.engrave import DEFAULT_SCALE
from apps.vision.seg.corpus import build_seg_corpus
from core.data import default_cache_dir
from core.errors import entry_point


def default_omr_dir(measures: int = 3):
    return default_cache_dir() / "vision" / f"omr-{measures}"


def default_seg_dir(measures: int = 3):
    return default_cache_dir() / "vision" / f"seg-{measures}"


@entry_point
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m apps.vision.data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, default, what in (("omr", default_omr_dir(), "an image + transcription corpus"),
                                ("seg", default_seg_dir(), "an image + per-pixel class mask corpus")):
        cmd = sub.add_parser(name, help=f"engrave the music21 **kern scores into {what}")
        cmd.add_argument("--out", help=f"output folder, new or empty (default: {default})")
        cmd.add_argument("--measures", type=int, default=3, help="measures per system (image)")
        cmd.add_argument("--limit", type=int, help="only the first N scores (smoke tests)")
        cmd.add_argument("--jobs", type=int, default=2, help="engraving processes")
        cmd.add_argument("--scale", type=int, default=DEFAULT_SCALE, help="Verovio scale (percent)")
    a = parser.parse_args(argv)
    if a.command == "seg":
        build = build_seg_corpus(a.out or default_seg_dir(a.measures), a.measures, a.limit, a.jobs, a.scale)
        counts, unit = build.images, "images"
    else:
        build = build_omr_corpus(a.out or default_omr_dir(a.measures), a.measures, a.limit, a.jobs, a.scale)
        counts, unit = build.systems, "systems"
    print(f"wrote {sum(counts.values())} {unit} of {sum(build.pieces.values())} pieces to {build.out}: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if build.skipped_pieces or build.unengravable:
        print(f"skipped: {build.skipped_pieces or 'no pieces'}; {build.unengravable} systems Verovio could not engrave")


if __name__ == "__main__":
    main()
