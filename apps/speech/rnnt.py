"""The transducer (RNN-T) loss as a wavefront over the lattice's anti-diagonals, in plain PyTorch.

The loss sums over every alignment of U labels to T frames (Graves 2012). With the joint's
log-probabilities of blank, b[t, u], and of the next label, y[t, u] = log p(label_{u+1} | t, u),
the forward variable is

    alpha[0, 0] = 0,   alpha[t, u] = logaddexp(alpha[t-1, u] + b[t-1, u], alpha[t, u-1] + y[t, u-1])
    loss = -(alpha[T-1, U] + b[T-1, U])

alpha on one anti-diagonal d = t + u depends only on diagonal d - 1, so the T + U diagonals are
computed one after the other, each as a single vectorised step over all (batch, t); autograd then
gives the gradients through the same T + U steps. Only two [B, T, U+1] slices of the joint's output
are needed (blank and the true next label) after the log-softmax, instead of the whole
[B, T, U+1, V] lattice a dedicated kernel walks. On CPU this is several times faster than
``torchaudio.functional.rnnt_loss`` (its C++ loop is single-threaded), and it runs unchanged on a GPU.

Cells outside an utterance's own (T_b, U_b) lattice are computed too (from padding) but never feed
back into cells inside it: alpha only moves to larger t and u.
"""
from __future__ import annotations

import torch

#: "minus infinity" that keeps every gradient finite (logaddexp of two true -inf has a NaN gradient)
NEG = -1e30


def rnnt_loss(logits: torch.Tensor, targets: torch.Tensor, logit_lens: torch.Tensor, target_lens: torch.Tensor,
              blank: int = 0, reduction: str = "mean") -> torch.Tensor:
    """Same contract as ``torchaudio.functional.rnnt_loss``: logits [B, T, U+1, V] (unnormalised),
    targets [B, U] (int), lengths [B]; reduction mean / sum / none. Computed in float32 at least."""
    b, t, u1, _ = logits.shape
    log_probs = logits.float().log_softmax(-1) if logits.dtype != torch.float64 else logits.log_softmax(-1)
    blank_lp = log_probs[..., blank]  # [B, T, U+1]
    idx = targets.long().clamp_min(0)[:, None, :, None].expand(b, t, u1 - 1, 1)
    label_lp = log_probs[:, :, : u1 - 1].gather(-1, idx).squeeze(-1)  # [B, T, U]: log p(y_{u+1} | t, u)
    label_lp = torch.nn.functional.pad(label_lp, (0, 1), value=NEG)  # no label leaves the last row

    # skew so that diagonal d is a [B, T] slice: x_skew[:, d, t] = x[:, t, d - t]
    n_diag = t + u1 - 1
    tt = torch.arange(t, device=logits.device)
    uu = torch.arange(n_diag, device=logits.device)[:, None] - tt[None]  # [D, T]
    valid = (uu >= 0) & (uu < u1)
    uc = uu.clamp(0, u1 - 1)
    blank_skew = blank_lp[:, tt[None].expand_as(uc), uc].masked_fill(~valid, NEG)  # [B, D, T]
    label_skew = label_lp[:, tt[None].expand_as(uc), uc].masked_fill(~valid, NEG)

    first = torch.full((b, t), NEG, dtype=blank_lp.dtype, device=logits.device)
    first[:, 0] = 0.0  # alpha[0, 0]
    diagonals = [first]
    for d in range(1, n_diag):
        prev = diagonals[-1]
        via_blank = torch.nn.functional.pad((prev + blank_skew[:, d - 1])[:, :-1], (1, 0), value=NEG)  # from (t-1, u)
        via_label = prev + label_skew[:, d - 1]  # from (t, u-1)
        diagonals.append(torch.logaddexp(via_blank, via_label).masked_fill(~valid[d], NEG))
    alpha = torch.stack(diagonals, 1)  # [B, D, T]

    t_end, u_end = logit_lens.long() - 1, target_lens.long()
    rows = torch.arange(b, device=logits.device)
    losses = -(alpha[rows, t_end + u_end, t_end] + blank_lp[rows, t_end, u_end])
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()
