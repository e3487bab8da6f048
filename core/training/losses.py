"""Label-smoothed cross-entropy that scores only real (non-padding) target positions."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def token_loss(hidden: torch.Tensor, head: nn.Module, targets: torch.Tensor, pad_id: int,
               smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Returns (smoothed loss, plain NLL, number of tokens), both averaged over real tokens.

    Padding rows are dropped *before* the output projection: with short targets in a token-budget
    batch a good share of positions are padding, and the vocabulary matmul is the largest in a
    small model. Smoothing follows ``F.cross_entropy(label_smoothing=eps)``: (1-eps)*NLL plus eps
    times the mean over the vocabulary of -log p.
    """
    keep = targets != pad_id
    logits = head(hidden[keep]).float()
    gold = targets[keep]
    logp = F.log_softmax(logits, dim=-1)
    nll = -logp.gather(1, gold[:, None]).squeeze(1).mean()
    loss = nll if smoothing == 0 else (1 - smoothing) * nll - smoothing * logp.mean(-1).mean()
    return loss, nll.detach(), int(gold.numel())
