"""The base LightningModule every app's task subclasses (torchgeo's ``BaseTask`` is the model).

A task says four things and the base class does the rest:

* ``losses(batch) -> {"loss": ..., other scalars}`` and ``batch_size(batch)``: training and
  evaluation log every entry as ``train/<name>``, ``val/<name>``, ``test/<name>``;
* ``configure_metrics() -> {name: Metric}``: one collection, cloned for validation and test and
  logged by one loop; ``update_metrics(metrics, batch, stage)`` feeds it (decoding, usually);
* ``tokenizers``: set from the datamodule's ``tokenizers_json()`` at ``setup`` and stored ONCE in
  every checkpoint (``checkpoint["tokenizers"]``), so a checkpoint alone is enough for inference;
  on load they are handed back to the datamodule (``use_tokenizers_json``) when there is one;
* which constructor arguments are ``runtime_options`` (decoding, metrics: they do not change the
  weights).

Hyperparameters are the constructor's arguments, typed dataclass configs where they are groups
(``arch: Seq2SeqConfig``); the checkpoint stores them as plain data (``weights_only=True``
loading), *without* the runtime options, which go to ``checkpoint["runtime_options"]``. So
LightningCLI's own ``--ckpt_path`` handling restores the architecture from the checkpoint while
``test --ckpt_path X --model.decoding.beam_size 5`` keeps the command line's decoding.

``Task.from_checkpoint(path)`` rebuilds the task class recorded in the checkpoint
(``checkpoint["task_class"]``), refusing a checkpoint of another task with one line naming the file.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import types
import typing
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, Mapping

import lightning as L
from lightning.pytorch.callbacks import Timer
import torch
from torchmetrics import Metric, MetricCollection

from core.errors import CheckpointError, UserError
from core.io import atomic_write
from core.tokenizers import Tokenizer, tokenizer_from_json
from core.training.checkpoints import load_checkpoint
from core.training.schedules import make_schedule

#: modules a checkpoint may name as its task class (nothing else is imported on its say-so)
TASK_PACKAGES = ("apps.", "core.", "tests.")


def as_config(cls, value, option: str | None = None):
    """``value`` as a ``cls`` dataclass, nested dataclass fields included: configs arrive as
    dataclasses from the CLI, as dicts from a checkpoint's hyperparameters, and as None when left
    out (the defaults). With ``option`` (e.g. ``"model.arch"``) a bad value is a one-line
    :class:`UserError` naming it."""
    if option is not None:
        try:
            return as_config(cls, value)
        except (TypeError, ValueError) as err:
            raise UserError(f"{option}: {err}") from None
    if value is None:
        return cls()
    if isinstance(value, cls) or not isinstance(value, Mapping):
        return value
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in value:
            kwargs[f.name] = _coerce(hints[f.name], value[f.name])
    unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    return cls(**kwargs)


def _coerce(hint, value):
    """A field's value from plain data: dataclass-typed fields (also ``X | None``) are rebuilt."""
    if value is None:
        return None
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
    for option in options:
        if is_dataclass(option) and isinstance(value, Mapping):
            return as_config(option, value)
    return value


def plain(value):
    """Dataclasses (nested too) as dicts, tuples as lists: what a checkpoint can hold safely."""
    if is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in asdict(value).items()}
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def class_path(obj_or_cls) -> str:
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass
class OptimConfig:
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    weight_decay: float = 0.01
    warmup_steps: int = 4000
    #: inverse_sqrt (NMT default), cosine (decays to min_lr_ratio at the last step, or at the end of
    #: ``trainer.max_time`` if that comes first), constant
    schedule: str = "inverse_sqrt"
    min_lr_ratio: float = 0.0
    #: cosine horizon; None = the Trainer's estimated number of optimizer steps
    total_steps: int | None = None


