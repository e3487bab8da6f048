"""Checkpoint I/O that never leaves a half-written file, loads without unpickling code
(``weights_only=True``), averages the last N checkpoints, and exports portable weights."""
from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from safetensors.torch import load_model, save_model
from torch import nn

from core.errors import CheckpointError
from core.io import atomic_write, atomic_write_text

#: what torch.load raises on a file that is not a complete torch.save archive (truncated zip: RuntimeError
#: "PytorchStreamReader failed ..." or OSError EINVAL; empty: EOFError; other bytes: UnpicklingError/KeyError)
_NOT_A_CHECKPOINT = (RuntimeError, EOFError, KeyError, ValueError, IndexError, OSError, pickle.UnpicklingError)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint writer: temp file + rename, so a crash mid-save keeps the last good file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = True) -> dict[str, Any]:
        return load_checkpoint(path, map_location or "cpu")


def datamodule_options(path: str | Path) -> dict[str, Any]:
    """The datamodule's constructor arguments a checkpoint recorded (a datamodule that calls
    ``save_hyperparameters``), without LightningCLI's bookkeeping keys (``_class_path``...), so
    ``DataModule(**options)`` rebuilds the data the model was trained on; ``{}`` if none."""
    options = load_checkpoint(path).get("datamodule_hyper_parameters") or {}
    return {k: v for k, v in options.items() if not k.startswith("_")}


def datamodule_from_checkpoint(cls, path: str | Path, **overrides):
    """``cls(**datamodule_options(path), **overrides)``; options this code no longer takes (a
    checkpoint from an older version) are a :class:`CheckpointError` naming the file."""
    options = {**datamodule_options(path), **overrides}
    try:
        return cls(**options)
    except TypeError as err:
        raise CheckpointError(f"{path}: its data options do not fit {cls.__name__} ({err}); "
                              "train again with this version") from err


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a Lightning checkpoint as plain data; no code from the file is executed.

    Whatever is wrong with the file (missing, a folder, truncated by a full disk or a killed copy,
    not a torch file, pickled objects, no ``state_dict``) is a :class:`CheckpointError` naming it:
    torch's own messages ("PytorchStreamReader failed reading zip archive", a bare ``EOFError``)
    name neither the file nor the cause."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a checkpoint file (a folder?)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError:
        raise  # "<path>: Permission denied" is already the whole story
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise CheckpointError(f"{path}: not a checkpoint (truncated or not written by torch.save)") from err
        found = re.search(r"GLOBAL (\S+)", str(err))
        raise CheckpointError(f"{path}: holds pickled Python objects"
                              + (f" ({found[1]})" if found else "") + ", which are never loaded (weights_only=True)") from err
    except _NOT_A_CHECKPOINT as err:
        raise CheckpointError(f"{path}: not a checkpoint (truncated or not written by torch.save)") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    return ckpt


def average_checkpoints(paths: list[str | Path], output: str | Path) -> Path:
    """Mean of the floating-point weights of several checkpoints (Vaswani et al. average the last
    5-20), written as a checkpoint shaped like the last input so every loader accepts it."""
    if not paths:
        raise CheckpointError("no checkpoints to average")
    avg: dict[str, torch.Tensor] | None = None
    for p in paths:
        sd = load_checkpoint(p)["state_dict"]
        if avg is None:
            avg = {k: v.double() if v.is_floating_point() else v.clone() for k, v in sd.items()}
        else:
            if sd.keys() != avg.keys():
                raise CheckpointError(f"{p}: different parameters from {paths[0]}")
            for k, v in sd.items():
                if v.is_floating_point():
                    avg[k] += v.double()
    last = load_checkpoint(paths[-1])
    last["state_dict"] = {k: (v / len(paths)).to(last["state_dict"][k].dtype) if v.is_floating_point() else v
                          for k, v in avg.items()}
    for key in ("optimizer_states", "lr_schedulers", "callbacks", "loops"):
        last.pop(key, None)  # an average is for evaluation/export, not for resuming
    last["averaged_from"] = [str(p) for p in paths]
    atomic_write(output, lambda tmp: torch.save(last, tmp))
    return Path(output)


def save_portable(directory: str | Path, model: nn.Module, config: dict[str, Any],
                  tokenizers: dict[str, str] | None = None) -> Path:
    """``model.safetensors`` + ``config.json`` (+ ``tokenizer.<name>.json``): loadable with no
    Lightning and no pickle."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / "model.safetensors", lambda tmp: save_model(model, tmp))
    atomic_write_text(directory / "config.json", json.dumps(config, indent=2))
    for name, text in (tokenizers or {}).items():
        atomic_write_text(directory / f"tokenizer.{name}.json", text)
    return directory


def load_portable_weights(directory: str | Path, model: nn.Module) -> nn.Module:
    load_model(model, str(Path(directory) / "model.safetensors"))
    return model
