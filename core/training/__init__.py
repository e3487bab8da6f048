"""Training: base LightningModule, losses, schedules, checkpoints, CLI helper."""
from core.training.checkpoints import (AtomicCheckpointIO, atomic_write, average_checkpoints, load_checkpoint,
                                       load_portable_weights, save_portable)
from core.training.cli import run_cli
from core.training.losses import token_loss
from core.training.module import OptimConfig, TrainingModule, as_config
from core.training.schedules import make_schedule

__all__ = ["AtomicCheckpointIO", "OptimConfig", "TrainingModule", "as_config", "atomic_write", "average_checkpoints",
           "load_checkpoint", "load_portable_weights", "make_schedule", "run_cli", "save_portable", "token_loss"]
