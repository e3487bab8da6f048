"""One label per sequence: residue or base embeddings -> any core encoder -> masked mean -> head.

PeptideBERT reads a [CLS] token; a mean over the real positions does the same job for every
mixer (a recurrent encoder has no position that has seen the whole sequence in both directions
other than through pooling) and ignores padding by construction.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from core.models import BackboneConfig, Encoder
from core.nn import TokenEmbedding


@dataclass
class PropertyConfig:
    #: linked from the datamodule: its tokenizer's size, and 1 (regression) or the class count
    vocab_size: int = 0
    num_outputs: int = 1
    encoder: BackboneConfig = field(default_factory=lambda: BackboneConfig(max_len=1024))


class PropertyModel(nn.Module):
    def __init__(self, cfg: PropertyConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = TokenEmbedding(cfg.vocab_size, cfg.encoder.d_model)
        self.encoder = Encoder(cfg.encoder)
        self.head = nn.Linear(cfg.encoder.d_model, cfg.num_outputs)

    def features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask [B, W] -> one vector per sequence [B, D] (the mean over its real positions)."""
        h = self.encoder(self.embed(ids), mask=mask)
        weights = mask.unsqueeze(-1).to(h.dtype)
        return (h * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """-> [B, num_outputs]: class logits, or the standardised regression value."""
        return self.head(self.features(ids, mask))
