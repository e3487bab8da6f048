"""Training: base task, losses, schedules, checkpoints, CLI helper."""
from core.training.checkpoints import (AtomicCheckpointIO, atomic_write, average_checkpoints, datamodule_from_checkpoint,
                                       datamodule_options, load_checkpoint, load_portable_weights, save_portable)
from core.training.cli import run_cli
from core.training.losses import token_loss
from core.training.schedules import make_schedule
from core.training.task import BaseTask, OptimConfig, as_config

__all__ = ["AtomicCheckpointIO", "BaseTask", "OptimConfig", "as_config", "atomic_write", "average_checkpoints",
           "datamodule_from_checkpoint", "datamodule_options", "load_checkpoint", "load_portable_weights",
           "make_schedule", "run_cli", "save_portable", "token_loss"]
