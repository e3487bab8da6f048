"""The OMR LightningModule: image -> bekern tokens, label-smoothed CE, SER/CER/LER on decoding."""
from __future__ import annotations

import torch

from apps.vision.metrics import omr_metrics
from apps.vision.omr.kern import detokenize
from apps.vision.omr.model import OMRConfig, OMRModel
from core.generation import GenerationConfig, Hypothesis, generate
from core.nn.modes import evaluating
from core.training import BaseTask, OptimConfig, as_config, token_loss


def default_decoding() -> GenerationConfig:
    return GenerationConfig(max_len=1024)


class OMRTask(BaseTask):
    runtime_options = ("decoding", "val_decode")
    prog_bar_losses = ("nll",)

    def __init__(self, arch: OMRConfig = OMRConfig(), optim: OptimConfig | None = None,
                 decoding: GenerationConfig = default_decoding(), label_smoothing: float = 0.1,
                 val_decode: bool = True):
        """``arch.vocab_size`` is linked from the datamodule by the CLI. ``decoding`` serves
        validation, test and predict (greedy by default; ``strategy: beam`` for final scores)."""
        super().__init__(optim)
        self.arch = as_config(OMRConfig, arch)
        self.decoding = as_config(GenerationConfig, decoding)
        self.label_smoothing, self.val_decode = label_smoothing, val_decode
        self.model = OMRModel(self.arch)

    def configure_metrics(self):
        return omr_metrics()

    @property
    def tokenizer(self):
        return self.tokenizers["bekern"]

    def losses(self, batch):
        tgt = batch["tgt_ids"]
        hidden = self.model.features(batch["images"], batch["sizes"], tgt[:, :-1])
        loss, nll, _ = token_loss(hidden, self.model.head, tgt[:, 1:], self.model.pad_id, self.label_smoothing)
        return {"loss": loss, "nll": nll}

    def batch_size(self, batch) -> int:
        return len(batch["kern"])

    def update_metrics(self, metrics, batch, stage: str) -> bool:
        if not (self.val_decode or stage == "test"):
            return False
        metrics.update(self.transcribe(batch["images"], batch["sizes"]), batch["kern"])
        return True

    def decode_ids(self, images: torch.Tensor, sizes: torch.Tensor,
                   cfg: GenerationConfig | None = None) -> list[list[Hypothesis]]:
        with evaluating(self.model):
            return generate(self.model, self.model.start(images, sizes), cfg or self.decoding)

    def transcribe(self, images: torch.Tensor, sizes: torch.Tensor, cfg: GenerationConfig | None = None) -> list[str]:
        """**kern text of the best hypothesis for each image."""
        return [detokenize(self.tokenizer.decode(h[0].tokens).split()) for h in self.decode_ids(images, sizes, cfg)]

    def predict_step(self, batch, batch_idx):
        return [{"index": i, "image": p, "kern": k}
                for i, p, k in zip(batch["index"], batch["paths"], self.transcribe(batch["images"], batch["sizes"]))]
