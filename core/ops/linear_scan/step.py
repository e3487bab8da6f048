"""One decoding step of the diagonal linear recurrence: O(1) work and memory per token."""
from __future__ import annotations

import torch


def linear_scan_step(a: torch.Tensor, b: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """a, b, h: [B, *rest] -> the next state a * h + b (plain ops: exports to ONNX as Mul + Add)."""
    return a * h + b
