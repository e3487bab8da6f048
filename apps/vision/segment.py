"""Segment images into per-pixel classes with a trained segmentation checkpoint.

    python -m apps.vision.segment image.png -o mask.png --ckpt CKPT [--compare view.png [--mask truth.png]]
    python -m apps.vision.segment a.png b.png -o masks/ --ckpt CKPT [--compare views/]

Writes one label PNG per image at the image's own size: palette mode, so a viewer shows the classes
in colour while every pixel's value is its class id (what :class:`apps.vision.seg.data.SegDataModule`
reads back). With one image ``-o``/``--compare`` name files; with several, folders (``<stem>.png``
inside). ``--compare`` writes input | prediction | ground truth (with ``--mask``, given once per
image in order) side by side above a legend of the class colours. Images are prepared as the
checkpoint's data module prepared its training images (its ``image_scale``); predictions are scaled
back to the input's size.

A bad image (missing, empty, unreadable, truncated, not 8-bit) or ground-truth mask is reported on
stderr and skipped, and the rest are processed; the exit status is 1 when anything was skipped, 2 on
a fatal error (bad checkpoint or options). Existing outputs are not overwritten without ``--overwrite``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from apps.vision.batching import to_ink
from apps.vision.seg.data import read_gray, read_mask
from apps.vision.seg.task import SegTask
from core.errors import EXIT_SKIPPED, UserError, entry_point
from core.io import atomic_write
from core.training import load_checkpoint

LEGEND_ROW = 14


def palette(n: int) -> np.ndarray:
    """[256, 3] uint8: white background (0), distinct saturated colours for the classes, grey for
    the rest (ignore_index shows grey)."""
    import colorsys

    colours = np.full((256, 3), 128, np.uint8)
    colours[0] = 255
    for i in range(1, n):
        hue = (i * 0.61803398875) % 1.0  # golden-ratio steps: neighbours in id get distant hues
        colours[i] = np.round(np.array(colorsys.hsv_to_rgb(hue, 0.85, 0.85 if i % 2 else 0.6)) * 255)
    return colours


def full_size(labels: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """Class ids [h, w] predicted at the model's scale -> uint8 at the image's size ``shape``
    (nearest neighbour: ids are never blended)."""
    if tuple(labels.shape) != tuple(shape):
        labels = F.interpolate(labels[None, None].float(), size=tuple(shape), mode="nearest")[0, 0]
    return labels.to(torch.uint8).cpu().numpy()


def save_labels(path: Path, labels: np.ndarray, colours: np.ndarray) -> None:
    from PIL import Image

    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(colours.flatten().tolist())
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def save_rgb(path: Path, picture: np.ndarray) -> None:
    from PIL import Image

    atomic_write(path, lambda tmp: Image.fromarray(picture).save(tmp, format="PNG"))


def compare_view(image: np.ndarray, labels: np.ndarray, truth: np.ndarray | None, classes: list[str],
                 colours: np.ndarray) -> np.ndarray:
    """RGB: input | prediction | ground truth, a legend of the classes below."""
    from PIL import Image, ImageDraw

    panels = [np.repeat(image[..., None], 3, 2), colours[labels]] + ([colours[truth]] if truth is not None else [])
    gap = np.full((image.shape[0], 6, 3), 160, np.uint8)
    row = np.concatenate([p for panel in panels for p in (panel, gap)][:-1], 1)
    titles = ["input", "prediction"] + (["ground truth"] if truth is not None else [])
    per_line = max(1, row.shape[1] // 130)
    lines = (len(classes) + per_line - 1) // per_line
    canvas = Image.new("RGB", (row.shape[1], LEGEND_ROW + row.shape[0] + 4 + lines * LEGEND_ROW), "white")
    canvas.paste(Image.fromarray(row), (0, LEGEND_ROW))
    draw = ImageDraw.Draw(canvas)
    for i, title in enumerate(titles):
        draw.text((i * (image.shape[1] + 6) + 2, 1), title, fill="black")
    top = LEGEND_ROW + row.shape[0] + 4
    for i, name in enumerate(classes):
        x, y = (i % per_line) * 130 + 2, top + (i // per_line) * LEGEND_ROW
        draw.rectangle([x, y + 2, x + 10, y + 11], fill=tuple(int(c) for c in colours[i]), outline="black")
        draw.text((x + 14, y + 1), f"{i} {name}", fill="black")
    return np.asarray(canvas)


def _target(option: str, many: bool, image: Path) -> Path:
    return Path(option) / f"{image.stem}.png" if many else Path(option)


def _reason(path: Path, err: Exception) -> str:
    """What is wrong with an image or mask file, in a few words."""
    if path.is_file() and path.stat().st_size == 0:
        return "empty file"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err)
    return text if "mode" in text else ("truncated image" if "truncated" in text else "unreadable image")


@entry_point
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", help="images to segment (PNG, JPEG ...)")
    p.add_argument("-o", "--output", required=True, help="label PNG (one image) or folder (several)")
    p.add_argument("--ckpt", "--checkpoint", dest="ckpt", required=True,
                   help="checkpoint written by apps.vision.train (segmentation)")
    p.add_argument("--compare", help="input | prediction | ground truth PNG (one image) or folder (several)")
    p.add_argument("--mask", action="append", default=[], help="ground-truth mask, once per image in order")
    p.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    a = p.parse_args(argv)
    if a.mask and len(a.mask) != len(a.images):
        raise UserError(f"--mask given {len(a.mask)} times for {len(a.images)} images: give one per image")
    many = len(a.images) > 1
    task = SegTask.from_checkpoint(a.ckpt)
    scale = load_checkpoint(a.ckpt).get("datamodule_hyper_parameters", {}).get("image_scale", 1.0)
    colours = palette(len(task.classes))
    if not a.overwrite:
        for image in map(Path, a.images):
            for option in filter(None, (a.output, a.compare)):
                if _target(option, many, image).exists():
                    raise UserError(f"{_target(option, many, image)} exists; pass --overwrite to replace it")
    skipped = 0
    for n, path in enumerate(map(Path, a.images)):
        try:
            image = read_gray(path)
        except Exception as err:  # PIL raises many kinds for a broken file
            print(f"warning: {path}: {_reason(path, err)}; skipped", file=sys.stderr)
            skipped += 1
            continue
        ink = to_ink(image, scale)[None]
        labels = full_size(task.segment(ink)[0], image.shape)
        save_labels(_target(a.output, many, path), labels, colours)
        if a.compare:
            truth = None
            if a.mask:
                try:
                    truth = read_mask(Path(a.mask[n]))
                    if truth.shape != image.shape:
                        raise ValueError(f"mask size {truth.shape[1]}x{truth.shape[0]} differs from the image's")
                except Exception as err:
                    reason = err if "differs" in str(err) else _reason(Path(a.mask[n]), err)
                    print(f"warning: {a.mask[n]}: {reason}; "
                          "the comparison shows no ground truth", file=sys.stderr)
                    skipped, truth = skipped + 1, None
            save_rgb(_target(a.compare, many, path), compare_view(image, labels, truth, task.classes, colours))
    if skipped:
        print(f"warning: {skipped} of {len(a.images)} images (or their masks) skipped", file=sys.stderr)
        return EXIT_SKIPPED
    return 0


if __name__ == "__main__":
    sys.exit(main())
