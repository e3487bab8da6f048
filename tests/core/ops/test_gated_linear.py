"""Scalar-gated linear recurrence: chunked form vs the naive reference (outputs and every gradient),
step-by-step decoding, and chunked prefill followed by steps."""
import pytest
import torch
import torch.nn.functional as F

from core.ops.gated_linear import gated_linear_chunk, gated_linear_naive, gated_linear_step


def inputs(t, b=2, h=3, dk=8, dv=6, with_state=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(b, h, t, dk, generator=g) for _ in range(2))
    v = torch.randn(b, h, t, dv, generator=g)
    # a mix of weak and very strong decay: log gates down to about -9 per step
    logit = torch.randn(b, h, t, generator=g) * 4
    gate = F.logsigmoid(logit)
    state = torch.randn(b, h, dk, dv, generator=g) if with_state else None
    return [x.double().requires_grad_() if x is not None else None for x in (q, k, v, gate, state)]


@pytest.mark.parametrize("t,chunk", [(1, 16), (5, 16), (16, 16), (50, 16), (100, 32), (130, 64)])
@pytest.mark.parametrize("with_state", [False, True])
def test_chunk_matches_naive_outputs_and_gradients(t, chunk, with_state):
    args = inputs(t, with_state=with_state)
    ref_o, ref_s = gated_linear_naive(*args)
    o, s = gated_linear_chunk(*args, chunk=chunk)
    torch.testing.assert_close(o, ref_o, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(s, ref_s, rtol=1e-6, atol=1e-8)
    weights = torch.randn_like(o)
    leaves = [x for x in args if x is not None]
    ref_grads = torch.autograd.grad((ref_o * weights).sum() + ref_s.sum(), leaves)
    grads = torch.autograd.grad((o * weights).sum() + s.sum(), leaves)
    for name, a, r in zip("qkvgs", grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-6, atol=1e-8, msg=f"gradient of {name}")


def test_float32_chunk_within_1e4_relative():
    q, k, v, g, s0 = (x.detach().float() for x in inputs(200, seed=3))
    ref_o, _ = gated_linear_naive(q.double(), k.double(), v.double(), g.double(), s0.double())
    o, _ = gated_linear_chunk(q, k, v, g, s0, chunk=64)
    assert ((o.double() - ref_o).norm() / ref_o.norm()) < 1e-4


def test_prefill_then_steps_equals_full():
    q, k, v, g, _ = (x.detach() if x is not None else None for x in inputs(40, with_state=False, seed=5))
    full, final = gated_linear_chunk(q, k, v, g, chunk=16)
    out, s = gated_linear_chunk(q[:, :, :23], k[:, :, :23], v[:, :, :23], g[:, :, :23], chunk=16)
    outs = [out]
    for i in range(23, 40):
        o, s = gated_linear_step(q[:, :, i], k[:, :, i], v[:, :, i], g[:, :, i], s)
        outs.append(o[:, :, None])
    torch.testing.assert_close(torch.cat(outs, 2), full, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(s, final, rtol=1e-7, atol=1e-9)
    assert s.shape == (2, 3, 8, 6)  # fixed-size state, whatever the length
