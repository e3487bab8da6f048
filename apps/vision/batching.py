"""Images of different sizes in one batch: padded at the bottom and right with paper (0), with
each image's real size beside it, so models mask what is padding. OMR and segmentation batch,
export and run on onnxruntime through these two functions."""
from __future__ import annotations

from typing import Sequence

import torch


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
