"""RWKV-6 time mixing against a per-token loop written from the paper's equations (outputs and every
parameter gradient, float64), padding anywhere in the sequence, float32 accuracy, chunked prefill
followed by decoding steps. (HF transformers implements RWKV-4 only: no peer to compare with.)"""
import pytest
import torch
import torch.nn.functional as F

from core.mixers.rwkv import RWKV6
from core.models import BackboneConfig


def make(seed=0, dtype=torch.float64, chunk=4):
    torch.manual_seed(seed)
    cfg = BackboneConfig(d_model=16, n_heads=2, mixer_options={"chunk": chunk, "mix_lora": 4, "decay_lora": 6})
    m = RWKV6(cfg, causal=True)
    with torch.no_grad():  # switch the zero-initialised LoRAs on so every path carries signal
        m.mix_a.normal_(0, 0.5)
        m.decay_a.normal_(0, 0.5)
        m.decay_b.normal_(0, 0.5)
        m.mix_b.normal_(0, 0.3)
        m.norm.weight.normal_(1, 0.2)
        m.norm.bias.normal_(0, 0.2)
    return m.to(dtype)


def reference(m: RWKV6, x, shift=None, state=None):
    """Token by token: ddlerp, projections, decay, wkv with bonus, per-head GroupNorm, gate, output."""
    b, t, d = x.shape
    h, dh = m.n_heads, m.head_dim
    prev = x.new_zeros(b, d) if shift is None else shift
    s = x.new_zeros(b, h, dh, dh) if state is None else state
    ys = []
    for i in range(t):
        xt = x[:, i]
        xx = prev - xt
        lora = torch.tanh((xt + xx * m.mu_x) @ m.mix_a).view(b, 5, -1)
        xw, xk, xv, xr, xg = (xt + xx * (m.mu[f] + lora[:, f] @ m.mix_b[f]) for f in range(5))
        r, k, v = (y.view(b, h, dh) for y in (xr @ m.receptance.weight.T, xk @ m.key.weight.T, xv @ m.value.weight.T))
        g = F.silu(xg @ m.gate.weight.T)
        w = torch.exp(-torch.exp(m.decay + torch.tanh(xw @ m.decay_a) @ m.decay_b)).view(b, h, dh)
        kv = k[..., :, None] * v[..., None, :]
        o = torch.einsum("bhk,bhkv->bhv", r, s + m.bonus[..., None] * kv)
        s = w[..., None] * s + kv
        mean, var = o.mean(-1, keepdim=True), o.var(-1, unbiased=False, keepdim=True)
        o = ((o - mean) / (var + 64e-5).sqrt()).reshape(b, d) * m.norm.weight + m.norm.bias
        ys.append((o * g) @ m.out.weight.T)
        prev = xt
    return torch.stack(ys, 1), prev, s


@pytest.mark.parametrize("t,chunk", [(1, 4), (6, 4), (13, 4), (40, 16)])
@pytest.mark.parametrize("with_state", [False, True])
def test_matches_per_token_equations_outputs_and_gradients(t, chunk, with_state):
    m = make(chunk=chunk)
    x = torch.randn(2, t, 16, dtype=torch.float64, requires_grad=True)
    shift = torch.randn(2, 16, dtype=torch.float64, requires_grad=True) if with_state else None
    s0 = torch.randn(2, 2, 8, 8, dtype=torch.float64, requires_grad=True) if with_state else None
    state = {"shift": shift, "state": s0} if with_state else None
    y, new = m(x, state=state)
    ref, ref_shift, ref_s = reference(m, x, shift, s0)
    torch.testing.assert_close(y, ref, rtol=1e-9, atol=1e-11)
    if with_state:
        torch.testing.assert_close(new["shift"], ref_shift)
        torch.testing.assert_close(new["state"], ref_s, rtol=1e-9, atol=1e-11)
    w = torch.randn_like(y)
    names = ["x"] + ["shift", "state"] * with_state + [n for n, _ in m.named_parameters()]
    leaves = [x] + [shift, s0] * with_state + list(m.parameters())
    extra = (lambda st: st["state"].sum()) if with_state else (lambda st: 0)
    grads = torch.autograd.grad((y * w).sum() + extra(new or {}), leaves, allow_unused=True)
    ref_grads = torch.autograd.grad((ref * w).sum() + (ref_s.sum() if with_state else 0), leaves, allow_unused=True)
    for name, a, r in zip(names, grads, ref_grads):
        if r is None:  # (the shift state gets no gradient through the outputs of t == 1 without one)
            assert a is None or not a.any(), name
            continue
        torch.testing.assert_close(a, r, rtol=1e-8, atol=1e-10, msg=f"gradient of {name}")


def test_float32_within_1e4_relative():
    m = make(seed=1, chunk=16)
    x = torch.randn(2, 100, 16, dtype=torch.float64)
    with torch.no_grad():
        ref, _, _ = reference(m, x)
        y, _ = m.float()(x.float())
    assert (y.double() - ref).norm() / ref.norm() < 1e-4


def test_padding_anywhere_neither_shifts_nor_writes():
    """Real tokens with padding before, between and after them give the outputs and final state of
    the same real tokens alone: the shift skips padding, and padding leaves the wkv state alone."""
    m = make(seed=2)
    x = torch.randn(1, 11, 16, dtype=torch.float64)
    keep = torch.tensor([[False, False, True, True, False, True, True, True, False, True, False]])
    shift, s0 = torch.randn(1, 16, dtype=torch.float64), torch.randn(1, 2, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        y, new = m(x, state={"shift": shift, "state": s0}, mask=keep)
        ref, ref_shift, ref_s = reference(m, x[keep][None], shift, s0)
        y_train, _ = m(x, mask=keep)  # training form (no state): zero shift before the first token
        ref_train, _, _ = reference(m, x[keep][None])
    torch.testing.assert_close(y[keep], ref[0], rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(new["shift"], ref_shift)
    torch.testing.assert_close(new["state"], ref_s, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(y_train[keep], ref_train[0], rtol=1e-9, atol=1e-11)


def test_prefill_then_steps_equals_full():
    m = make(seed=3).eval()
    x = torch.randn(2, 15, 16, dtype=torch.float64)
    mask = torch.ones(2, 15, dtype=torch.bool)
    mask[1, :4] = False  # left padding of the second row
    mask[0, 9] = False  # a padded step in the first row's decoding
    with torch.no_grad():
        full, final = m(x, state=m.init_state(2, x.device, x.dtype), mask=mask)
        y, state = m(x[:, :6], state=m.init_state(2, x.device, x.dtype), mask=mask[:, :6])
        outs = [y]
        for i in range(6, 15):
            y, state = m(x[:, i:i + 1], state=state, mask=mask[:, i:i + 1])
            outs.append(y)
    torch.testing.assert_close(torch.cat(outs, 1)[mask], full[mask], rtol=1e-9, atol=1e-11)
    for key in ("shift", "state"):
        torch.testing.assert_close(state[key], final[key], rtol=1e-9, atol=1e-11)
    assert state["state"].shape == (2, 2, 8, 8) and state["shift"].shape == (2, 16)
