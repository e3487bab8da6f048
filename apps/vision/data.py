"""Data for the vision app. Today: building the bundled OMR corpus from the music21 scores.

    python -m apps.vision.data omr --out DIR [--measures 3] [--limit N] [--jobs 2]
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from apps.vision.omr.corpus import build_omr_corpus
from apps.vision.omr.engrave import DEFAULT_SCALE
from core.data import default_cache_dir
from core.errors import entry_point


def default_omr_dir(measures: int = 3):
    return default_cache_dir() / "vision" / f"omr-{measures}"


@entry_point
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m apps.vision.data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    omr = sub.add_parser("omr", help="engrave the music21 **kern scores into an image + transcription corpus")
    omr.add_argument("--out", help=f"output folder, new or empty (default: {default_omr_dir()})")
    omr.add_argument("--measures", type=int, default=3, help="measures per system (image)")
    omr.add_argument("--limit", type=int, help="only the first N scores (smoke tests)")
    omr.add_argument("--jobs", type=int, default=2, help="engraving processes")
    omr.add_argument("--scale", type=int, default=DEFAULT_SCALE, help="Verovio scale (percent)")
    a = parser.parse_args(argv)
    build = build_omr_corpus(a.out or default_omr_dir(a.measures), a.measures, a.limit, a.jobs, a.scale)
    print(f"wrote {sum(build.systems.values())} systems of {sum(build.pieces.values())} pieces to {build.out}: "
          + ", ".join(f"{k} {v}" for k, v in build.systems.items()))
    if build.skipped_pieces or build.unengravable:
        print(f"skipped: {build.skipped_pieces or 'no pieces'}; {build.unengravable} systems Verovio could not engrave")


if __name__ == "__main__":
    main()
