"""Patch embeddings: how non-token inputs become a backbone's [B, N, D] features.

* series (PatchTST, Nie et al. 2023): [B, T, C] -> [B, N, D], a window of ``patch`` steps every
  ``stride`` steps (overlapping when stride < patch);
* images (ViT, Dosovitskiy et al. 2021): [B, C, H, W] -> [B, (H/P)(W/P), D] in row-major order,
  with the grid shape (H/P, W/P) that 2-D positions (:mod:`core.nn.positions`) and dense heads need.

Each embedding is a strided convolution, which equals a linear layer on the flattened patches of
:func:`patchify1d` / :func:`patchify2d`; their inverses :func:`unpatchify1d` / :func:`unpatchify2d`
turn per-patch predictions (masked reconstruction, segmentation, forecasts) back into a series or
an image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import UserError


def patchify1d(x: torch.Tensor, patch: int, stride: int | None = None) -> torch.Tensor:
    """[B, T, C] -> [B, N, patch * C], each patch flattened step-major; N = (T - patch) // stride + 1."""
    stride = stride or patch
    if x.shape[1] < patch:
        raise UserError(f"a series of {x.shape[1]} steps is shorter than one patch of {patch}")
    return x.unfold(1, patch, stride).transpose(2, 3).reshape(x.shape[0], -1, patch * x.shape[2])


def unpatchify1d(patches: torch.Tensor, channels: int) -> torch.Tensor:
    """Inverse of :func:`patchify1d` for non-overlapping patches: [B, N, P * C] -> [B, N * P, C]."""
    b, n, pc = patches.shape
    return patches.reshape(b, n * (pc // channels), channels)


class PatchEmbed1d(nn.Module):
    """[B, T, C] -> [B, N, dim]. ``pad_end`` repeats the last step ``stride`` times first, so the
    last steps always fall in a patch (PatchTST's padding).

    The weights are a strided convolution's (``proj``, [dim, C, patch]), applied as one matmul over
    the unfolded patches: on CPU the convolution's backward for one input channel took 2.3 ms of a
    27 ms PatchTST training step, the matmul a tenth of that."""

    def __init__(self, in_channels: int, dim: int, patch: int, stride: int | None = None, pad_end: bool = False):
        super().__init__()
        self.patch, self.stride, self.pad_end = patch, stride or patch, pad_end
        if self.stride > patch:
            raise UserError(f"patch stride {self.stride} > patch length {patch} would skip steps")
        self.proj = nn.Conv1d(in_channels, dim, patch, stride=self.stride)

    def num_patches(self, length: int) -> int:
        return (length + (self.stride if self.pad_end else 0) - self.patch) // self.stride + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_end:
            x = torch.cat([x, x[:, -1:].expand(-1, self.stride, -1)], 1)
        if x.shape[1] < self.patch:
            raise UserError(f"a series of {x.shape[1]} steps is shorter than one patch of {self.patch}")
        patches = x.unfold(1, self.patch, self.stride)  # [B, N, C, patch]: the conv weight's layout
        return F.linear(patches.flatten(2), self.proj.weight.flatten(1), self.proj.bias)


def patchify2d(x: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, (H/P)(W/P), P * P * C], row-major patches, each flattened (row, col, channel)
    as in MAE. H and W must be multiples of ``patch``."""
    b, c, h, w = x.shape
    _check_divisible(h, w, patch)
    x = x.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify2d(patches: torch.Tensor, grid: tuple[int, int], patch: int, channels: int) -> torch.Tensor:
    """Inverse of :func:`patchify2d`: [B, gh * gw, P * P * C] -> [B, C, gh * P, gw * P]."""
    b = patches.shape[0]
    gh, gw = grid
    x = patches.reshape(b, gh, gw, patch, patch, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, gh * patch, gw * patch)


class PatchEmbed2d(nn.Module):
    """[B, C, H, W] -> ([B, (H/P)(W/P), dim], (H/P, W/P)). With ``pad`` an image whose sides are not
    multiples of ``patch`` is zero-padded at the bottom and right; without it that is an error."""

    def __init__(self, in_channels: int, dim: int, patch: int, pad: bool = False):
        super().__init__()
        self.patch, self.pad = patch, pad
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        h, w = x.shape[-2:]
        if self.pad:
            x = F.pad(x, (0, (-w) % self.patch, 0, (-h) % self.patch))
        else:
            _check_divisible(h, w, self.patch)
        y = self.proj(x)  # [B, D, gh, gw]
        grid = (y.shape[2], y.shape[3])
        return y.flatten(2).transpose(1, 2), grid


def _check_divisible(h: int, w: int, patch: int) -> None:
    if h % patch or w % patch:
        raise UserError(f"image of {h}x{w} pixels is not a whole number of {patch}x{patch} patches (pad it, or pad=True)")
