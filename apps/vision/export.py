"""Export a trained vision checkpoint to ONNX and check onnxruntime against PyTorch.

    python -m apps.vision.export --checkpoint CKPT --out DIR [--images a.png b.png ...] [--beam 5]

The checkpoint says which task wrote it.

* OMR: ``encoder.onnx`` (images, sizes -> memory, mask, cross-attention keys/values),
  ``decoder.onnx`` (one decoding step with its caches), ``config.json`` and the bekern tokenizer
  (:mod:`apps.vision.omr.onnx`). The check decodes the sample images as one padded batch, greedily
  and with beam search, through both runtimes and fails unless every hypothesis of every n-best
  list is identical.
* Segmentation: ``segmenter.onnx`` (images, sizes -> per-pixel logits) and ``config.json`` with
  the class names (:mod:`apps.vision.seg.onnx`). The check fails unless no logit of a real pixel
  differs by more than 1e-4.

The sample images default to systems of a bundled score engraved here, so the check needs no
corpus. The output folder must be new or empty (nothing is overwritten).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from apps.vision.omr.data import read_image
from apps.vision.omr.task import OMRTask
from core.errors import UserError, entry_point
from core.export import new_output_dir
from core.generation import GenerationConfig
from core.training import BaseTask, load_checkpoint


def sample_systems(n: int, measures: int = 2) -> list[np.ndarray]:
    """Engraved systems of the first readable scores of the music21 corpus: real music to decode."""
    from apps.vision.omr.corpus import corpus_scores
    from apps.vision.omr.engrave import engrave
    from apps.vision.omr.kern import excerpts, read_kern
    from core.errors import DataError

    images = []
    for path in corpus_scores():
        try:
            score = read_kern(path)
        except DataError:
            continue
        for kern in excerpts(score, measures):
            image = engrave(kern)
            if image is not None:
                images.append(image)
            if len(images) == n:
                return images
    raise UserError("the music21 corpus gave no engravable system for the parity check; pass --images")


def export_omr_checkpoint(task: OMRTask, checkpoint: str, out_dir: Path, images: list[np.ndarray],
                          beam: int, max_len: int) -> int:
    from apps.vision.batching import ink_batch
    from apps.vision.omr.onnx import OnnxOMR, export_omr, parity

    scale = load_checkpoint(checkpoint).get("datamodule_hyper_parameters", {}).get("image_scale", 1.0)
    export_omr(task, out_dir, scale, {"checkpoint": str(checkpoint)})
    runner = OnnxOMR(out_dir)
    batch, sizes = ink_batch(images, scale)
    failed = 0
    for cfg in (GenerationConfig(max_len=max_len),
                GenerationConfig(strategy="beam", beam_size=beam, n_best=beam, max_len=max_len)):
        same, total = parity(task, runner, batch, sizes, cfg)
        failed += total - same
        print(f"onnxruntime vs PyTorch, {cfg.strategy} (beam {cfg.beam_size if cfg.strategy == 'beam' else 1}): "
              f"{same}/{total} images with identical hypotheses")
    print(f"exported to {out_dir}")
    return 1 if failed else 0


def export_seg_checkpoint(task, checkpoint: str, out_dir: Path, images: list[np.ndarray]) -> int:
    from apps.vision.seg.onnx import PARITY_ATOL, export_and_check

    scale = load_checkpoint(checkpoint).get("datamodule_hyper_parameters", {}).get("image_scale", 1.0)
    _, check = export_and_check(task, out_dir, images, scale, {"checkpoint": str(checkpoint)})
    print(f"onnxruntime vs PyTorch on {len(images)} images: largest logit difference {check['max_abs_diff']:.2e} "
          f"(limit {PARITY_ATOL:.0e}), {100 * check['label_mismatch']:.4f} % of pixels change class")
    print(f"exported to {out_dir}")
    return 0 if check["ok"] else 1


def _read(path: Path) -> np.ndarray:
    try:
        return read_image(path)
    except Exception as err:  # PIL raises many kinds for a broken file
        raise UserError(f"{path}: {err.strerror if isinstance(err, OSError) and err.strerror else 'unreadable image'}") from err


@entry_point
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="checkpoint written by apps.vision.train")
    p.add_argument("--out", required=True, help="new or empty folder for the graphs")
    p.add_argument("--images", nargs="*", help="images for the parity check (default: engraved chorale systems)")
    p.add_argument("--samples", type=int, default=4, help="engraved systems to check when --images is not given")
    p.add_argument("--beam", type=int, default=3, help="beam size of the beam-search check")
    p.add_argument("--max-len", type=int, default=256, help="most tokens per decoded hypothesis in the check")
    a = p.parse_args(argv)
    task = BaseTask.from_checkpoint(a.checkpoint)
    from apps.vision.seg.task import SegTask

    if not isinstance(task, (OMRTask, SegTask)):
        raise UserError(f"{a.checkpoint}: a {type(task).__name__} checkpoint; apps.vision.export exports OMR "
                        "and segmentation checkpoints")
    out = new_output_dir(a.out)
    images = [_read(Path(f)) for f in a.images] if a.images else sample_systems(a.samples)
    if isinstance(task, OMRTask):
        code = export_omr_checkpoint(task, a.checkpoint, out, images, a.beam, a.max_len)
    else:
        code = export_seg_checkpoint(task, a.checkpoint, out, images)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
