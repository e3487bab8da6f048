"""Linear layers with MKL-packed weights, for decoding on CPUs.

A decoding step multiplies a few dozen rows (batch x beams) by every weight matrix of the model.
At that size ``F.linear`` spends more time laying the weight out for the GEMM kernel than
multiplying: on a 2-core Xeon, [32, 256] x [256, 1024] runs at ~85 GFLOP/s through ``F.linear``
and ~170 GFLOP/s with the weight packed once by MKL (what ``torch.compile``'s CPU freezing does).
The results are the same numbers: MKL computes the same sums, only from a different layout.
bfloat16 weights are packed by oneDNN instead (``mkldnn._reorder_linear_weight``, what inductor's
CPU freezing uses), where the CPU has bf16 instructions: on AMX the packed [32, 1024] x [1024, 256]
GEMM is several times ``F.linear``'s speed, and its results equal ``F.linear``'s (both are oneDNN).

:func:`packed_linears` packs every plain ``nn.Linear`` of a model for the duration of a ``with``
block (generation wraps its loop in it). A layer's packed copy is kept on the layer and reused
while its weight is unchanged (same storage, same version counter), so a training step or a
``load_state_dict`` in between repacks instead of decoding with stale weights. Layers fall back
to ``F.linear`` where packing does not apply: without MKL (oneDNN with bf16 support for bfloat16),
off the CPU, other dtypes, and whenever autograd records.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from types import MethodType

import torch
import torch.nn.functional as F
from torch import nn

#: the row count MKL packs for; any count works, this one is what decoding batches look like
PACK_ROWS = 32


@cache  # (asked on every call of a packed layer: the backend queries are not free)
def _packable_dtype(dtype: torch.dtype) -> bool:
    if dtype == torch.float32:
        return torch.backends.mkl.is_available()
    if dtype == torch.bfloat16:
        return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return False


def can_pack(layer: nn.Module) -> bool:
    """A plain ``nn.Linear`` (or a subclass that keeps its forward) with float32 or bfloat16 CPU weights."""
    return (isinstance(layer, nn.Linear) and type(layer).forward is nn.Linear.forward
            and layer.weight.device.type == "cpu" and _packable_dtype(layer.weight.dtype))


def _pack(w: torch.Tensor) -> torch.Tensor:
    if w.dtype == torch.bfloat16:
        return torch.ops.mkldnn._reorder_linear_weight(w, PACK_ROWS)
    return torch.ops.mkl._mkl_reorder_linear_weight(w, PACK_ROWS)


def _packed_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    w = self.weight
    if (x.dtype != w.dtype or w.device.type != "cpu" or x.device != w.device or not _packable_dtype(w.dtype)
            or (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad))):
        return F.linear(x, w, self.bias)
    key = (w.data_ptr(), w._version, w.dtype)
    cached = self.__dict__.get("_packed")
    if cached is None or cached[0] != key:
        with torch.no_grad():
            cached = (key, _pack(w.detach()))
        self.__dict__["_packed"] = cached
    if w.dtype == torch.bfloat16:
        return torch.ops.mkldnn._linear_pointwise(x, cached[1], self.bias, "none", [None], "")
    return torch.ops.mkl._mkl_linear(x, cached[1], w, self.bias, PACK_ROWS)


@contextmanager
def packed_linears(model: object) -> Iterator[None]:
    """Inside the block, ``model``'s packable linears run from packed weights (a no-op for
    anything that is not an ``nn.Module``, e.g. an onnxruntime model)."""
    layers = [m for m in model.modules() if can_pack(m)] if isinstance(model, nn.Module) else []
    layers = [m for m in layers if "forward" not in m.__dict__]  # (nested blocks: the outer one patched them)
    for m in layers:
        m.forward = MethodType(_packed_forward, m)
    try:
        yield
    finally:
        for m in layers:
            del m.forward
