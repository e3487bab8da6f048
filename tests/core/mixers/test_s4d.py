"""S4D: the FFT-convolution form (kernel + initial-state term + final state, all as matmuls) against
a token-by-token complex recurrence written here, outputs and every gradient in float64; the
Vandermonde kernel against its direct definition; prefill + real-arithmetic steps; S4D-Lin init."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from core.mixers.s4d import S4D
from core.models import BackboneConfig
from core.ops.fftconv import fftconv


def make(d=8, d_state=6, glu=True, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    cfg = BackboneConfig(d_model=d, n_heads=2, mixer_options={"d_state": d_state, "glu": glu, "dt_max": 0.5})
    m = S4D(cfg, causal=True).to(dtype)
    with torch.no_grad():  # spread the decays so short tests see both fast and slow modes
        m.log_A_real.add_(torch.randn_like(m.log_A_real))
    return m


def recurrence(m: S4D, x, h0=None):
    """h_t = Ā h_{t-1} + B̄ u_t, y_t = 2 Re(C h_t) + D u_t, one complex step per token."""
    u = m.in_proj(x)
    dt = m.log_dt.exp()[:, None]
    a = -m.log_A_real.exp() + 1j * m.A_imag
    abar = torch.exp(dt * a)
    bbar = (abar - 1) / a
    c = torch.view_as_complex(m.C.contiguous())
    h = torch.zeros(x.shape[0], *a.shape, dtype=abar.dtype) if h0 is None else torch.view_as_complex(h0.contiguous())
    ys = []
    for t in range(x.shape[1]):
        h = abar * h + bbar * u[:, t, :, None]
        ys.append(2 * (c * h).sum(-1).real + m.D * u[:, t])
    y = m.out_proj(F.gelu(torch.stack(ys, 1)))
    return (F.glu(y, dim=-1) if m.glu else y), torch.view_as_real(h)


@pytest.mark.parametrize("t", [1, 2, 9, 17, 50])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("glu", [True, False])
def test_conv_form_matches_recurrence_outputs_and_gradients(t, with_state, glu):
    m = make(glu=glu)
    x = torch.randn(2, t, 8, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 8, 3, 2, dtype=torch.float64, requires_grad=True) if with_state else None
    if t == 1 and with_state:  # one token with a state takes the step path: force the conv form
        y, h = _conv_form(m, x, h0)
    else:
        y, s = m(x, state=None if h0 is None else {"ssm": h0})
        h = None if s is None else s["ssm"]
    ref_y, ref_h = recurrence(m, x, h0)
    torch.testing.assert_close(y, ref_y, rtol=1e-9, atol=1e-10)
    if with_state:
        torch.testing.assert_close(h, ref_h, rtol=1e-9, atol=1e-10)
    weights = torch.randn_like(y)
    leaves = [x] + ([h0] if with_state else []) + list(m.parameters())
    loss = (y * weights).sum() + (h.square().sum() if with_state else 0)
    ref_loss = (ref_y * weights).sum() + (ref_h.square().sum() if with_state else 0)
    grads = torch.autograd.grad(loss, leaves)
    ref_grads = torch.autograd.grad(ref_loss, leaves)
    names = ["x"] + (["h0"] if with_state else []) + [n for n, _ in m.named_parameters()]
    for name, a, r in zip(names, grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-8, atol=1e-10, msg=f"gradient of {name}")


def _conv_form(m: S4D, x, h0):
    """The multi-token (prefill) path on a single token: kernel conv + initial-state term."""
    u = m.in_proj(x)
    y = fftconv(u, m.kernel(x.shape[1]), m.D)
    y0, h = m._from_state(u, h0)
    y = m.out_proj(F.gelu(y + y0))
    return (F.glu(y, dim=-1) if m.glu else y), h


@pytest.mark.parametrize("length", [1, 2, 3, 10, 64, 257])
def test_split_vandermonde_equals_direct_kernel(length):
    m = make(d=4, d_state=8)
    dt = m.log_dt.exp()[:, None]
    a = -m.log_A_real.exp() + 1j * m.A_imag
    c = torch.view_as_complex(m.C.contiguous())
    powers = torch.exp(dt[..., None] * a[..., None] * torch.arange(length, dtype=torch.float64))  # [C, N/2, L]
    direct = 2 * torch.einsum("cn,cnl->cl", c * (torch.exp(dt * a) - 1) / a, powers).real
    torch.testing.assert_close(m.kernel(length), direct, rtol=1e-10, atol=1e-12)


def test_prefill_then_steps_equal_full_pass_and_state_is_fixed():
    m = make(d_state=8)
    x = torch.randn(2, 30, 8, dtype=torch.float64)
    with torch.no_grad():
        full, _ = m(x)
        y, state = m(x[:, :13], state=m.init_state(2, x.device, x.dtype))
        outs = [y]
        for i in range(13, 30):
            y, state = m(x[:, i:i + 1], state=state)
            outs.append(y)
            assert state["ssm"].shape == (2, 8, 4, 2)
        _, ref_h = recurrence(m, x)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(state["ssm"], ref_h, rtol=1e-10, atol=1e-10)


def test_float32_within_1e4_relative():
    m64 = make(d=16, d_state=16, seed=2)
    m32 = copy.deepcopy(m64).float()
    x = torch.randn(2, 300, 16, dtype=torch.float64)
    with torch.no_grad():
        ref, _ = recurrence(m64, x)
        y, _ = m32(x.float())
    assert ((y.double() - ref).norm() / ref.norm()) < 1e-4


def test_s4d_lin_initialisation():
    torch.manual_seed(0)
    m = S4D(BackboneConfig(d_model=16, n_heads=2), causal=True)
    n = m.d_state // 2
    assert m.d_state == 64 and n == 32 and m.C.shape == (16, 32, 2)
    a = -m.log_A_real.exp() + 1j * m.A_imag
    torch.testing.assert_close(a, (-0.5 + 1j * math.pi * torch.arange(n)).expand(16, n).to(a.dtype))
    assert (m.log_dt.exp() >= 1e-3).all() and (m.log_dt.exp() <= 1e-1).all()
    # a time-invariant, input-independent filter inside the envelope exp(-dt l / 2) sum |C B̄|
    k = m.kernel(4096)
    dt = m.log_dt.exp()[:, None]
    cb = torch.view_as_complex(m.C.contiguous()) * (torch.exp(dt * a) - 1) / a
    envelope = 2 * torch.exp(-0.5 * dt * torch.arange(4096)) * cb.abs().sum(-1, keepdim=True)
    assert (k.abs() <= envelope + 1e-6).all()


def test_zero_padding_on_the_left_is_exact_in_the_middle_it_decays():
    """The documented limitation: padding is a zero input, not a skipped step."""
    m = make(d_state=8)
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    with torch.no_grad():
        y_ref, _ = m(x)
        padded = torch.cat([torch.randn(1, 3, 8, dtype=torch.float64), x], 1)
        y_left, _ = m(padded, mask=torch.tensor([[False] * 3 + [True] * 6]))
        middle = torch.cat([x[:, :3], torch.randn(1, 1, 8, dtype=torch.float64), x[:, 3:]], 1)
        y_mid, _ = m(middle, mask=torch.tensor([[True] * 3 + [False] + [True] * 3]))
    torch.testing.assert_close(y_left[:, 3:], y_ref, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(y_mid[:, 4:], y_ref[:, 3:])


def test_real_arithmetic_steps_match_recurrence_with_gradients():
    """The ONNX-friendly step (no complex tensors) against the complex recurrence, gradients too."""
    m = make(d_state=8, seed=1)
    x = torch.randn(2, 6, 8, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 8, 4, 2, dtype=torch.float64)
    state, outs = {"ssm": h0}, []
    for i in range(6):
        y, state = m(x[:, i:i + 1], state=state)
        outs.append(y)
    stepped = torch.cat(outs, 1)
    ref, ref_h = recurrence(m, x, h0)
    torch.testing.assert_close(stepped, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(state["ssm"], ref_h, rtol=1e-10, atol=1e-12)
    leaves = [x, m.log_dt, m.log_A_real, m.A_imag, m.C, m.D]
    grads = torch.autograd.grad(stepped.square().sum(), leaves)
    ref_grads = torch.autograd.grad(ref.square().sum(), leaves)
    for a, r in zip(grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-11)
