"""Selective scan (Mamba's S6): the blocked CPU form vs the token-by-token reference (outputs and
the gradients of all seven inputs), the one-token step, and prefill followed by steps."""
import pytest
import torch
import torch.nn.functional as F

from core.ops.selective_scan import selective_scan, selective_scan_chunk, selective_scan_naive, selective_scan_step
from core.ops.selective_scan.chunk import plan


def inputs(t, b=2, din=6, n=5, with_state=True, with_d=True, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, t, din, generator=g)
    dt = F.softplus(torch.randn(b, t, din, generator=g) * 3 - 1)  # from ~0 (keep) to ~8 (forget)
    A = -torch.exp(torch.randn(din, n, generator=g))
    Bm, Cm = torch.randn(b, t, n, generator=g), torch.randn(b, t, n, generator=g)
    D = torch.randn(din, generator=g) if with_d else None
    h0 = torch.randn(b, din, n, generator=g) if with_state else None
    return [x.to(dtype).requires_grad_() if x is not None else None for x in (u, dt, A, Bm, Cm, D, h0)]


def test_plan_covers_the_sequence_with_whole_sub_blocks():
    for t in [1, 2, 5, 64, 130, 300, 2048]:
        for block in [1, 4, 9, 16, 64]:
            s, sub, n_super = plan(t, block)
            assert s % sub == 0 and s * n_super >= t > s * (n_super - 1) and s <= max(block, sub)
    assert plan(300, 64) == (64, 8, 5)  # sqrt(S) sub-blocks for narrow states
    assert plan(300, 64, width=4 * 1024 * 16) == (64, 64, 5)  # a plain token loop for wide ones


@pytest.mark.parametrize("t", [1, 5, 64, 130, 300])
@pytest.mark.parametrize("block", [4, 16])  # S=4: L=2; S=16: L=4 -- many super- and sub-blocks
@pytest.mark.parametrize("with_state", [False, True])
def test_chunk_matches_naive_outputs_and_gradients(t, block, with_state):
    args = inputs(t, with_state=with_state, with_d=with_state)  # D absent in half the cases
    ref_y, ref_h = selective_scan_naive(*args)
    y, h = selective_scan_chunk(*args, block=block)
    torch.testing.assert_close(y, ref_y, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h, ref_h, rtol=1e-10, atol=1e-12)
    wy, wh = torch.randn_like(y), torch.randn_like(h)
    leaves = [x for x in args if x is not None]
    ref_grads = torch.autograd.grad((ref_y * wy).sum() + (ref_h * wh).sum(), leaves)
    grads = torch.autograd.grad((y * wy).sum() + (h * wh).sum(), leaves)
    names = [nm for nm, x in zip(["u", "dt", "A", "B", "C", "D", "h0"], args) if x is not None]
    assert len(names) == (7 if with_state else 5)
    for name, a, r in zip(names, grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-11, msg=f"gradient of {name}")


@pytest.mark.parametrize("sub", [1, 3, 12])  # 12 = S: one sub-block, the plain token loop
def test_sub_block_length_is_only_a_schedule(sub):
    args = inputs(50)
    ref_y, ref_h = selective_scan_naive(*args)
    y, h = selective_scan_chunk(*args, block=12, sub=sub)
    torch.testing.assert_close(y, ref_y, rtol=1e-10, atol=1e-12)
    ref_grads = torch.autograd.grad(ref_y.sum() + ref_h.sum(), args)
    grads = torch.autograd.grad(y.sum() + h.sum(), args)
    for name, a, r in zip(["u", "dt", "A", "B", "C", "D", "h0"], grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-11, msg=f"gradient of {name}")


def test_float32_within_1e4_relative():
    args = [x.detach() for x in inputs(400, din=16, n=8, seed=3)]
    ref_y, ref_h = selective_scan_naive(*args)
    y, h = selective_scan_chunk(*(x.float() for x in args), block=64)
    assert ((y.double() - ref_y).norm() / ref_y.norm()) < 1e-4
    assert ((h.double() - ref_h).norm() / ref_h.norm()) < 1e-4


def test_prefill_then_steps_equals_full():
    u, dt, A, Bm, Cm, D, _ = (x.detach() if x is not None else None for x in inputs(40, seed=5))
    full, final = selective_scan_chunk(u, dt, A, Bm, Cm, D, block=8)
    y, h = selective_scan(u[:, :13], dt[:, :13], A, Bm[:, :13], Cm[:, :13], D, block=8)
    outs = [y]
    y, h = selective_scan(u[:, 13:30], dt[:, 13:30], A, Bm[:, 13:30], Cm[:, 13:30], D, h, block=8)  # chunked continuation
    outs.append(y)
    for i in range(30, 40):
        y, h = selective_scan(u[:, i:i + 1], dt[:, i:i + 1], A, Bm[:, i:i + 1], Cm[:, i:i + 1], D, h)
        outs.append(y)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h, final, rtol=1e-10, atol=1e-12)
    assert h.shape == (2, 6, 5)


def test_step_matches_one_naive_token():
    u, dt, A, Bm, Cm, D, h0 = (x.detach() for x in inputs(1, seed=7))
    ref_y, ref_h = selective_scan_naive(u, dt, A, Bm, Cm, D, h0)
    y, h = selective_scan_step(u[:, 0], dt[:, 0], A, Bm[:, 0], Cm[:, 0], D, h0)
    torch.testing.assert_close(y, ref_y[:, 0])
    torch.testing.assert_close(h, ref_h)


def test_zero_step_size_keeps_the_state_and_strong_decay_stays_finite():
    u, dt, A, Bm, Cm, D, h0 = (x.detach() for x in inputs(20, seed=9))
    _, h = selective_scan_chunk(u, torch.zeros_like(dt), A, Bm, Cm, D, h0, block=8)
    torch.testing.assert_close(h, h0)  # dt = 0 (padding): no decay, no write
    args = [x.float().requires_grad_() for x in (u, dt * 100, A, Bm, Cm, D, h0)]  # exp(dt A) underflows to 0
    y, h = selective_scan_chunk(*args, block=8)
    (y.sum() + h.sum()).backward()
    assert all(torch.isfinite(x).all() and torch.isfinite(x.grad).all() for x in args)


def test_low_precision_inputs_run_in_float32():
    u, dt, A, Bm, Cm, D, _ = (x.detach().float() for x in inputs(30, seed=11))
    ref, _ = selective_scan(u, dt, A, Bm, Cm, D)
    y, h = selective_scan(u.bfloat16(), dt, A, Bm.bfloat16(), Cm.bfloat16(), D)
    assert y.dtype == torch.bfloat16 and h.dtype == torch.float32
    assert ((y.float() - ref).norm() / ref.norm()) < 2e-2
