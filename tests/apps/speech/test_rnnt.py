"""The wavefront transducer loss against torchaudio's RNN-T loss: values and gradients, ragged
lengths, every reduction, and a label equal to blank's neighbour ids."""
import pytest
import torch
import torchaudio

from apps.speech.asr.rnnt import prune_bounds, pruned_rnnt_loss, rnnt_loss


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


# ----------------------------------------------------------------------------- pruned RNN-T

def joint_case(seed, b=3, t=9, u=5, v=7, j=6):
    g = torch.Generator().manual_seed(seed)
    enc = torch.randn(b, t, j, generator=g).requires_grad_()
    pred = torch.randn(b, u + 1, j, generator=g).requires_grad_()
    am = torch.randn(b, t, v, generator=g).requires_grad_()
    lm = torch.randn(b, u + 1, v, generator=g).requires_grad_()
    w = torch.randn(j, v, generator=g)
    joint = lambda e, p: torch.tanh(e + p) @ w * 3  # noqa: E731
    targets = torch.randint(1, v, (b, u), generator=g)
    return enc, pred, joint, am, lm, targets, torch.tensor([t, t - 3, 4]), torch.tensor([u, 2, 0])


@pytest.mark.parametrize("seed", range(3))
def test_simple_loss_is_the_transducer_loss_of_the_trivial_joiner(seed):
    enc, pred, joint, am, lm, targets, t_lens, u_lens = joint_case(seed)
    _, simple = pruned_rnnt_loss(enc, pred, joint, am, lm, targets, t_lens, u_lens, prune_range=3)
    ref = rnnt_loss(am[:, :, None] + lm[:, None], targets, t_lens, u_lens, reduction="none")
    torch.testing.assert_close(simple, ref, rtol=1e-5, atol=1e-5)
    weights = torch.randn(3)
    ours = torch.autograd.grad((simple * weights).sum(), [am, lm])
    want = torch.autograd.grad((ref * weights).sum(), [am, lm])
    for a, b in zip(ours, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_pruned_loss_with_a_window_as_wide_as_the_lattice_is_the_full_loss(seed):
    enc, pred, joint, am, lm, targets, t_lens, u_lens = joint_case(seed)
    pruned, _ = pruned_rnnt_loss(enc, pred, joint, am, lm, targets, t_lens, u_lens, prune_range=6)
    full = rnnt_loss(joint(enc[:, :, None], pred[:, None]), targets, t_lens, u_lens, reduction="none")
    torch.testing.assert_close(pruned, full, rtol=1e-5, atol=1e-5)
    ours = torch.autograd.grad(pruned.sum(), [enc, pred])
    want = torch.autograd.grad(full.sum(), [enc, pred])
    for a, b in zip(ours, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_narrow_windows_keep_a_subset_of_the_alignments(seed):
    enc, pred, joint, am, lm, targets, t_lens, u_lens = joint_case(seed, t=12, u=8)
    full = rnnt_loss(joint(enc[:, :, None], pred[:, None]), targets, t_lens, u_lens, reduction="none")
    pruned, _ = pruned_rnnt_loss(enc, pred, joint, am, lm, targets, t_lens, u_lens, prune_range=3)
    assert torch.isfinite(pruned).all() and (pruned >= full - 1e-4).all()
    pruned.sum().backward()
    assert enc.grad.abs().sum() > 0 and pred.grad.abs().sum() > 0


def test_windows_follow_the_alignment():
    """With a clear alignment (frame round(k T / U) emits label k), windows of 3 labels chosen by
    the simple model's posterior keep nearly all of the probability."""
    t, u, v = 12, 8, 7
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(1, v, (1, u), generator=g)
    am, lm = torch.randn(1, t, v, generator=g), torch.randn(1, u + 1, v, generator=g)
    for k in range(u):
        am[0, round(k * t / u), targets[0, k]] += 6
    am[..., 0] += 2
    add = lambda e, p: e + p  # noqa: E731  the full joiner is the trivial one: same posterior
    lens = torch.tensor([t]), torch.tensor([u])
    full = rnnt_loss(add(am[:, :, None], lm[:, None]), targets, *lens)
    pruned, _ = pruned_rnnt_loss(am, lm, add, am, lm, targets, *lens, prune_range=3)
    assert 0 <= float(pruned - full) < 0.1


def test_prune_bounds_respect_the_lattice():
    g = torch.Generator().manual_seed(0)
    occupancy = torch.rand(2, 10, 9, generator=g)
    t_lens, u_lens, s = torch.tensor([10, 6]), torch.tensor([8, 5]), 3
    starts = prune_bounds(occupancy, t_lens, u_lens, s)
    for row in range(2):
        st = starts[row, : t_lens[row]]
        steps = st[1:] - st[:-1]
        assert st[0] == 0 and (steps >= 0).all() and (steps <= s - 1).all()
        assert st[-1] <= u_lens[row] < st[-1] + s  # the last frame's window holds the last label
