"""Image -> **kern: a convolutional or patch encoder, 2-D positions, any core decoder.

    image [B, 1, H, W] (ink = 1, paper and padding = 0)
      -> trunk: torchvision ResNet-18 or ConvNeXt-T stages up to stride 16 (random init, one input
         channel), or core's 2-D patch embedding          -> grid [B, h * w, D]
      -> 2-D positions (sinusoidal or learned rows + columns)
      -> optional core Encoder over the flattened grid (any mixer: attention, mamba, gla ...)
      -> memory for a causal core Decoder with cross-attention -> bekern token logits

The Sheet Music Transformer's shape (Rios-Vila et al. 2024) on core's backbones. Images of one
batch are padded at the bottom and right; the grid cells that cover only padding are masked out
of the cross-attention. The decoding protocol (``start`` / ``step`` / ``bos_id`` / ``eos_id``) is
core.generation's, so greedy, beam and constrained search run unchanged with KV or recurrent caches.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from core.errors import UserError
from core.models import BackboneConfig, Decoder, Encoder
from core.models.state import DecoderState
from core.nn import TokenEmbedding
from core.nn.patches import PatchEmbed2d
from core.nn.positions import position_scheme
from core.tokenizers import BOS_ID, EOS_ID, PAD_ID

TRUNKS = ("resnet", "convnext", "patch")
#: pixels per grid cell of the convolutional trunks (they stop after their stride-16 stage)
CONV_STRIDE = 16


def default_decoder() -> BackboneConfig:
    return BackboneConfig(d_model=256, n_layers=4, n_heads=4, max_len=2048)


@dataclass
class OMRConfig:
    #: bekern vocabulary (linked from the datamodule by the CLI)
    vocab_size: int = 0
    #: resnet | convnext (torchvision trunks, trained from scratch) | patch (core's PatchEmbed2d)
    trunk: str = "resnet"
    #: the patch trunk's patch side in pixels
    patch: int = 16
    #: 2-D positions added to the grid: sinusoidal_2d | learned_2d | none
    position: str = "sinusoidal_2d"
    #: largest grid side for learned_2d
    max_grid: int = 256
    #: a core Encoder over the grid before the decoder reads it (None: the trunk's features as they are)
    encoder: BackboneConfig | None = None
    decoder: BackboneConfig = field(default_factory=default_decoder)
    tie_output: bool = True

    def __post_init__(self):
        if self.trunk not in TRUNKS:
            raise UserError(f"trunk={self.trunk!r}; expected one of {TRUNKS}")
        if self.position != "none" and position_scheme(self.position, dims=2).kind != "additive":
            raise UserError(f"position={self.position!r}: the grid takes an additive 2-D scheme "
                            "(sinusoidal_2d, learned_2d) or none")
        if self.encoder is not None and self.encoder.d_model != self.decoder.d_model:
            raise UserError("encoder and decoder d_model must match (the decoder attends to the encoder output)")

    @property
    def stride(self) -> int:
        return self.patch if self.trunk == "patch" else CONV_STRIDE


def _conv_trunk(name: str, d_model: int) -> nn.Module:
    """torchvision's network up to its stride-16 stage, on one channel, projected to ``d_model``."""
    from torchvision import models

    if name == "resnet":
        net = models.resnet18(weights=None)
        net.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
        body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3)
        channels = 256
    else:
        net = models.convnext_tiny(weights=None)
        net.features[0][0] = nn.Conv2d(1, 96, 4, stride=4)
        body = net.features[:6]  # stem + stages 1-3 with their downsamplings: stride 16
        channels = 384
    return nn.Sequential(body, nn.Conv2d(channels, d_model, 1))


class ImageEncoder(nn.Module):
    def __init__(self, cfg: OMRConfig):
        super().__init__()
        self.cfg, d = cfg, cfg.decoder.d_model
        self.patches = PatchEmbed2d(1, d, cfg.patch, pad=True) if cfg.trunk == "patch" else None
        self.conv = None if self.patches is not None else _conv_trunk(cfg.trunk, d)
        scheme = None if cfg.position == "none" else position_scheme(cfg.position, dims=2)
        self.positions = scheme.build(cfg.max_grid, d) if scheme is not None else None
        self.encoder = Encoder(cfg.encoder) if cfg.encoder is not None else None

    def forward(self, images: torch.Tensor, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [B, 1, H, W], sizes [B, 2] (real height, width) -> (memory [B, h*w, D], mask [B, h*w])."""
        if self.patches is not None:
            x, grid = self.patches(images)
        else:
            y = self.conv(images)
            grid = (y.shape[2], y.shape[3])
            x = y.flatten(2).transpose(1, 2)
        if self.positions is not None:
            x = self.positions(x, grid)
        cells = (sizes + self.cfg.stride - 1) // self.cfg.stride  # grid cells that touch the image
        rows = torch.arange(grid[0], device=x.device)[None, :, None] < cells[:, 0, None, None]
        cols = torch.arange(grid[1], device=x.device)[None, None, :] < cells[:, 1, None, None]
        mask = (rows & cols).flatten(1)
        if self.encoder is not None:
            x = self.encoder(x, mask)
        return x, mask


class OMRModel(nn.Module):
    """Speaks core.generation's decoding protocol; ``bos_id``/``eos_id`` are the model's."""

    def __init__(self, cfg: OMRConfig, pad_id: int = PAD_ID, bos_id: int = BOS_ID, eos_id: int = EOS_ID):
        super().__init__()
        if cfg.vocab_size <= 0:
            raise ValueError("OMRConfig.vocab_size must be set (the CLI links it from the data)")
        self.cfg, self.pad_id, self.bos_id, self.eos_id = cfg, pad_id, bos_id, eos_id
        d = cfg.decoder.d_model
        self.image_encoder = ImageEncoder(cfg)
        self.embed = TokenEmbedding(cfg.vocab_size, d, padding_idx=pad_id)
        self.decoder = Decoder(cfg.decoder, cross_attention=True)
        self.head = nn.Linear(d, cfg.vocab_size, bias=False)
        if cfg.tie_output:
            self.head.weight = self.embed.weight

    def encode(self, images: torch.Tensor, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(memory [B, h*w, D], mask [B, h*w]): the source side, as core.export reads it."""
        return self.image_encoder(images, sizes)

    def features(self, images: torch.Tensor, sizes: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced decoder states [B, T, D] (``tgt_in`` starts with BOS)."""
        memory, mask = self.encode(images, sizes)
        return self.decoder(self.embed(tgt_in), memory=self.decoder.memory_states(memory, mask),
                            real=tgt_in != self.pad_id)[0]

    def forward(self, images: torch.Tensor, sizes: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images, sizes, tgt_in))

    def start(self, images: torch.Tensor, sizes: torch.Tensor) -> DecoderState:
        memory, mask = self.encode(images, sizes)
        return self.decoder.init_state(images.shape[0], memory.device, memory.dtype,
                                       self.decoder.memory_states(memory, mask))

    def step(self, ids: torch.Tensor, state: DecoderState):
        h, state = self.decoder(self.embed(ids), state=state)
        return self.head(h), state
