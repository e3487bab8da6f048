"""Checkpoint I/O that never leaves a half-written file, loads without unpickling code
(``weights_only=True``), averages the last N checkpoints, and exports portable weights."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from safetensors.torch import load_model, save_model
from torch import nn

from core.io import atomic_write, atomic_write_text


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint writer: temp file + rename, so a crash mid-save keeps the last good file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = True) -> dict[str, Any]:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a Lightning checkpoint as plain data; no code from the file is executed."""
    return torch.load(path, map_location="cpu", weights_only=True)


def average_checkpoints(paths: list[str | Path], output: str | Path) -> Path:
    """Mean of the floating-point weights of several checkpoints (Vaswani et al. average the last
    5-20), written as a checkpoint shaped like the last input so every loader accepts it."""
    if not paths:
        raise ValueError("no checkpoints to average")
    avg: dict[str, torch.Tensor] | None = None
    for p in paths:
        sd = load_checkpoint(p)["state_dict"]
        if avg is None:
            avg = {k: v.double() if v.is_floating_point() else v.clone() for k, v in sd.items()}
        else:
            if sd.keys() != avg.keys():
                raise ValueError(f"{p} has different parameters from {paths[0]}")
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
