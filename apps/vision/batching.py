"""Pages as models read them: ink images, and images of different sizes in one batch.

Ink is 1 where the page is black and 0 on paper, so padding (0) is blank paper. A batch is padded
at the bottom and right, with each image's real size beside it, so models mask what is padding.
OMR and segmentation train, export and run on onnxruntime through these functions.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def to_ink(image: np.ndarray, scale: float = 1.0) -> torch.Tensor:
    """Grayscale uint8 [H, W] -> [1, H', W'] float ink, area-resized by ``scale``."""
    x = 1.0 - torch.from_numpy(image.astype(np.float32) / 255.0)[None]
    if scale != 1.0:
        x = F.interpolate(x[None], scale_factor=scale, mode="area")[0]
    return x


def ink_batch(images: Sequence[np.ndarray], scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Grayscale uint8 pages -> the padded ink batch and sizes, as training batched them."""
    return pad_images([to_ink(image, scale) for image in images])


def pad_images(images: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[C, H_i, W_i] images -> (batch [B, C, max H, max W] zero-padded, sizes [B, 2] int64 (H_i, W_i))."""
    sizes = torch.tensor([tuple(img.shape[1:]) for img in images], dtype=torch.long)
    batch = images[0].new_zeros(len(images), images[0].shape[0], int(sizes[:, 0].max()), int(sizes[:, 1].max()))
    for row, img in zip(batch, images):
        row[:, : img.shape[1], : img.shape[2]] = img
    return batch, sizes


def example_images(stride: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two random one-channel images for tracing an export: 3x5 cells of ``stride`` pixels, and a
    smaller second one padded to that size, so the padding path is part of the graph. A private
    generator keeps the caller's RNG untouched; dtype and device follow ``like``."""
    gen = torch.Generator().manual_seed(0)
    first = torch.rand(1, 3 * stride, 5 * stride, generator=gen)
    second = torch.rand(1, 2 * stride + 3, 3 * stride + 5, generator=gen)
    images, sizes = pad_images([first, second])
    return images.to(like.device, like.dtype), sizes.to(like.device)
