"""Forgetting attention: both parallel forms (folded training form, explicit-bias form used with a
cache) against an explicit per-query softmax loop (outputs and every gradient, float64), padding,
sliding window, float32 accuracy under strong forgetting, prefill + steps equal to the full pass."""
import pytest
import torch
import torch.nn.functional as F

from core.mixers.forgetting_attention import ForgettingAttention
from core.models import BackboneConfig
from tests.core.mixers.gradients import assert_same_gradients, parameters_and


def make(seed=0, dtype=torch.float64, window=None, **opts):
    torch.manual_seed(seed)
    m = ForgettingAttention(BackboneConfig(d_model=16, n_heads=2, window=window, mixer_options=opts), causal=True)
    with torch.no_grad():  # gates from weak to strong forgetting, varying per token
        m.fgate.weight.normal_(0, 1.0)
        m.fgate.bias.copy_(torch.tensor([2.0, -1.0]))
    return m.to(dtype)


def reference(m: ForgettingAttention, x, mask=None, window=None):
    """softmax_j(q_i k_j / sqrt(d) + sum_{l=j+1}^{i} log f_l) over allowed keys, one query at a time."""
    b, t, _ = x.shape
    h, dh = m.n_heads, m.head_dim
    q, k, v = (x @ m.qkv.weight.T).view(b, t, 3, h, dh).unbind(2)  # [B, T, H, Dh]
    if m.qk_norm:
        q = F.rms_norm(q, (dh,)) * m.q_scale[:, 0]
        k = F.rms_norm(k, (dh,)) * m.k_scale[:, 0]
    logf = F.logsigmoid(x @ m.fgate.weight.T + m.fgate.bias)  # [B, T, H]
    real = torch.ones(b, t, dtype=torch.bool) if mask is None else mask
    rows = []
    for i in range(t):
        logits = []
        for j in range(i + 1):
            decay = logf[:, j + 1:i + 1].sum(1)  # [B, H]
            s = (q[:, i] * k[:, j]).sum(-1) / dh**0.5 + decay
            visible = (real[:, j] | (j == i)) & ((i - j < window) if window else True)  # (no empty rows)
            logits.append(s.masked_fill(~visible[:, None], float("-inf")))
        w = torch.softmax(torch.stack(logits, -1), -1)  # [B, H, i+1]
        rows.append(torch.einsum("bhj,bjhd->bhd", w, v[:, :i + 1]).reshape(b, h * dh))
    y = torch.stack(rows, 1)
    if m.ogate is not None:
        y = y * torch.sigmoid(x @ m.ogate.weight.T)
    return y @ m.out.weight.T


def check_grads(m, x, y, ref):
    assert_same_gradients(y, ref, parameters_and(m, x=x), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("opts", [{}, {"qk_norm": True, "output_gate": True}], ids=["plain", "pro"])
@pytest.mark.parametrize("with_cache", [False, True], ids=["folded", "bias"])
def test_matches_per_query_softmax_loop(opts, with_cache):
    m = make(**opts)
    x = torch.randn(2, 9, 16, dtype=torch.float64, requires_grad=True)
    state = m.init_state(2, x.device, x.dtype) if with_cache else None
    y, _ = m(x, state=state)
    ref = reference(m, x)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-12)
    check_grads(m, x, y, ref)


@pytest.mark.parametrize("with_cache", [False, True], ids=["folded", "bias"])
def test_padding_is_invisible_to_real_positions(with_cache):
    m = make(seed=1)
    x = torch.randn(2, 8, 16, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[False, False, True, True, True, True, True, True],   # left padded
                         [True, True, True, True, True, False, False, False]])  # right padded
    state = m.init_state(2, x.device, x.dtype) if with_cache else None
    y, _ = m(x, state=state, mask=mask)
    ref = reference(m, x, mask)
    assert torch.isfinite(y).all()  # padded rows too: they feed later layers
    torch.testing.assert_close(y[mask], ref[mask], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(y[0, 2:], reference(m, x[:1, 2:])[0], rtol=1e-10, atol=1e-12)
    w = torch.randn_like(y) * mask[..., None]
    g, = torch.autograd.grad((y * w).sum(), x)
    g_ref, = torch.autograd.grad((ref * w).sum(), x)
    torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-10)


def test_sliding_window():
    m = make(seed=2, window=3)
    x = torch.randn(1, 9, 16, dtype=torch.float64, requires_grad=True)
    y, _ = m(x)
    ref = reference(m, x, window=3)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-12)
    check_grads(m, x, y, ref)


def test_float32_within_1e4_relative_under_strong_forgetting():
    """Long enough for the cumulative log gates to reach about -1000 (f ~ 0.05 per step):
    the folded form carries -D_j inside q.k and must stay as accurate as the explicit bias."""
    m = make(seed=3)
    with torch.no_grad():
        m.fgate.weight.mul_(0.1)
        m.fgate.bias.copy_(torch.tensor([-3.0, 0.5]))
    x = torch.randn(1, 300, 16, dtype=torch.float64)
    with torch.no_grad():
        ref, _ = m(x, state=m.init_state(1, x.device, x.dtype))  # float64, explicit bias
        m32 = m.float()
        for state in (None, m32.init_state(1, x.device, torch.float32)):
            y, _ = m32(x.float(), state=state)
            assert (y.double() - ref).norm() / ref.norm() < 1e-4


def test_prefill_then_steps_equals_full_and_cache_keeps_padding_masked():
    m = make(seed=4).eval()
    x = torch.randn(2, 12, 16, dtype=torch.float64)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, :3] = False  # left padding of the second row, inside the prefill
    with torch.no_grad():
        full, _ = m(x, mask=mask)
        y, state = m(x[:, :5], state=m.init_state(2, x.device, x.dtype), mask=mask[:, :5])
        outs = [y]
        for i in range(5, 12):
            y, state = m(x[:, i:i + 1], state=state, mask=mask[:, i:i + 1])
            outs.append(y)
    torch.testing.assert_close(torch.cat(outs, 1)[mask], full[mask], rtol=1e-10, atol=1e-12)
    assert state["key"].shape[2] == 12 and torch.isinf(state["logf"][1, :, :3]).all()
    assert (state["logf"][..., -1] == 0).all() and (state["logf"][0].diff(dim=-1) >= 0).all()
