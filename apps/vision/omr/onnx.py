"""OMR on onnxruntime: the image encoder and the decoder step as core's two encoder-decoder graphs.

``encoder.onnx`` reads ``images`` float [batch, 1, height, width] (ink = 1, padding = 0) and
``sizes`` int64 [batch, 2] (each image's real height and width) and returns the memory, its mask
and every decoder layer's cross-attention keys/values; ``decoder.onnx`` is the step graph of
:mod:`core.export.onnx_seq2seq`, so any core decoder (KV cache or recurrent state) runs, and
greedy and beam search are core.generation's. Height and width are dynamic: one export reads
systems of any size. ``config.json``'s metadata holds the special ids, the data module's
``image_scale`` and the tokenizer file; :class:`OnnxOMR` reads them back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from apps.vision.batching import example_images
from apps.vision.omr.kern import detokenize
from apps.vision.omr.model import OMRModel
from core.export import OnnxEncoderDecoder, SourceSpec, export_encoder_decoder
from core.generation import GenerationConfig, generate
from core.nn.modes import evaluating
from core.tokenizers import load_tokenizer

TOKENIZER_FILE = "tokenizer.bekern.json"


def image_source(model: OMRModel) -> SourceSpec:
    """Two example images of different sizes (the second padded) with dynamic batch, height, width."""
    images, sizes = example_images(model.cfg.stride, next(model.parameters()))
    dim = torch.export.Dim
    batch = dim("batch")
    return SourceSpec(["images", "sizes"], (images, sizes),
                      ({0: batch, 2: dim("height"), 3: dim("width")}, {0: batch}), dim("memory_len"))


def export_omr(task, out_dir: str | Path, image_scale: float, metadata: dict | None = None) -> dict[str, Path]:
    """Write the two graphs, ``config.json`` and the bekern tokenizer of an :class:`OMRTask` into ``out_dir``."""
    model = task.model
    out_dir = Path(out_dir)
    paths = export_encoder_decoder(model, out_dir, source=image_source(model), metadata={
        "bos_id": model.bos_id, "eos_id": model.eos_id, "image_scale": image_scale,
        "tokenizer": TOKENIZER_FILE, **(metadata or {})})
    task.tokenizer.save(out_dir / TOKENIZER_FILE)
    return {**paths, "tokenizer": out_dir / TOKENIZER_FILE}


class OnnxOMR:
    """An :func:`export_omr` folder: ``transcribe(images, sizes)`` as :meth:`OMRTask.transcribe` does."""

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None):
        self.runner = OnnxEncoderDecoder(path, providers)
        meta = self.runner.metadata
        self.image_scale: float = float(meta.get("image_scale", 1.0))
        self.tokenizer = load_tokenizer(Path(path) / meta.get("tokenizer", TOKENIZER_FILE))

    def decode_ids(self, images: torch.Tensor, sizes: torch.Tensor, cfg: GenerationConfig | None = None):
        return self.runner.generate((images, sizes), cfg or self.runner.generation_config())

    def transcribe(self, images: torch.Tensor, sizes: torch.Tensor, cfg: GenerationConfig | None = None) -> list[str]:
        return [detokenize(self.tokenizer.decode(h[0].tokens).split()) for h in self.decode_ids(images, sizes, cfg)]


def parity(task, runner: OnnxOMR, images: torch.Tensor, sizes: torch.Tensor,
           cfg: GenerationConfig) -> tuple[int, int]:
    """(rows whose whole n-best list — tokens of every hypothesis — is identical, rows) for one search."""
    with evaluating(task.model):
        ours = generate(task.model, task.model.start(images, sizes), cfg)
    onnx = runner.decode_ids(images, sizes, cfg)
    same = sum([h.tokens for h in a] == [h.tokens for h in b] for a, b in zip(ours, onnx))
    return same, len(ours)
