"""SETR (Zheng et al. 2021): image patches as a token sequence through a core Encoder, then
progressive upsampling (PUP) back to per-pixel class logits.

    image [B, 1, H, W] (ink = 1, paper and padding = 0)
      -> core PatchEmbed2d (P x P patches, the image zero-padded to whole patches)   [B, h*w, D]
      -> 2-D positions (sinusoidal or learned rows + columns)
      -> core Encoder, bidirectional (attention or any mixer: mamba, gla ...; padded cells masked)
      -> grid [B, D, h, w] -> PUP: log2(P) stages of conv3x3 + BN + ReLU + 2x upsampling
      -> full resolution: (the input ink concatenated, ``image_skip``) conv3x3 + BN + ReLU, 1x1 -> logits

Two departures from the paper, both for exactness on padded batches and thin strokes: upsampling is
nearest (bilinear would blend a real cell with a padded neighbour), and every stage zeroes what lies
beyond the image's real cells, so a padded image's logits on its own pixels equal its logits alone
(in eval mode). ``image_skip`` gives the last layers the input pixels: staff lines and stems are
1-2 pixels wide, finer than anything a stride-P grid can place.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from core.errors import UserError
from core.models import BackboneConfig, Encoder
from core.nn.patches import PatchEmbed2d
from core.nn.positions import position_scheme


def default_encoder() -> BackboneConfig:
    return BackboneConfig(d_model=256, n_layers=4, n_heads=4, position="none", max_len=16384)


@dataclass
class SETRConfig:
    #: classes per pixel (linked from the datamodule by the CLI)
    num_classes: int = 0
    #: patch side in pixels, a power of two (each PUP stage doubles the resolution)
    patch: int = 16
    #: 2-D positions added to the patch grid: sinusoidal_2d | learned_2d | none
    position: str = "sinusoidal_2d"
    #: largest grid side for learned_2d
    max_grid: int = 256
    #: the sequence model over the patches (``encoder.mixer``: attention, mamba, gla, a hybrid ...)
    encoder: BackboneConfig = field(default_factory=default_encoder)
    #: channels of the progressive-upsampling decoder
    decoder_channels: int = 64
    #: feed the input pixels to the full-resolution layers (see the module docstring)
    image_skip: bool = True

    def __post_init__(self):
        if self.patch < 2 or self.patch & (self.patch - 1):
            raise UserError(f"patch={self.patch}: SETR's upsampling doubles per stage, so the patch "
                            "side must be a power of two (2, 4, 8, 16 ...)")
        if self.position != "none" and position_scheme(self.position, dims=2).kind != "additive":
            raise UserError(f"position={self.position!r}: the grid takes an additive 2-D scheme "
                            "(sinusoidal_2d, learned_2d) or none")
        if self.decoder_channels < 1:
            raise UserError(f"decoder_channels must be positive, got {self.decoder_channels}")


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def real_area(extent: torch.Tensor, shape) -> torch.Tensor:
    """[B, 1, h, w] bool: True inside each image's real ``extent`` [B, 2] (rows, columns) of a feature
    map of ``shape``: its whole patches, ceil(size / patch) cells, times the upsampling so far."""
    rows = torch.arange(shape[0], device=extent.device)[None, :, None] < extent[:, 0, None, None]
    cols = torch.arange(shape[1], device=extent.device)[None, None, :] < extent[:, 1, None, None]
    return (rows & cols)[:, None]


class SETR(nn.Module):
    def __init__(self, cfg: SETRConfig):
        super().__init__()
        if cfg.num_classes <= 0:
            raise ValueError("SETRConfig.num_classes must be set (the CLI links it from the data)")
        self.cfg, d, c = cfg, cfg.encoder.d_model, cfg.decoder_channels
        self.patches = PatchEmbed2d(1, d, cfg.patch, pad=True)
        scheme = None if cfg.position == "none" else position_scheme(cfg.position, dims=2)
        self.positions = scheme.build(cfg.max_grid, d) if scheme is not None else None
        self.encoder = Encoder(cfg.encoder)
        self.stages = nn.ModuleList([_block(d if i == 0 else c, c) for i in range(int(math.log2(cfg.patch)))])
        self.refine = _block(c + (1 if cfg.image_skip else 0), c)
        self.classify = nn.Conv2d(c, cfg.num_classes, 1)

    def encode(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """The encoder over each image's real cells packed to the front, in row-major order: a padded
        image's sequence is then its sequence alone plus trailing padding, which no mixer's local
        convolution (mamba's) can see across, unlike padding between rows."""
        real_rank = real.long().cumsum(1) - 1                                 # place among real cells
        pad_rank = real.sum(1, keepdim=True) + (~real).long().cumsum(1) - 1   # padding after them
        index = torch.where(real, real_rank, pad_rank)[..., None].expand_as(x)
        packed = torch.zeros_like(x).scatter(1, index, x)
        y = self.encoder(packed, torch.zeros_like(real).scatter(1, index[..., 0], real))
        return y.gather(1, index)

    def forward(self, images: torch.Tensor, sizes: torch.Tensor | None = None) -> torch.Tensor:
        """images [B, 1, H, W], sizes [B, 2] real (height, width) (None: all real) -> logits [B, K, H, W]."""
        b, _, h, w = images.shape
        if sizes is None:
            sizes = torch.tensor([[h, w]], device=images.device).expand(b, 2)
        p = self.cfg.patch
        x, grid = self.patches(images)
        if self.positions is not None:
            x = self.positions(x, grid)
        cells = (sizes + p - 1) // p  # grid cells that touch the image
        keep = real_area(cells, grid)
        x = self.encode(x, keep.flatten(1))
        y = x.transpose(1, 2).reshape(b, -1, *grid) * keep
        for i, stage in enumerate(self.stages):
            y = nn.functional.interpolate(stage(y) * real_area(cells << i, y.shape[2:]), scale_factor=2,
                                          mode="nearest")
        if self.cfg.image_skip:
            full = nn.functional.pad(images, (0, y.shape[3] - w, 0, y.shape[2] - h))
            y = torch.cat([y, full], 1)
        y = self.refine(y) * real_area(cells * p, y.shape[2:])
        return self.classify(y)[:, :, :h, :w]
