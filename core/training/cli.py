"""The thin LightningCLI wrapper every app's ``train.py`` calls."""
from __future__ import annotations

import os

from lightning.pytorch.cli import LightningCLI



class SeqlabCLI(LightningCLI):
    """LightningCLI plus links that copy data-derived sizes (vocabularies) into the model."""

    links: tuple[tuple[str, str], ...] = ()

    def add_arguments_to_parser(self, parser) -> None:
        for source, target in self.links:
            parser.link_arguments(source, target, apply_on="instantiate")


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
