"""The thin LightningCLI wrapper every app's ``train.py`` calls."""
from __future__ import annotations

import copy
import importlib
import os
from pathlib import Path

import torch
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
        from the config/command line. In subclass mode (``model: {class_path, init_args}``, apps with
        several models) the hyperparameters go into ``init_args`` of the class the config names."""
        sub = self.config.get("subcommand")
        model = self.config[sub].get("model") if sub else None
        if model is None or "class_path" not in model:
            keep = getattr(self._model_class, "runtime_options", ())
            before = {k: copy.deepcopy(model.get(k)) for k in keep} if model is not None else {}
            super()._parse_ckpt_path()
            for key, value in before.items():
                self.config[sub]["model"][key] = value
            return
        ckpt_path = self.config[sub].get("ckpt_path")
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        hparams = torch.load(ckpt_path, weights_only=True, map_location="cpu").get("hyper_parameters", {})
        module, _, name = model.class_path.rpartition(".")
        keep = getattr(getattr(importlib.import_module(module), name), "runtime_options", ())
        init_args = {k: v for k, v in hparams.items() if not k.startswith("_") and k not in keep}
        if init_args:
            update = {sub: {"model": {"class_path": model.class_path, "init_args": init_args}}}
            self.config = self.parser.parse_object(update, self.config)


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
