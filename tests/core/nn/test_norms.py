"""Norms by name: batchnorm over tokens equals PyTorch's BatchNorm1d over [B, D, T] (the layout
PatchTST transposes to), in training (batch statistics, gradients) and evaluation (running ones)."""
import pytest
import torch

from core.nn import make_norm


def test_token_batchnorm_is_batchnorm_over_batch_and_time():
    torch.manual_seed(0)
    norm, ref = make_norm("batchnorm", 6), torch.nn.BatchNorm1d(6)
    ref.load_state_dict(norm.state_dict())
    x = (torch.randn(4, 9, 6) * torch.arange(1.0, 7.0) + 3.0).requires_grad_()
    y, want = norm(x), ref(x.transpose(1, 2)).transpose(1, 2)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
    assert y.mean((0, 1)).abs().max() < 1e-5  # batch statistics, not per-token ones
    g = torch.randn_like(y)
    (gy,) = torch.autograd.grad(y, x, g)
    (gw,) = torch.autograd.grad(want, x, g)
    torch.testing.assert_close(gy, gw, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(norm.running_mean, ref.running_mean)
    norm.eval(), ref.eval()
    z = torch.randn(2, 3, 6)
    torch.testing.assert_close(norm(z), ref(z.transpose(1, 2)).transpose(1, 2), rtol=1e-5, atol=1e-5)


def test_unknown_norm_names_the_choices():
    with pytest.raises(ValueError, match="batchnorm"):
        make_norm("groupnorm", 4)
