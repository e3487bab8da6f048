"""Transcribe images of music to **kern with a trained OMR checkpoint.

    python -m apps.vision.transcribe --checkpoint CKPT system.png [more.png ...] [--beam 5]
           [--render DIR] [--musicxml DIR] [--output FILE]
    python -m apps.vision.transcribe --onnx DIR system.png ...      (an apps.vision.export folder)

Prints one **kern block per image, in input order, each opened by a ``!!!image: PATH`` reference
record, so the whole output is still valid Humdrum. ``--render DIR`` writes ``DIR/<name>.png``: the
input above the re-engraved prediction, for a visual check; ``--musicxml DIR`` writes
``DIR/<name>.musicxml`` through music21. Images are prepared as the checkpoint's data module
prepared its training images (its ``image_scale``).

A bad image (missing, unreadable) or a prediction that cannot be engraved or converted is reported
on stderr, the image keeps its place in the output (with an empty block when there is no
prediction) and the rest are processed; the exit status is 1 when anything was skipped, 2 on a
fatal error (bad checkpoint or options).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from apps.vision.batching import to_ink
from apps.vision.omr.data import read_image
from apps.vision.omr.engrave import engrave
from apps.vision.omr.task import OMRTask
from core.errors import EXIT_SKIPPED, UserError, entry_point
from core.generation import GenerationConfig
from core.io import atomic_write, atomic_write_text
from core.training import load_checkpoint


def side_by_side(image: np.ndarray, prediction: np.ndarray | None, kern: str = "") -> np.ndarray:
    """The input above the engraved prediction (grayscale, white-padded to one width); a prediction
    Verovio cannot engrave shows as the first lines of its **kern text instead."""
    if prediction is None:
        prediction = text_picture(kern, image.shape[1])
    width = max(image.shape[1], prediction.shape[1])
    rows = [np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=255) for p in (image, prediction)]
    gap = np.full((8, width), 160, np.uint8)  # a grey rule between input and prediction
    return np.concatenate([rows[0], gap, rows[1]], 0)


def text_picture(kern: str, width: int, lines: int = 16) -> np.ndarray:
    """Grayscale picture of the first ``lines`` lines of ``kern`` (tabs as spaces), ``width`` wide."""
    from PIL import Image, ImageDraw

    shown = ["(cannot be engraved)"] + [line.replace("\t", "  ") for line in kern.splitlines()[:lines]]
    if len(kern.splitlines()) > lines:
        shown.append("...")
    picture = Image.new("L", (max(width, 200), 12 * len(shown) + 6), 255)
    draw = ImageDraw.Draw(picture)
    for i, line in enumerate(shown):
        draw.text((4, 3 + 12 * i), line, fill=0)
    return np.asarray(picture)


def to_musicxml(kern: str, path: Path) -> None:
    from music21 import converter

    score = converter.parse(kern, format="humdrum")
    atomic_write(path, lambda tmp: score.write("musicxml", fp=tmp))


@entry_point
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", help="PNG/JPEG images of one system each")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="checkpoint written by apps.vision.train (OMR)")
    model.add_argument("--onnx", help="folder written by apps.vision.export (onnxruntime, no PyTorch model)")
    p.add_argument("--beam", type=int, default=1, help="beam size (1 = greedy)")
    p.add_argument("--max-len", type=int, default=1500, help="most tokens per transcription")
    p.add_argument("--render", help="folder for input-above-prediction PNGs")
    p.add_argument("--musicxml", help="folder for MusicXML files of the predictions")
    p.add_argument("--output", help="write the **kern here instead of stdout")
    a = p.parse_args(argv)
    if a.beam < 1:
        raise UserError(f"--beam must be at least 1, got {a.beam}")
    if a.onnx:
        from apps.vision.omr.onnx import OnnxOMR

        model = OnnxOMR(a.onnx)
        scale = model.image_scale
    else:
        model = OMRTask.from_checkpoint(a.checkpoint)
        scale = load_checkpoint(a.checkpoint).get("datamodule_hyper_parameters", {}).get("image_scale", 1.0)
    cfg = GenerationConfig(strategy="beam" if a.beam > 1 else "greedy", beam_size=a.beam, max_len=a.max_len)
    blocks, skipped = [], 0
    for path in map(Path, a.images):
        try:
            image = read_image(path)
        except Exception as err:  # PIL raises many kinds for a broken file
            reason = err.strerror if isinstance(err, OSError) and err.strerror else "unreadable image"
            print(f"warning: {path}: {reason}; skipped", file=sys.stderr)
            blocks.append(f"!!!image: {path}\n")
            skipped += 1
            continue
        ink = to_ink(image, scale)[None]
        with torch.no_grad():
            kern = model.transcribe(ink, torch.tensor([ink.shape[2:]]), cfg)[0]
        blocks.append(f"!!!image: {path}\n{kern}")
        if a.render or a.musicxml:
            skipped += not export_views(path, image, kern, a.render, a.musicxml)
    text = "".join(blocks)
    if a.output:
        atomic_write_text(a.output, text)
    else:
        sys.stdout.write(text)
    if skipped:
        print(f"warning: {skipped} of {len(a.images)} images skipped or not fully exported", file=sys.stderr)
        return EXIT_SKIPPED
    return 0


def export_views(path: Path, image: np.ndarray, kern: str, render: str | None, musicxml: str | None) -> bool:
    """Write the requested views of one prediction; False (reported) if one could not be made."""
    from PIL import Image

    ok = True
    engraved = engrave(kern)
    if render:
        if engraved is None:
            print(f"warning: {path}: the prediction cannot be engraved; the render shows its text",
                  file=sys.stderr)
            ok = False
        picture = side_by_side(image, engraved, kern)
        atomic_write(Path(render) / f"{path.stem}.png", lambda tmp: Image.fromarray(picture).save(tmp, format="PNG"))
    if musicxml:
        try:
            to_musicxml(kern, Path(musicxml) / f"{path.stem}.musicxml")
        except Exception as err:  # music21 raises its own kinds for text it cannot read
            print(f"warning: {path}: no MusicXML ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})",
                  file=sys.stderr)
            ok = False
    return ok


if __name__ == "__main__":
    sys.exit(main())
