"""Per-channel (key-dim) gates and the RWKV-6 bonus in the gated linear recurrence: chunked form
vs the naive reference (outputs and every gradient, float64), float32 accuracy under strong decay,
step-by-step decoding after a chunked prefill, and agreement with the per-head form."""
import pytest
import torch
import torch.nn.functional as F

from core.ops.gated_linear import gated_linear, gated_linear_chunk, gated_linear_naive, gated_linear_step


def inputs(t, b=2, h=3, dk=8, dv=6, with_state=True, with_u=False, decay="strong", seed=0):
    """decay="strong": log gates spread down to about -10 per step; "weak": about -0.02."""
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(b, h, t, dk, generator=g) for _ in range(2))
    v = torch.randn(b, h, t, dv, generator=g)
    logit = torch.randn(b, h, t, dk, generator=g)
    gate = F.logsigmoid(logit * 4) if decay == "strong" else F.logsigmoid(logit + 4)
    state = torch.randn(b, h, dk, dv, generator=g) if with_state else None
    u = torch.randn(h, dk, generator=g) if with_u else None
    return [x.double().requires_grad_() if x is not None else None for x in (q, k, v, gate, state, u)]


def check_against_naive(args, **kw):
    q, k, v, g, s0, u = args
    ref_o, ref_s = gated_linear_naive(q, k, v, g, s0, u=u)
    o, s = gated_linear_chunk(q, k, v, g, s0, u=u, **kw)
    torch.testing.assert_close(o, ref_o, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(s, ref_s, rtol=1e-6, atol=1e-8)
    weights = torch.randn_like(o)
    names, leaves = zip(*[(n, x) for n, x in zip(["q", "k", "v", "g", "state", "u"], args) if x is not None])
    ref_grads = torch.autograd.grad((ref_o * weights).sum() + ref_s.sum(), leaves)
    grads = torch.autograd.grad((o * weights).sum() + s.sum(), leaves)
    for name, a, r in zip(names, grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-6, atol=1e-8, msg=f"gradient of {name}")


@pytest.mark.parametrize("t,chunk", [(1, 16), (5, 16), (16, 16), (50, 16), (100, 32), (130, 64), (130, 16)])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("with_u", [False, True])
@pytest.mark.parametrize("decay", ["strong", "weak"])
def test_chunk_matches_naive_outputs_and_gradients(t, chunk, with_state, with_u, decay):
    check_against_naive(inputs(t, with_state=with_state, with_u=with_u, decay=decay), chunk=chunk)


@pytest.mark.parametrize("chunk,sub_chunk", [(64, 8), (64, 32), (48, 16), (12, 6), (10, 16), (4, 16)])
@pytest.mark.parametrize("with_u", [False, True])
def test_other_chunk_and_sub_chunk_sizes(chunk, sub_chunk, with_u):
    """Block sizes that do not nest evenly (gcd rules), single-level and leaf-only chunks."""
    check_against_naive(inputs(37, with_u=with_u, seed=1), chunk=chunk, sub_chunk=sub_chunk)


@pytest.mark.parametrize("with_u", [False, True])
def test_float32_chunk_within_1e4_relative(with_u):
    q, k, v, g, s0, u = (x.detach() for x in inputs(200, with_u=True, seed=3))
    u = u if with_u else None
    ref_o, ref_s = gated_linear_naive(q, k, v, g, s0, u=u)
    f = [x.float() if x is not None else None for x in (q, k, v, g, s0, u)]
    o, s = gated_linear_chunk(*f[:5], chunk=64, u=f[5])
    assert ((o.double() - ref_o).norm() / ref_o.norm()) < 1e-4
    assert ((s.double() - ref_s).norm() / ref_s.norm()) < 1e-4


def test_extreme_decay_stays_finite_in_float32():
    """Log gates of -60 per step: exp of any un-differenced cumulative gate would under/overflow
    within a chunk (exp(+-60 * 16) is far outside float32)."""
    q, k, v, g, s0, u = (x.detach() for x in inputs(70, with_u=True, seed=4))
    g = torch.where(torch.rand(g.shape, generator=torch.Generator().manual_seed(0), dtype=g.dtype) < 0.5, -60.0, g)
    f = [x.float().requires_grad_() for x in (q, k, v, g)]
    for uu in (None, u):
        ref_o, _ = gated_linear_naive(q, k, v, g, s0, u=uu)
        o, s = gated_linear_chunk(*f, s0.float(), chunk=64, u=None if uu is None else uu.float())
        assert ((o.double() - ref_o).norm() / ref_o.norm()) < 1e-4
        grads = torch.autograd.grad(o.sum() + s.sum(), f)
        assert all(torch.isfinite(x).all() for x in grads)


@pytest.mark.parametrize("with_u", [False, True])
def test_prefill_then_steps_equals_full(with_u):
    q, k, v, g, _, u = (x.detach() if x is not None else None for x in inputs(40, with_state=False, with_u=with_u, seed=5))
    full, final = gated_linear_chunk(q, k, v, g, chunk=16, u=u)
    out, s = gated_linear_chunk(q[:, :, :23], k[:, :, :23], v[:, :, :23], g[:, :, :23], chunk=16, u=u)
    outs = [out]
    for i in range(23, 40):
        o, s = gated_linear_step(q[:, :, i], k[:, :, i], v[:, :, i], g[:, :, i], s, u=u)
        outs.append(o[:, :, None])
    torch.testing.assert_close(torch.cat(outs, 2), full, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(s, final, rtol=1e-7, atol=1e-9)
    # the entry point: a multi-token continuation then a one-token step from a state
    o1, s1 = gated_linear(q[:, :, :30], k[:, :, :30], v[:, :, :30], g[:, :, :30], torch.zeros_like(s), chunk=16, u=u)
    o2, s2 = gated_linear(q[:, :, 30:31], k[:, :, 30:31], v[:, :, 30:31], g[:, :, 30:31], s1, chunk=16, u=u)
    torch.testing.assert_close(torch.cat([o1, o2], 2), full[:, :, :31], rtol=1e-7, atol=1e-9)


def test_equal_channel_gates_reduce_to_the_per_head_form():
    q, k, v, g, s0, _ = (x.detach() if x is not None else None for x in inputs(45, seed=6))
    g_head = g[..., 0]
    o_head, s_head = gated_linear_chunk(q, k, v, g_head, s0, chunk=16)
    o_chan, s_chan = gated_linear_chunk(q, k, v, g_head[..., None].expand_as(g).contiguous(), s0, chunk=16)
    torch.testing.assert_close(o_chan, o_head, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(s_chan, s_head, rtol=1e-7, atol=1e-9)


def test_bonus_is_rwkv6_read_before_write():
    """With u, o_t = q_t (S_{t-1} + diag(u) k_t^T v_t): a single token from a zero state reads only
    its own write, weighted by u; and u = 0 with zero gates is causal attention without the diagonal."""
    q, k, v, g, _, u = (x.detach() for x in inputs(1, with_u=True, seed=7))
    o, _ = gated_linear_chunk(q, k, v, g, u=u, scale=1.0)
    expected = (q * u[:, None] * k).sum(-1, keepdim=True) * v
    torch.testing.assert_close(o, expected)
    q, k, v = (x.detach() for x in inputs(9, seed=8)[:3])
    o, _ = gated_linear_chunk(q, k, v, torch.zeros(*q.shape, dtype=q.dtype), u=torch.zeros(3, 8, dtype=q.dtype), scale=1.0, chunk=4)
    scores = (q @ k.transpose(-1, -2)).tril(-1)
    torch.testing.assert_close(o, scores @ v)


def test_bonus_needs_per_channel_gates():
    q, k, v, g, s0, u = (x.detach() for x in inputs(5, with_u=True))
    with pytest.raises(ValueError):
        gated_linear_chunk(q, k, v, g[..., 0], s0, u=u)
    with pytest.raises(ValueError):
        gated_linear_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], g[:, :, 0, 0], s0, u=u)
