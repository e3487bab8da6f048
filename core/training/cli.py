"""The thin LightningCLI wrapper every app's ``train.py`` calls.

What it adds to LightningCLI, through its documented hooks only:

* ``links``: data-derived sizes (vocabularies) copied into the model config at instantiation;
* checkpoints written atomically (:class:`~core.training.checkpoints.AtomicCheckpointIO`);
* TensorBoard logs by default under ``<default_root_dir>/lightning_logs/version_N`` (checkpoints
  go beside them in ``checkpoints/``), with the same metrics as CSV in ``csv/version_N/metrics.csv``;
  a config or ``--trainer.logger`` that names loggers replaces both;
* expected errors (bad data, bad checkpoint, an option a constructor refuses) as one line
  (:func:`core.errors.entry_point`).

``--ckpt_path`` restores the architecture from the checkpoint with LightningCLI's own mechanism:
tasks keep their runtime options (decoding, metrics) out of the saved hyperparameters
(:class:`~core.training.task.BaseTask`), so the command line's decoding options win.
"""
from __future__ import annotations

import os

from lightning.pytorch.cli import LightningCLI

from core.errors import UserError, describe, entry_point

DEFAULT_LOGGERS = ("lightning.pytorch.loggers.TensorBoardLogger", "lightning.pytorch.loggers.CSVLogger")


class SeqlabCLI(LightningCLI):
    links: tuple[tuple[str, str], ...] = ()

    def add_arguments_to_parser(self, parser) -> None:
        for source, target in self.links:
            parser.link_arguments(source, target, apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        """Loggers left at Lightning's default (``logger: null``/``true``) become TensorBoard + CSV,
        both under ``default_root_dir`` (resolved here because the loggers need it as ``save_dir``)."""
        sub = self.config.get("subcommand")
        trainer = self.config[sub].trainer if sub else self.config.trainer
        if trainer.get("logger") not in (None, True) or trainer.get("fast_dev_run"):
            return
        root = trainer.get("default_root_dir") or os.getcwd()
        trainer.logger = [
            {"class_path": DEFAULT_LOGGERS[0], "init_args": {"save_dir": root, "name": "lightning_logs"}},
            {"class_path": DEFAULT_LOGGERS[1], "init_args": {"save_dir": root, "name": "csv"}},
        ]
        self.config = self.parser.parse_object({sub: {"trainer": {"logger": trainer.logger}}} if sub
                                               else {"trainer": {"logger": trainer.logger}}, self.config)

    def instantiate_classes(self) -> None:
        """A value the parser accepted but a constructor refuses (``n_heads`` that does not divide
        ``d_model``, a strategy this machine cannot run) is a bad option: one line, naming the config."""
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as err:
            if isinstance(err, UserError):
                raise
            sub = self.config.get("subcommand")
            configs = (self.config[sub] if sub else self.config).get("config") or []
            where = ", ".join(str(c) for c in configs) or "command line"
            raise UserError(f"{where}: {_reason(err)}") from err


def _reason(err: BaseException) -> str:
    """The constructor's own message. A model given by ``class_path`` is a ``Union[BaseTask, None]``
    to jsonargparse, which reports a refusal as "Does not validate against any of the Union subtypes"
    and lists each subtype's error below: the task's is the one that is not about ``None``."""
    lines = str(err).splitlines()
    if "Errors:" in lines:
        for line in lines[lines.index("Errors:") + 1:]:
            if not line.startswith("  - "):
                break
            if "NoneType" not in line:
                return line[4:].strip()
    return describe(err)


def run_cli(model_class, datamodule_class, args=None, links=(), run: bool = True, **kwargs) -> LightningCLI:
    """``links``: (``data.<attr>``, ``model.<arg>``) pairs resolved after the datamodule is built.
    Errors a user can cause (bad data, a foreign checkpoint) end as one line and exit status 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub at run time
    cli_class = type("CLI", (SeqlabCLI,), {"links": tuple(links)})
    trainer_defaults = {"plugins": [{"class_path": "core.training.checkpoints.AtomicCheckpointIO"}]}
    trainer_defaults.update(kwargs.pop("trainer_defaults", {}))
    # default_env: every option can also come from the environment, e.g. PL_FIT__TRAINER__MAX_STEPS=100
    parser_kwargs = {"default_env": True, **kwargs.pop("parser_kwargs", {})}

    @entry_point
    def cli(argv):
        return cli_class(model_class, datamodule_class, args=argv, run=run, trainer_defaults=trainer_defaults,
                         save_config_kwargs={"overwrite": False}, parser_kwargs=parser_kwargs, **kwargs)

    return cli(args)
