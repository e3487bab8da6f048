"""Base LightningModule: AdamW, warmup + inverse-sqrt/cosine schedules, parameter groups.

Apps subclass it and implement ``training_step`` etc.; the optimiser set-up is the same for all.
"""
from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import torch

from core.training.checkpoints import load_checkpoint
from core.training.schedules import make_schedule


def as_config(cls, value):
    """``value`` as a ``cls`` dataclass: configs arrive as dataclasses from the CLI, as dicts from a
    checkpoint's hyperparameters, and as None when left out."""
    if value is None:
        return cls()
    return cls(**value) if isinstance(value, dict) else value


@dataclass
class OptimConfig:
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    weight_decay: float = 0.01
    warmup_steps: int = 4000
    #: inverse_sqrt (NMT default), cosine (decays to min_lr_ratio at the last step), constant
    schedule: str = "inverse_sqrt"
    min_lr_ratio: float = 0.0
    #: cosine horizon; None = the Trainer's estimated number of optimizer steps
    total_steps: int | None = None


class TrainingModule(L.LightningModule):
    def __init__(self, optim: OptimConfig | None = None):
        super().__init__()
        self.optim = optim or OptimConfig()

    @classmethod
    def from_checkpoint(cls, path):
        """Rebuild from a checkpoint with ``weights_only=True`` loading (no pickled code runs): the
        saved hyperparameters, the weights, and what :meth:`on_load_checkpoint` restores (tokenizers)."""
        ckpt = load_checkpoint(path)
        model = cls(**ckpt["hyper_parameters"])
        model.load_state_dict(ckpt["state_dict"])
        model.on_load_checkpoint(ckpt)
        return model.eval()

    def configure_optimizers(self):
        # No weight decay on norms, biases and embeddings: decaying them hurts and buys nothing.
        # Mixers mark their dynamics parameters (SSM A/dt, implicit filters) with
        # ``p._no_weight_decay = True`` (mamba_ssm's convention): decay would pull them to zero.
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            skip = p.ndim < 2 or "embed" in name or getattr(p, "_no_weight_decay", False)
            (no_decay if skip else decay).append(p)
        o = self.optim
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=o.lr, betas=tuple(o.betas), eps=o.eps)
        total = o.total_steps or int(self.trainer.estimated_stepping_batches)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, make_schedule(o.schedule, o.warmup_steps, total, o.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
