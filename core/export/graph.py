"""Writing exported graphs: one opset, one ``torch.onnx.export`` call shape, atomic files.

Every export in the project goes through :func:`export_graph` (the dynamo exporter, chosen
explicitly) and :func:`write_config`, so a crash mid-export leaves either no file or a complete
one (:mod:`core.io`), never a truncated graph that a runner would load.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from core.nn.modes import evaluating
from core.errors import UserError
from core.io import atomic_write, atomic_write_text

#: torchlib (the dynamo exporter's op library) is written against opset 18; onnxruntime >= 1.14 runs it.
DEFAULT_OPSET = 18
CONFIG_FILE = "config.json"
#: protobuf caps a file at 2 GB: larger models keep their weights in a ``.data`` file beside the graph
_EXTERNAL_DATA_BYTES = 1 << 30
#: positions that read a fixed-size table (longer sequences cannot be encoded/decoded)
_TABLE_POSITIONS = ("rope", "sinusoidal", "learned")


def check_dynamo(dynamo: bool) -> None:
    # dynamo=True (torch.export -> onnxscript/torchlib) is the only exporter that works here and
    # the one PyTorch maintains. The TorchScript exporter (dynamo=False) has no symbolic for
    # aten::rms_norm (our default norm), and tracing would freeze the attention mixer's
    # shape-dependent Python branches (`q_len == k_len` -> is_causal fast path,
    # `min(k_len, window - 1)` cache truncation) to whatever the example shapes took, giving
    # graphs that are wrong for other cache lengths. torch.export keeps those sizes symbolic:
    # the branches resolve to the general masked path and the window cut to a symbolic Min+Slice.
    if not dynamo:
        raise ValueError("ONNX export needs dynamo=True: the TorchScript exporter cannot "
                         "export rms_norm and bakes shape-dependent branches into the graph")


def max_len(backbone) -> int | None:
    """The longest sequence a backbone's position table encodes; None when positions have no table."""
    return backbone.max_len if backbone.position in _TABLE_POSITIONS else None


def new_output_dir(path: str | Path) -> Path:
    """``path`` as a folder to export into: it must be new or empty (an export never overwrites)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"{path} is not empty; choose a new --out (nothing is overwritten)")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def exporting(model: nn.Module):
    """:func:`core.nn.modes.evaluating` (eval mode, no autograd, the caller's mode put back) without
    the exporter's warnings about dynamic axis names it does not keep."""
    folding = logging.getLogger("onnxscript.optimizer._constant_folding")  # one line per Split it skips
    level = folding.level
    with evaluating(model), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
        folding.setLevel(logging.ERROR)
        try:
            yield model
        finally:
            folding.setLevel(level)


def export_graph(module: nn.Module, args: tuple, path: str | Path, input_names: Sequence[str],
                 output_names: Sequence[str], dynamic_shapes, opset: int = DEFAULT_OPSET,
                 length_axes: dict[str, tuple[int, str]] | None = None) -> Path:
    """``torch.onnx.export(dynamo=True)`` of ``module(*args)`` written atomically to ``path``.

    ``length_axes`` names output axes the exporter would call after their symbolic formula
    (``past_len + tgt_len``, a Min/Max with a sliding window): ``{output: (axis, "present_len")}``."""
    prog = torch.onnx.export(module.eval(), args, dynamo=True, opset_version=opset, verbose=False,
                             input_names=list(input_names), output_names=list(output_names),
                             dynamic_shapes=dynamic_shapes)
    if length_axes:
        _name_axes(prog.model, length_axes)
    save_program(prog, path, external_data=_size(module) > _EXTERNAL_DATA_BYTES)
    return Path(path)


def save_program(prog, path: str | Path, external_data: bool = False) -> None:
    """Save an ``ONNXProgram`` atomically. With external data the graph and its ``.data`` file are
    written in a temp folder beside ``path`` and moved in, weights first."""
    path = Path(path)
    if not external_data:
        atomic_write(path, lambda tmp: prog.save(tmp))
        return
    tmp_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        prog.save(tmp_dir / path.name, external_data=True)
        for f in sorted(tmp_dir.iterdir(), key=lambda f: f.name == path.name):  # the graph last
            os.replace(f, path.parent / f.name)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def write_config(path: str | Path, config: dict[str, Any]) -> Path:
    atomic_write_text(path, json.dumps(config, indent=2))
    return Path(path)


def _size(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def _name_axes(model, axes: dict[str, tuple[int, str]]) -> None:
    import onnx_ir as ir

    for value in model.graph.outputs:
        if value.name in axes and value.shape is not None:
            axis, name = axes[value.name]
            dims = list(value.shape)
            dims[axis] = ir.SymbolicDim(name)
            value.shape = ir.Shape(dims)


__all__ = ["CONFIG_FILE", "DEFAULT_OPSET", "check_dynamo", "exporting", "export_graph", "max_len", "new_output_dir", "save_program",
           "write_config"]
