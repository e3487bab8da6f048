"""The wavefront transducer loss against torchaudio's RNN-T loss: values and gradients, ragged
lengths, every reduction, and a label equal to blank's neighbour ids."""
import pytest
import torch
import torchaudio

from apps.speech.rnnt import rnnt_loss


def case(seed, b=3, t=9, u=5, v=7):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(b, t, u + 1, v, generator=g) * 2).requires_grad_()
    targets = torch.randint(1, v, (b, u), generator=g, dtype=torch.int32)
    logit_lens = torch.tensor([t, t - 3, 1][:b], dtype=torch.int32)
    target_lens = torch.tensor([u, 2, 0][:b], dtype=torch.int32)
    return logits, targets, logit_lens, target_lens


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_matches_torchaudio(seed, reduction):
    logits, targets, logit_lens, target_lens = case(seed)
    ours = rnnt_loss(logits, targets, logit_lens, target_lens, blank=0, reduction=reduction)
    ref = torchaudio.functional.rnnt_loss(logits, targets, logit_lens, target_lens, blank=0, reduction=reduction)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    weights = torch.randn_like(ours)
    g_ours, = torch.autograd.grad((ours * weights).sum(), logits)
    g_ref, = torch.autograd.grad((ref * weights).sum(), logits)
    real = torch.zeros_like(logits, dtype=torch.bool)  # torchaudio leaves cells outside each lattice at 0
    for i, (tl, ul) in enumerate(zip(logit_lens.tolist(), target_lens.tolist())):
        real[i, :tl, : ul + 1] = True
    torch.testing.assert_close(g_ours * real, g_ref * real, rtol=1e-4, atol=1e-6)
    assert g_ours[~real].abs().max() < 1e-6  # and so do we


def test_blank_id_other_than_zero():
    logits, targets, logit_lens, target_lens = case(7)
    targets = targets.masked_fill(targets == 3, 1)
    ours = rnnt_loss(logits, targets, logit_lens, target_lens, blank=3)
    ref = torchaudio.functional.rnnt_loss(logits, targets, logit_lens, target_lens, blank=3)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
