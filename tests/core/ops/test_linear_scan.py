"""Diagonal linear recurrence: the blocked two-level scan vs the per-token reference (outputs and
the gradients of a, b and h0), gradcheck of the hand-written backward, float32 accuracy, and
prefill followed by single steps."""
import pytest
import torch

from core.ops.linear_scan import linear_scan, linear_scan_naive, linear_scan_step
from core.ops.linear_scan.scan import default_block


def inputs(t, rest=(3, 2), b=2, with_h0=True, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    # gates across (0, 1): sigmoid(6 z) reaches ~1e-8 and 1 - 1e-8; plus exact extremes
    a = torch.sigmoid(torch.randn(b, t, *rest, generator=g) * 6)
    flat = a.view(-1)
    flat[::7] = 1e-12
    flat[3::11] = 1 - 1e-9
    x = torch.randn(b, t, *rest, generator=g)
    h0 = torch.randn(b, *rest, generator=g) if with_h0 else None
    return [v.to(dtype).requires_grad_() if v is not None else None for v in (a, x, h0)]


@pytest.mark.parametrize("t", [1, 7, 64, 100, 257])
@pytest.mark.parametrize("block", [None, 1, 5, 16])
@pytest.mark.parametrize("with_h0", [False, True])
def test_scan_matches_naive_outputs_and_gradients(t, block, with_h0):
    a, b, h0 = inputs(t, with_h0=with_h0, seed=t)
    ref = linear_scan_naive(a, b, h0)
    out = linear_scan(a, b, h0, block=block)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    weights = torch.randn_like(out)
    leaves = [x for x in (a, b, h0) if x is not None]
    ref_grads = torch.autograd.grad((ref * weights).sum() + ref[:, -1].sum(), leaves)
    grads = torch.autograd.grad((out * weights).sum() + out[:, -1].sum(), leaves)
    for name, got, want in zip(["a", "b", "h0"], grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=f"gradient of {name}")


def test_scalar_channels_and_broadcast_gate():
    """rest may be empty, and a gate shared over channels broadcasts (its gradient is summed)."""
    a, b, h0 = inputs(30, rest=(), seed=1)
    torch.testing.assert_close(linear_scan(a, b, h0, block=4), linear_scan_naive(a, b, h0))
    gate = torch.rand(2, 30, 1, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 30, 5, dtype=torch.float64)
    (linear_scan(gate, x, block=4) ** 2).sum().backward()
    got = gate.grad.clone()
    gate.grad = None
    (linear_scan_naive(gate.expand(-1, -1, 5), x) ** 2).sum().backward()
    torch.testing.assert_close(got, gate.grad)


def test_gradcheck_tiny():
    a, b, h0 = inputs(6, rest=(2,), seed=4)
    assert torch.autograd.gradcheck(lambda a, b, h0: linear_scan(a, b, h0, block=4), (a, b, h0))


def test_backward_is_one_node_not_a_per_token_graph():
    a, b, h0 = inputs(50, seed=2)
    out = linear_scan(a, b, h0)
    assert "LinearScan" in out.grad_fn.name()
    assert all("LinearScan" not in f.name() for f, _ in out.grad_fn.next_functions if f is not None)


def test_float32_within_1e4_relative():
    a, b, h0 = (x.detach() for x in inputs(2000, rest=(16,), seed=3, dtype=torch.float32))
    a = torch.sigmoid(torch.logit(a.clamp(1e-6, 1 - 1e-6)) / 3 + 3)  # mostly long memory (a ~ 0.95)
    ref = linear_scan_naive(a.double(), b.double(), h0.double())
    out = linear_scan(a, b, h0)
    assert out.dtype == torch.float32
    assert (out.double() - ref).norm() / ref.norm() < 1e-4


def test_prefill_then_steps_equals_full():
    a, b, _ = (x.detach() if x is not None else None for x in inputs(40, with_h0=False, seed=5))
    full = linear_scan(a, b, block=8)
    h = linear_scan(a[:, :23], b[:, :23], block=8)
    outs, state = [h], h[:, -1]
    for i in range(23, 31):
        state = linear_scan_step(a[:, i], b[:, i], state)
        outs.append(state[:, None])
    outs.append(linear_scan(a[:, 31:], b[:, 31:], state, block=4))  # multi-token continuation
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-12, atol=1e-12)


def test_default_block_is_about_sqrt_t():
    assert default_block(1) == 8 and default_block(64) == 8 and default_block(8192) == 90
