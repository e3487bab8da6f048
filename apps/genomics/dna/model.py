"""The per-nucleotide tagger: base embeddings -> any core encoder -> a label per base.

A gene is read from both ends (start codon, stop codon), so the tagger is bidirectional; core's
``Encoder`` runs causal-only mixers (Mamba, Hyena, GLA ...) in both directions itself. The DNA
language model needs nothing of its own: it is core's ``DecoderLM``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from apps.genomics.genes import GENE_LABELS
from core.models import BackboneConfig, Encoder
from core.nn import TokenEmbedding


@dataclass
class TaggerConfig:
    #: linked from the datamodule's tokenizer
    vocab_size: int = 0
    num_classes: int = len(GENE_LABELS)
    encoder: BackboneConfig = field(default_factory=lambda: BackboneConfig(max_len=4096))


class Tagger(nn.Module):
    def __init__(self, cfg: TaggerConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = TokenEmbedding(cfg.vocab_size, cfg.encoder.d_model)
        self.encoder = Encoder(cfg.encoder)
        self.head = nn.Linear(cfg.encoder.d_model, cfg.num_classes)

    def features(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """ids [B, W] -> [B, W, D]; ``mask`` [B, W] True at real bases (padding is ignored)."""
        return self.encoder(self.embed(ids), mask=mask)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """-> label logits [B, W, classes]"""
        return self.head(self.features(ids, mask))
