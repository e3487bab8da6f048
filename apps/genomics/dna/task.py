"""The two DNA tasks: causal language modelling (bits per nucleotide) and gene tagging."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from apps.genomics.dna.data import IGNORE
from apps.genomics.dna.model import Tagger, TaggerConfig
from apps.genomics.metrics import tagging_metrics
from apps.genomics.pretrained import setup_from_lm
from core.models import DecoderLM, LMConfig
from core.training import BaseTask, OptimConfig, as_config, token_loss


class DNALMTask(BaseTask):
    """Next-base prediction over genome windows. ``val/bits_per_nt`` is the held-out loss in
    bits (HyenaDNA's figure; perplexity is 2 to that power). Batch sizes are counted in scored
    bases, so epoch means weigh every base alike."""

    prog_bar_losses = ("bits_per_nt",)

    def __init__(self, arch: LMConfig = LMConfig(), optim: OptimConfig | None = None):
        super().__init__(optim)
        self.arch = as_config(LMConfig, arch)
        self.model = DecoderLM(self.arch)

    def losses(self, batch):
        ids = batch["targets"]
        hidden = self.model.decoder(self.model.embed(batch["ids"][:, :-1]))[0]  # (padding only trails: causal)
        loss, nll, _ = token_loss(hidden, self.model.head, ids[:, 1:], IGNORE)
        return {"loss": loss, "bits_per_nt": nll / math.log(2)}

    def batch_size(self, batch) -> int:
        return int((batch["targets"][:, 1:] != IGNORE).sum())

    def predict_step(self, batch, batch_idx):
        """Per window: the summed next-base negative log-likelihood (nats) and the bases scored
        (``apps.genomics.predict`` turns whole records into bits per nucleotide)."""
        ids = batch["targets"][:, 1:]
        logits = self.model(batch["ids"][:, :-1]).float()
        scored = ids != IGNORE
        nll = F.cross_entropy(logits.transpose(1, 2), ids.clamp_min(0), reduction="none") * scored
        return {"nll": nll.sum(1), "bases": scored.sum(1)}


class GeneTagTask(BaseTask):
    """A label per base (:data:`apps.genomics.genes.GENE_LABELS`); cross-entropy over scored
    bases, macro F1 / MCC / accuracy / coding F1 on validation and test."""

    def __init__(self, arch: TaggerConfig = TaggerConfig(), init_from: str | None = None,
                 optim: OptimConfig | None = None):
        """``init_from``: a DNA language model checkpoint to start the encoder from
        (:mod:`apps.genomics.pretrained`)."""
        super().__init__(optim)
        self.arch = as_config(TaggerConfig, arch)
        self.init_from = init_from
        self.model = Tagger(self.arch)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        setup_from_lm(self, stage, "dna")

    def configure_metrics(self):
        return tagging_metrics()

    def losses(self, batch):
        logits = self.model(batch["ids"], batch["mask"])
        return {"loss": F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE)}

    def batch_size(self, batch) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def update_metrics(self, metrics, batch, stage: str) -> bool:
        with torch.no_grad():
            preds = self.model(batch["ids"], batch["mask"]).argmax(-1)
        scored = batch["labels"] != IGNORE
        metrics.update(preds[scored], batch["labels"][scored])
        return True

    def predict_step(self, batch, batch_idx):
        """Predicted labels per window (``-100`` where the window does not score a base)."""
        preds = self.model(batch["ids"], batch["mask"]).argmax(-1)
        return preds.masked_fill(batch["labels"] == IGNORE, IGNORE)
