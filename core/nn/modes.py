"""Switching a module to eval mode for a while and back, whatever mode it was in."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def evaluating(module: nn.Module, no_grad: bool = True) -> Iterator[nn.Module]:
    """``with evaluating(model): ...`` runs in eval mode (and without autograd unless
    ``no_grad=False``) and restores the previous mode afterwards, also on error: decoding in the
    middle of a training epoch must not leave dropout off for the rest of it."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            yield module
    finally:
        module.train(was_training)