class BaseTask(L.LightningModule):
    #: constructor arguments that do not change the weights: on ``test/predict --ckpt_path`` the
    #: command line wins, and checkpoints keep them apart from the hyperparameters
    runtime_options: tuple[str, ...] = ()
    #: losses shown in the progress bar (``loss`` during training, these during evaluation)
    prog_bar_losses: tuple[str, ...] = ("loss",)

    def __init__(self, optim: OptimConfig | None = None):
        super().__init__()
        self.optim = as_config(OptimConfig, optim)
        self.save_hyperparameters(ignore=list(self.runtime_options))
        for key, value in list(self.hparams.items()):  # plain data only: checkpoints load with weights_only
            self.hparams[key] = plain(value)
        self.tokenizers_json: dict[str, str] = {}
        self.tokenizers: dict[str, Tokenizer] = {}
        metrics = self.configure_metrics()
        collection = MetricCollection(dict(metrics)) if metrics else None
        self.val_metrics = collection.clone(prefix="val/") if collection is not None else None
        self.test_metrics = collection.clone(prefix="test/") if collection is not None else None

    # ------------------------------------------------------------------ what subclasses say

    def losses(self, batch) -> dict[str, torch.Tensor]:
        """Scalar losses of a batch; ``"loss"`` is the one optimised."""
        raise NotImplementedError

    def batch_size(self, batch) -> int:
        raise NotImplementedError

    def configure_metrics(self) -> Mapping[str, Metric] | None:
        """Evaluation metrics by name (cloned for val and test); None: losses only. Called from
        ``BaseTask.__init__``: set what it reads before calling ``super().__init__()``."""
        return None

    def update_metrics(self, metrics: MetricCollection, batch, stage: str) -> bool:
        """Feed ``metrics`` from ``batch`` (decode, compare with references); False if skipped."""
        return False

    def runtime_config(self) -> dict[str, Any]:
        """The runtime options' current values, stored in checkpoints for :meth:`from_checkpoint`."""
        return {name: plain(getattr(self, name)) for name in self.runtime_options}

    # ------------------------------------------------------------------ one training/evaluation loop

    def training_step(self, batch, batch_idx):
        losses = self.losses(batch)
        n = self.batch_size(batch)
        for name, value in losses.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=n)
        return losses["loss"]

    def _evaluation_step(self, batch, stage: str) -> None:
        losses = self.losses(batch)
        n = self.batch_size(batch)
        for name, value in losses.items():
            self.log(f"{stage}/{name}", value, batch_size=n, sync_dist=True, prog_bar=name in self.prog_bar_losses)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        if metrics is not None and self.update_metrics(metrics, batch, stage):
            self.log_dict(metrics, batch_size=n, prog_bar=True)

    def validation_step(self, batch, batch_idx):
        self._evaluation_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._evaluation_step(batch, "test")

    # ------------------------------------------------------------------ tokenizers and checkpoints

    def set_tokenizers(self, tokenizers: Mapping[str, str]) -> None:
        self.tokenizers_json = dict(tokenizers)
        self.tokenizers = {name: tokenizer_from_json(text) for name, text in self.tokenizers_json.items()}

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is not None and hasattr(dm, "tokenizers_json"):
            self.set_tokenizers(dm.tokenizers_json())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Keep only the hyperparameters the constructor takes: an app's train.py links every data
        # size to every model a config may pick, and LightningCLI records the links a task lacks
        # too; saved, they would make from_checkpoint fail on an unexpected keyword.
        params = inspect.signature(type(self).__init__).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            checkpoint["hyper_parameters"] = {k: v for k, v in checkpoint.get("hyper_parameters", {}).items()
                                              if k in params or k.startswith("_")}
        checkpoint["task_class"] = class_path(self)
        checkpoint["runtime_options"] = self.runtime_config()
        if self.tokenizers_json:
            checkpoint["tokenizers"] = self.tokenizers_json

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if checkpoint.get("tokenizers"):
            self.set_tokenizers(checkpoint["tokenizers"])
            dm = self.trainer.datamodule if self._trainer is not None else None
            if dm is not None and hasattr(dm, "use_tokenizers_json"):
                dm.use_tokenizers_json(self.tokenizers_json)

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write the task as a checkpoint ``from_checkpoint`` (and export) reads, without a Trainer:
        for models built in code (tests, conversions). Training writes its own through Lightning."""
        checkpoint = {"state_dict": self.state_dict(), "hyper_parameters": dict(self.hparams)}
        self.on_save_checkpoint(checkpoint)
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))
        return Path(path)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **overrides) -> "BaseTask":
        """The task recorded in a Lightning checkpoint, in eval mode, loaded with ``weights_only=True``
        (no pickled code runs). ``overrides`` replace runtime options (e.g. ``decoding``)."""
        ckpt = load_checkpoint(path)
        task_cls = _task_class(ckpt, path, default=cls)
        if not issubclass(task_cls, cls):
            raise CheckpointError(f"{path}: a {task_cls.__name__} checkpoint ({task_cls.__module__}), "
                                  f"not a {cls.__name__} one")
        hparams = {k: v for k, v in ckpt.get("hyper_parameters", {}).items() if not k.startswith("_")}
        runtime = {k: v for k, v in ckpt.get("runtime_options", {}).items() if k in task_cls.runtime_options}
        try:
            task = task_cls(**hparams, **{**runtime, **overrides})
            task.load_state_dict(ckpt["state_dict"])
        except (TypeError, RuntimeError, KeyError) as err:
            raise CheckpointError(f"{path}: does not match {task_cls.__name__} ({str(err).splitlines()[0]})") from err
        task.on_load_checkpoint(ckpt)
        return task.eval()

    # ------------------------------------------------------------------ optimisation

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
        # fused: one kernel over all parameters; on 2 CPU cores a fifth of the for-loop step's time
        # (0.6 vs 2.8 ms for a 360k-parameter model, 15 % of its whole training step). Not under mixed
        # precision: Lightning's AMP plugin refuses to clip the gradients of an optimizer that could unscale
        # them itself, and bf16 runs are the large models where the optimizer's share is small anyway.
        mixed = self._trainer is not None and "mixed" in str(self.trainer.precision)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                                fused=not mixed)
        total = o.total_steps or int(self.trainer.estimated_stepping_batches)
        schedule = make_schedule(o.schedule, o.warmup_steps, total, o.min_lr_ratio, clock=self._budget_spent())
        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _budget_spent(self):
        """A clock of the fraction of ``trainer.max_time`` spent training (resumed runs included: the
        Timer restores its elapsed time), or None without a time budget."""
        timer = next((c for c in self.trainer.callbacks if isinstance(c, Timer)), None)
        if timer is None or timer.time_remaining() is None:
            return None
        duration = timer.time_elapsed() + timer.time_remaining()
        return lambda: timer.time_elapsed() / duration


def _task_class(ckpt: Mapping[str, Any], path, default: type) -> type:
    """The class a checkpoint says wrote it (``task_class``, or Lightning's ``_class_path``)."""
    if "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    name = ckpt.get("task_class") or ckpt.get("hyper_parameters", {}).get("_class_path")
    if not name:
        return default
    if not name.startswith(TASK_PACKAGES):
        raise CheckpointError(f"{path}: written by {name}, not by a seqlab task")
    module, _, attr = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(f"{path}: written by {name}, which this version does not have") from err
