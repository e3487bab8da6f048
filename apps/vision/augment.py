"""Training-time image augmentations for scanned or photographed pages (torchvision ``v2``).

Engraved systems are perfectly clean; real inputs are scanned (blur, noise, slight rotation and
scale) or photographed (perspective, paper warp). Each distortion is an option of
:class:`Augment` with a probability; all work on ``[1, H, W]`` ink images (1 = black, 0 = paper),
so whatever a transform fills in is paper.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import v2


@dataclass
class AugmentConfig:
    #: probability that an image gets each distortion below
    p: float = 0.5
    #: rotation range in degrees (+/-) and scale range of the random affine warp
    rotation: float = 1.5
    scale: tuple[float, float] = (0.9, 1.05)
    #: Gaussian blur sigma range
    blur: tuple[float, float] = (0.1, 1.0)
    #: standard deviation of additive pixel noise
    noise: float = 0.05
    #: elastic warp strength (pixels); 0 turns it off
    elastic: float = 20.0
    #: perspective distortion (camera-like), 0-1; 0 turns it off
    perspective: float = 0.15


class Augment:
    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg
        steps = [v2.RandomApply([v2.RandomAffine(cfg.rotation, scale=cfg.scale, fill=0.0)], p=cfg.p),
                 v2.RandomApply([v2.GaussianBlur(5, sigma=cfg.blur)], p=cfg.p)]
        if cfg.elastic > 0:
            steps.append(v2.RandomApply([v2.ElasticTransform(alpha=cfg.elastic, sigma=5.0, fill=0.0)], p=cfg.p))
        if cfg.perspective > 0:
            steps.append(v2.RandomPerspective(cfg.perspective, p=cfg.p, fill=0.0))
        self.transform = v2.Compose(steps)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """[1, H, W] ink image -> distorted, same size, values kept in [0, 1]."""
        out = self.transform(image)
        if self.cfg.noise > 0 and torch.rand(()) < self.cfg.p:
            out = out + torch.randn_like(out) * self.cfg.noise
        return out.clamp(0.0, 1.0)
