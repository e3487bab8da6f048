"""Segmentation data: folders of images and label-mask PNGs (Pascal VOC / ADE20K style).

A corpus folder holds ``images/<stem>.<png|jpg|...>`` and ``masks/<stem>.png`` (one uint8 class
id per pixel, mode ``L`` or palette ``P`` as VOC ships them; ``ignore_index``, 255 by default, marks
pixels no loss or metric counts) and optionally split lists ``train.txt`` / ``valid.txt`` (or
``val.txt``) / ``test.txt`` of stems. Without lists, stems are split 90/5/5 by a hash of the stem.
The folder names are options (``image_dir``, ``mask_dir``, ``list_dir``: VOC is
``JPEGImages``, ``SegmentationClass``, ``ImageSets/Segmentation``). ``build.json`` with
``classes`` (what the bundled builder writes) gives the class names and count; otherwise
``num_classes`` does, or the largest label in the training masks + 1.

Left without ``corpus_dir``, the bundled corpus (:mod:`apps.vision.seg.corpus`: the OMR corpus's
engraved systems with their masks) is built into the cache folder on first use.

Validation (per split list, one warning naming it with the reasons and files, an error naming it
when nothing usable is left; no input is ever modified): missing, empty, unreadable or truncated
images and masks, image modes that are not 8-bit (16-bit, float), masks that are not one 8-bit
channel, a mask whose size differs from its image, labels >= ``num_classes`` other than
``ignore_index``, images over ``max_pixels`` alone.

Batches are padded to their largest image (ink 0, mask ``ignore_index``), grouped by size under a
pixel budget like OMR's, or, with ``crop``, training images are cut into random ``crop`` x ``crop``
windows (padded the same way when smaller). Images and masks are scaled by ``image_scale`` first
(area for images, nearest for masks).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from apps.vision.batching import to_ink
from apps.vision.seg.corpus import BUILD_FILE, build_seg_corpus
from core.data import (
    BatchDataset,
    SplitDataModule,
    batch_loader,
    cost_batches,
    default_cache_dir,
    split_of,
)
from core.data.reports import SkipReport
from core.errors import DataError, UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: image modes read as 8-bit grayscale (colour is converted); 16-bit and float images are refused
IMAGE_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")
MASK_MODES = ("L", "P")
#: the split list names Pascal VOC uses besides ours
LIST_ALIASES = {"valid": ("valid", "val"), "train": ("train",), "test": ("test",)}
SPLIT_PERCENT = (90, 5, 5)


def read_gray(path: Path) -> np.ndarray:
    """uint8 [H, W]; raises for unreadable, truncated or non-8-bit images."""
    from PIL import Image

    with Image.open(path) as image:
        if image.mode not in IMAGE_MODES:
            raise ValueError(f"wrong image mode {image.mode}")
        image.load()
        return np.asarray(image.convert("L"))


def read_mask(path: Path) -> np.ndarray:
    """uint8 [H, W] class ids; raises for unreadable, truncated or multi-channel masks."""
    from PIL import Image

    with Image.open(path) as image:
        if image.mode not in MASK_MODES:
            raise ValueError(f"wrong mask mode {image.mode}")
        image.load()
        return np.asarray(image)  # a palette image's values are its indices


@dataclass
class Sample:
    image: Path
    mask: Path
    #: scaled size
    height: int
    width: int


def scaled_pair(sample: Sample, scale: float, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """([1, h, w] ink, [h, w] long labels) at ``scale``."""
    image = to_ink(read_gray(sample.image), scale)
    mask = torch.from_numpy(read_mask(sample.mask).astype(np.int64))
    if mask.shape != image.shape[1:]:
        mask = F.interpolate(mask[None, None].float(), size=image.shape[1:], mode="nearest")[0, 0].long()
    return image, mask


def collate(samples: list[Sample], scale: float, ignore_index: int, crop: int | None = None) -> dict[str, Any]:
    pairs = [scaled_pair(s, scale, ignore_index) for s in samples]
    if crop is not None:
        pairs = [random_crop(img, m, crop, ignore_index) for img, m in pairs]
    sizes = torch.tensor([img.shape[1:] for img, _ in pairs])
    h, w = int(sizes[:, 0].max()), int(sizes[:, 1].max())
    images = torch.zeros(len(pairs), 1, h, w)
    masks = torch.full((len(pairs), h, w), ignore_index, dtype=torch.long)
    for i, (img, m) in enumerate(pairs):
        images[i, :, : img.shape[1], : img.shape[2]] = img
        masks[i, : m.shape[0], : m.shape[1]] = m
    return {"images": images, "sizes": sizes, "masks": masks, "paths": [str(s.image) for s in samples]}


def random_crop(image: torch.Tensor, mask: torch.Tensor, size: int, ignore_index: int):
    """A random ``size`` x ``size`` window; a side shorter than ``size`` is padded (ink 0, ignore)."""
    h, w = mask.shape
    top = int(torch.randint(0, h - size + 1, ())) if h > size else 0
    left = int(torch.randint(0, w - size + 1, ())) if w > size else 0
    image, mask = image[:, top:top + size, left:left + size], mask[top:top + size, left:left + size]
    ph, pw = size - mask.shape[0], size - mask.shape[1]
    if ph or pw:
        image = F.pad(image, (0, pw, 0, ph))
        mask = F.pad(mask, (0, pw, 0, ph), value=ignore_index)
    return image, mask


class SegDataModule(SplitDataModule):
    def __init__(self, corpus_dir: str | None = None, image_dir: str = "images", mask_dir: str = "masks",
                 list_dir: str = ".", num_classes: int | None = None, ignore_index: int = 255,
                 measures: int = 3, build_limit: int | None = None, image_scale: float = 0.5,
                 crop: int | None = None, max_pixels: int = 4_000_000, max_batch: int = 8,
                 train_limit: int | None = None, eval_limit: int | None = None, num_workers: int = 0,
                 seed: int = 0):
        """``corpus_dir``: your images + masks folder (see the module docstring); left out, the bundled
        corpus (``<cache>/vision/seg-<measures>``, from the first ``build_limit`` scores, built on first
        use). ``crop``: train on random square windows of this side (after ``image_scale``);
        None: whole images padded to the batch's largest. ``max_pixels``: batch size x its largest
        image's pixels."""
        super().__init__()
        if image_scale <= 0:
            raise UserError(f"image_scale must be positive, got {image_scale}")
        if crop is not None and crop < 1:
            raise UserError(f"crop must be a positive side in pixels, got {crop}")
        if not 0 <= ignore_index <= 255:
            raise UserError(f"ignore_index must be a uint8 label (0-255), got {ignore_index}")
        self.save_hyperparameters()
        bundled = default_cache_dir() / "vision" / f"seg-{measures}{'' if build_limit is None else f'-first{build_limit}'}"
        self.bundled = corpus_dir is None
        self.corpus_dir = Path(corpus_dir) if corpus_dir else bundled
        self._num_classes = num_classes
        self._samples: dict[str, list[Sample]] = {}

    def prepare_data(self) -> None:
        if self.bundled and not (self.corpus_dir / BUILD_FILE).is_file():
            build_seg_corpus(self.corpus_dir, self.hparams.measures, self.hparams.build_limit, jobs=2, progress=False)

    # ------------------------------------------------------------------ classes

    def class_names(self) -> list[str] | None:
        self.prepare_data()
        build = self.corpus_dir / BUILD_FILE
        if not build.is_file():
            return None
        try:
            names = json.loads(build.read_text())["classes"]
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"{build}: no list of class names ({type(err).__name__})") from err
        return [str(n) for n in names]

    @property
    def num_classes(self) -> int:
        if self._num_classes is None:
            names = self.class_names()
            self._num_classes = len(names) if names else self._labels_in_train() + 1
        return self._num_classes

    @property
    def ignore_index(self) -> int:
        return self.hparams.ignore_index

    @property
    def classes(self) -> list[str]:
        """Class names (``build.json``), or the label numbers as names."""
        return self.class_names() or [str(i) for i in range(self.num_classes)]

    def _labels_in_train(self) -> int:
        """The largest label in the training masks (ignore_index aside): classes when none are given."""
        top = -1
        for stem, image, mask in self._listed("train")[0]:
            try:
                labels = np.unique(read_mask(mask))
            except Exception:  # reported when the split is validated
                continue
            labels = labels[labels != self.hparams.ignore_index]
            if labels.size:
                top = max(top, int(labels.max()))
        if top < 0:
            raise DataError(f"{self.corpus_dir}: no labels in the training masks; set data.num_classes")
        return top

    # ------------------------------------------------------------------ reading and validating

    def _list_file(self, split: str) -> Path | None:
        folder = self.corpus_dir / self.hparams.list_dir
        return next((folder / f"{n}.txt" for n in LIST_ALIASES[split] if (folder / f"{n}.txt").is_file()), None)

    def _listed(self, split: str) -> tuple[list[tuple[str, Path, Path]], str]:
        """(stem, image, mask) of a split as its list (or the hash split) names them, and the origin."""
        self.prepare_data()
        images, masks = self.corpus_dir / self.hparams.image_dir, self.corpus_dir / self.hparams.mask_dir
        if not images.is_dir():
            raise DataError(f"{images}: no such folder of images")
        listed = self._list_file(split)
        if listed is not None:
            stems = [s.strip() for s in listed.read_text(encoding="utf-8").splitlines()]
            stems = [s.split()[0] for s in stems if s]
            origin = str(listed)
        else:
            stems = sorted(p.stem for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            stems = [s for s in stems if split_of(s, SPLIT_PERCENT) == split]
            origin = f"{images} ({split} by hash)"
        found = {p.stem: p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES} if stems else {}
        return [(s, found.get(s, images / f"{s}.png"), masks / f"{s}.png") for s in stems], origin

    def samples(self, split: str) -> list[Sample]:
        """Valid samples of a split, read and validated once (see the module docstring)."""
        if split not in self._samples:
            self._samples[split] = self._read(split)
        return self._samples[split]

    def _read(self, split: str) -> list[Sample]:
        rows, origin = self._listed(split)
        limit = self.hparams.train_limit if split == "train" else self.hparams.eval_limit
        rows = rows[:limit]
        report = SkipReport(origin, unit="line")
        report.total = len(rows)
        n_classes, ignore, scale = self.num_classes, self.hparams.ignore_index, self.hparams.image_scale
        kept = []
        for lineno, (stem, image, mask) in enumerate(rows, 1):
            reason = None
            if not image.is_file():
                reason = "missing image"
            elif not mask.is_file():
                reason = "missing mask"
            elif image.stat().st_size == 0 or mask.stat().st_size == 0:
                reason = "empty file"
            if reason is None:
                reason, size = self._check_pair(image, mask, n_classes, ignore)
            if reason is None:
                h, w = round(size[0] * scale), round(size[1] * scale)
                if h * w > self.hparams.max_pixels:
                    reason = "image over max_pixels"
                else:
                    kept.append(Sample(image, mask, h, w))
                    continue
            report.skip(reason, lineno, detail=f"e.g. {stem}")
        report.warn()
        if not kept:
            detail = report.summary().split(": ", 1)[1] if report.skipped else "no images"
            raise DataError(f"{origin}: no usable images ({detail})")
        return kept

    @staticmethod
    def _check_pair(image: Path, mask: Path, n_classes: int, ignore: int) -> tuple[str | None, tuple[int, int]]:
        try:
            gray = read_gray(image)
        except ValueError as err:
            return ("wrong image mode" if "mode" in str(err) else "unreadable image"), (0, 0)
        except Exception as err:  # PIL raises many kinds for a broken or truncated file
            return ("truncated image" if "truncated" in str(err) else "unreadable image"), (0, 0)
        try:
            labels = read_mask(mask)
        except ValueError as err:
            return ("wrong mask mode" if "mode" in str(err) else "unreadable mask"), (0, 0)
        except Exception as err:
            return ("truncated mask" if "truncated" in str(err) else "unreadable mask"), (0, 0)
        if gray.size == 0:
            return "empty image", (0, 0)
        if labels.shape != gray.shape:
            return "mask size differs from image", (0, 0)
        if ((labels >= n_classes) & (labels != ignore)).any():
            return f"labels out of range (>= {n_classes})", (0, 0)
        return None, gray.shape

    # ------------------------------------------------------------------ loaders

    def _loader(self, split: str, train: bool):
        samples = self.samples(split)
        crop = self.hparams.crop if train else None
        cost = [crop * crop if crop else s.height * s.width for s in samples]
        batches = cost_batches(cost, self.hparams.max_pixels, self.hparams.max_batch,
                               seed=self.hparams.seed if train else None, option="max_pixels")
        scale, ignore = self.hparams.image_scale, self.hparams.ignore_index
        dataset = BatchDataset(samples, batches, lambda items: collate(items, scale, ignore, crop))
        return batch_loader(dataset, train, self.hparams.seed, self.hparams.num_workers)
