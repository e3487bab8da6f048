"""The thin LightningCLI wrapper every app's ``train.py`` calls."""
from __future__ import annotations

import copy
import os

from lightning.pytorch.cli import LightningCLI



class SeqlabCLI(LightningCLI):
    """LightningCLI plus links that copy data-derived sizes (vocabularies) into the model."""

    links: tuple[tuple[str, str], ...] = ()

    def add_arguments_to_parser(self, parser) -> None:
        for source, target in self.links:
            parser.link_arguments(source, target, apply_on="instantiate")

    def _parse_ckpt_path(self) -> None:
        """LightningCLI makes a checkpoint's hyperparameters override the command line, which is
        right for the architecture but silently drops ``test --ckpt_path X --model.decoding.beam_size 5``.
        Options a model lists in ``runtime_options`` (they do not change the weights) keep the value
        from the config/command line."""
        keep = getattr(self._model_class, "runtime_options", ())
        sub = self.config.get("subcommand")
        before = {k: copy.deepcopy(self.config[sub]["model"].get(k)) for k in keep} if sub else {}
        super()._parse_ckpt_path()
        for key, value in before.items():
            self.config[sub]["model"][key] = value


def run_cli(model_class, datamodule_class, args=None, links=(), run: bool = True, **kwargs) -> LightningCLI:
    """``links``: (``data.<attr>``, ``model.<arg>``) pairs resolved after the datamodule is built."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub at run time
    cli_class = type("CLI", (SeqlabCLI,), {"links": tuple(links)})
    trainer_defaults = {"plugins": [{"class_path": "core.training.checkpoints.AtomicCheckpointIO"}]}
    trainer_defaults.update(kwargs.pop("trainer_defaults", {}))
    # default_env: every option can also come from the environment, e.g. PL_FIT__TRAINER__MAX_STEPS=100
    parser_kwargs = {"default_env": True, **kwargs.pop("parser_kwargs", {})}
    return cli_class(model_class, datamodule_class, args=args, run=run, trainer_defaults=trainer_defaults,
                     save_config_kwargs={"overwrite": False}, parser_kwargs=parser_kwargs, **kwargs)
