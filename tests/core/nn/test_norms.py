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


def test_rms_norm_of_bf16_input_takes_the_fused_float32_kernel():
    """A bf16 mixer output with a float32 weight: normalised in float32 (no composite fallback)."""
    import warnings

    from core.nn.norms import rms_norm

    torch.manual_seed(0)
    x = (torch.randn(2, 3, 16, 8) * 5).to(torch.bfloat16).requires_grad_()
    w = (torch.rand(8) + 0.5).requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when it cannot dispatch to the fused kernel
        y = rms_norm(x, w, 1e-6)
    assert y.dtype == torch.float32
    xf = x.detach().float().requires_grad_()
    want = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6) * w
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    (gw,) = torch.autograd.grad(want, xf, g)
    assert gx.dtype == torch.bfloat16
    torch.testing.assert_close(gx.float(), gw, rtol=2e-2, atol=2e-2)
