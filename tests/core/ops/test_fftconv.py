"""FFT causal convolution vs the direct (Toeplitz) sum: outputs and gradients of u, k and D in
float64, odd and even lengths, filters longer and shorter than the input, plus float32/bf16."""
import pytest
import torch

from core.ops.fftconv import fftconv, fftconv_naive, next_fast_len


def inputs(t, filter_len, b=2, c=3, with_d=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, t, c, generator=g, dtype=torch.float64)
    # decaying filters like S4D / Hyena kernels, plus noise so every lag matters
    k = torch.randn(c, filter_len, generator=g, dtype=torch.float64) * torch.exp(-0.05 * torch.arange(filter_len))
    d = torch.randn(c, generator=g, dtype=torch.float64) if with_d else None
    return [x.requires_grad_() if x is not None else None for x in (u, k, d)]


@pytest.mark.parametrize("t,filter_len", [(1, 1), (2, 5), (7, 7), (16, 16), (33, 40), (100, 100), (129, 300), (50, 20)])
@pytest.mark.parametrize("with_d", [True, False])
def test_fft_matches_direct_outputs_and_gradients(t, filter_len, with_d):
    u, k, d = inputs(t, filter_len, with_d=with_d)
    ref = fftconv_naive(u, k, d)
    y = fftconv(u, k, d)
    assert y.shape == u.shape and y.dtype == torch.float64
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
    weights = torch.randn_like(y)
    leaves = [x for x in (u, k, d) if x is not None]
    ref_grads = torch.autograd.grad((ref * weights).sum(), leaves)
    grads = torch.autograd.grad((y * weights).sum(), leaves)
    for name, a, r in zip("ukD", grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-10, msg=f"gradient of {name}")


def test_causal_and_lag_zero_is_identity():
    """A unit impulse filter returns the input; changing a late input never changes earlier outputs."""
    u = inputs(20, 20, with_d=False)[0].detach()
    impulse = torch.zeros(3, 20, dtype=torch.float64)
    impulse[:, 0] = 1
    torch.testing.assert_close(fftconv(u, impulse), u, rtol=1e-12, atol=1e-12)
    k = torch.randn(3, 20, dtype=torch.float64)
    u2 = u.clone()
    u2[:, 12:] += 1.0
    torch.testing.assert_close(fftconv(u2, k)[:, :12], fftconv(u, k)[:, :12], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(fftconv(u2, k)[:, 12:], fftconv(u, k)[:, 12:])


def test_float32_within_1e4_relative_and_bf16_upcast():
    u, k, d = (x.detach() for x in inputs(1000, 1000, c=4, seed=3))
    ref = fftconv_naive(u, k, d)
    y32 = fftconv(u.float(), k.float(), d.float())
    assert y32.dtype == torch.float32
    assert ((y32.double() - ref).norm() / ref.norm()) < 1e-4
    y16 = fftconv(u.bfloat16(), k.float(), d.float())
    assert y16.dtype == torch.bfloat16
    # only the bf16 rounding of the input and of the output remains: the FFT itself runs in float32
    ref16 = fftconv_naive(u.bfloat16().double(), k, d)
    assert ((y16.double() - ref16).norm() / ref16.norm()) < 1e-2


def test_next_fast_len():
    assert [next_fast_len(n) for n in (1, 2, 7, 11, 14, 97, 2000, 4098)] == [1, 2, 8, 12, 15, 100, 2000, 4320]
    for n in range(1, 300):
        m = next_fast_len(n)
        assert m >= n and all(next_fast_len(j) == m for j in range(n, m + 1))


def test_gradients_of_one_input_only_and_no_silent_double_backward():
    u, k, _ = inputs(12, 12, with_d=False)
    (gk,) = torch.autograd.grad(fftconv(u.detach(), k).sum(), [k])
    (gk_ref,) = torch.autograd.grad(fftconv_naive(u.detach(), k).sum(), [k])
    torch.testing.assert_close(gk, gk_ref, rtol=1e-10, atol=1e-10)
    (gu,) = torch.autograd.grad(fftconv(u, k).square().sum(), [u], create_graph=True)
    with pytest.raises(RuntimeError):  # the hand-written backward is first-order only
        torch.autograd.grad(gu.sum(), [u])
