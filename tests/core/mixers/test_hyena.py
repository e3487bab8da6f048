"""Hyena (order 2): the FFT long convolutions against direct (Toeplitz) convolutions written here,
outputs and every parameter gradient in float64, filters past max_len, per-token decoding from a
window of the last max_len inputs, prefill from a window, and the implicit filter's definition."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from core.mixers.hyena import Hyena
from core.models import BackboneConfig
from core.ops.fftconv import fftconv_naive
from tests.core.mixers.gradients import assert_same_gradients, parameters_and

D = 8


def make(max_len=32, seed=0, dtype=torch.float64, **opts):
    torch.manual_seed(seed)
    cfg = BackboneConfig(d_model=D, n_heads=2, max_len=max_len, mixer_options={"filter_order": 16, **opts})
    return Hyena(cfg, causal=True).to(dtype)


def reference(m: Hyena, x):
    """y = out(x2 ⊙ (h2 * (x1 ⊙ (h1 * v)))) with every convolution a direct sum."""
    t = x.shape[1]
    u = m.in_proj(x).transpose(1, 2)
    k = m.short_conv.kernel
    u = F.conv1d(F.pad(u, (k - 1, 0)), m.short_conv.weight, m.short_conv.bias, groups=3 * D).transpose(1, 2)
    v, x1, x2 = u.split(D, -1)
    h = m.filter(t)  # taps for lags < min(t, max_len); longer lags are zero
    h1, h2 = h.split(D)
    b1, b2 = m.filter.bias.split(D)
    z = x1 * fftconv_naive(v, h1, b1)
    return m.out_proj(x2 * fftconv_naive(z, h2, b2))


@pytest.mark.parametrize("t,max_len", [(1, 32), (6, 32), (17, 32), (40, 16)])
def test_fft_form_matches_direct_convolution_outputs_and_gradients(t, max_len):
    m = make(max_len=max_len)
    x = torch.randn(2, t, D, dtype=torch.float64, requires_grad=True)
    y, state = m(x)
    ref = reference(m, x)
    assert state is None
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-12)
    assert_same_gradients(y, ref, parameters_and(m, x=x), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("t,max_len,prefill", [(20, 32, 7), (30, 12, 5), (30, 12, 17)])
def test_prefill_then_steps_equal_full_pass(t, max_len, prefill):
    """Also past max_len, where the window has dropped the oldest inputs (lags >= max_len are 0)."""
    m = make(max_len=max_len, seed=1)
    x = torch.randn(2, t, D, dtype=torch.float64)
    with torch.no_grad():
        full, _ = m(x)
        state = m.init_state(2, x.device, x.dtype)
        y, state = m(x[:, :prefill], state=state)
        outs = [y]
        for i in range(prefill, t):
            y, state = m(x[:, i:i + 1], state=state)
            outs.append(y)
            assert state["window1"].shape == state["window2"].shape == (2, D, max_len)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-10, atol=1e-12)
    # the windows hold the last max_len inputs of each long convolution (v, then x1 ⊙ (h1 * v))
    u = F.conv1d(F.pad(m.in_proj(x).transpose(1, 2), (2, 0)), m.short_conv.weight, m.short_conv.bias,
                 groups=3 * D)
    last_v = F.pad(u[:, :D], (max_len, 0))[..., -max_len:]
    torch.testing.assert_close(state["window1"], last_v, rtol=1e-12, atol=1e-12)


def test_steps_from_zero_state_with_gradients():
    """Decoding token by token from the start is differentiable and equals the FFT form."""
    m = make(max_len=8, seed=2)
    x = torch.randn(1, 11, D, dtype=torch.float64, requires_grad=True)
    state = m.init_state(1, x.device, x.dtype)
    outs = []
    for i in range(11):
        y, state = m(x[:, i:i + 1], state=state)
        outs.append(y)
    stepped = torch.cat(outs, 1)
    full, _ = m(x)
    torch.testing.assert_close(stepped, full, rtol=1e-10, atol=1e-12)
    g1 = torch.autograd.grad(stepped.square().sum(), [x, m.filter.ffn[0].weight])
    g2 = torch.autograd.grad(full.square().sum(), [x, m.filter.ffn[0].weight])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_implicit_filter_definition():
    m = make(max_len=64, emb_dim=5)
    f = m.filter
    lag = torch.arange(64, dtype=torch.float64)
    # features: t = l / (L - 1), then cos / -sin of 2 pi f l / L for bands f = linspace(1e-4, 1, 2)
    close = dict(rtol=1e-6, atol=1e-6)  # the features are built in float32
    torch.testing.assert_close(f.z[:, 0], lag / 63, **close)
    angle = 2 * math.pi * lag[:, None] / 64 * torch.tensor([1e-4, 1.0], dtype=torch.float64)
    torch.testing.assert_close(f.z[:, 1:3], torch.cos(angle), **close)
    torch.testing.assert_close(f.z[:, 3:5], -torch.sin(angle), **close)
    # decay window: the fastest channel falls to 1e-2 at 30% of max_len, the slowest at 150%
    rates = f.rates[:D]
    torch.testing.assert_close(rates[0], torch.tensor(-math.log(1e-2) / 1.5, dtype=rates.dtype))
    torch.testing.assert_close(rates[-1], torch.tensor(-math.log(1e-2) / 0.3, dtype=rates.dtype))
    torch.testing.assert_close(f.rates[D:], rates)  # both filters span the same rates
    h = f(64)
    torch.testing.assert_close(h, f.ffn(f.z).T * torch.exp(-f.t.T * f.rates[:, None]))
    assert f(100).shape == (2 * D, 64)  # defined up to max_len only


def test_float32_within_1e4_relative():
    m64 = make(max_len=512, seed=3)
    m32 = copy.deepcopy(m64).float()
    x = torch.randn(2, 400, D, dtype=torch.float64)
    with torch.no_grad():
        ref = reference(m64, x)
        y, _ = m32(x.float())
    assert ((y.double() - ref).norm() / ref.norm()) < 1e-4


def test_left_padding_from_a_zero_window_is_exact():
    m = make(max_len=16, seed=4)
    x = torch.randn(1, 7, D, dtype=torch.float64)
    padded = torch.cat([torch.randn(1, 4, D, dtype=torch.float64), x], 1)
    mask = torch.tensor([[False] * 4 + [True] * 7])
    with torch.no_grad():
        y_a, s_a = m(x, state=m.init_state(1, x.device, x.dtype))
        y_b, s_b = m(padded, state=m.init_state(1, x.device, x.dtype), mask=mask)
    torch.testing.assert_close(y_b[:, 4:], y_a, rtol=1e-10, atol=1e-12)
    for key in s_a:
        torch.testing.assert_close(s_b[key], s_a[key], rtol=1e-10, atol=1e-12)
