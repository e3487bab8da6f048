"""Selective scan, Triton kernels (run by Triton's interpreter on a machine without CUDA): outputs
and the gradients of all seven inputs vs the float64 token-by-token reference, across several
checkpoint segments (T not a multiple of the interval), channel blocks that do not divide Din and
a state size that is not a power of two."""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")

from core.ops.selective_scan import selective_scan_naive  # noqa: E402
from core.ops.selective_scan.triton import selective_scan_triton  # noqa: E402

NAMES = ["u", "dt", "A", "B", "C", "D", "h0"]


def inputs(t, din, n, with_d, with_h0, b=2, seed=0, dt_scale=1.0):
    """float64 leaves; dt from ~0 (keep) to ~8 (forget) times ``dt_scale``, A in -exp(randn)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, t, din, generator=g, dtype=torch.float64)
    dt = F.softplus(torch.randn(b, t, din, generator=g, dtype=torch.float64) * 3 - 1) * dt_scale
    A = -torch.exp(torch.randn(din, n, generator=g, dtype=torch.float64))
    Bm = torch.randn(b, t, n, generator=g, dtype=torch.float64)
    Cm = torch.randn(b, t, n, generator=g, dtype=torch.float64)
    D = torch.randn(din, generator=g, dtype=torch.float64) if with_d else None
    h0 = torch.randn(b, din, n, generator=g, dtype=torch.float64) if with_h0 else None
    return [None if x is None else x.requires_grad_() for x in (u, dt, A, Bm, Cm, D, h0)]


def check_against_naive(args, **kw):
    """float32 Triton vs the float64 reference: outputs and all gradients of a random weighting."""
    ref_y, ref_h = selective_scan_naive(*args)
    args32 = [None if x is None else x.detach().float().requires_grad_() for x in args]
    y, h = selective_scan_triton(*args32, **kw)
    assert y.dtype == h.dtype == torch.float32
    wy, wh = torch.randn_like(ref_y), torch.randn_like(ref_h)
    leaves = [x for x in args if x is not None]
    ref_grads = torch.autograd.grad((ref_y * wy).sum() + (ref_h * wh).sum(), leaves)
    leaves32 = [x for x in args32 if x is not None]
    grads = torch.autograd.grad((y * wy.float()).sum() + (h * wh.float()).sum(), leaves32)
    names = [nm for nm, x in zip(NAMES, args) if x is not None]
    for name, a, r in [("y", y, ref_y), ("h_T", h, ref_h)] + list(zip(names, grads, ref_grads)):
        assert torch.isfinite(a).all(), name
        torch.testing.assert_close(a.double(), r, rtol=1e-4, atol=1e-5 * r.abs().max().item(), msg=name)


@pytest.mark.parametrize("t, din, n, block_d, checkpoint", [
    (37, 20, 5, 8, 8),     # 5 segments, the last one short; 3 channel blocks, the last one partial; N=5 -> 8
    (40, 12, 16, 16, 16),  # 3 segments; one partial channel block
    (24, 8, 4, 8, 8),      # T a multiple of the interval, Din of the block
])
@pytest.mark.parametrize("with_d, with_h0", [(False, False), (True, True)])
def test_matches_naive(t, din, n, block_d, checkpoint, with_d, with_h0):
    check_against_naive(inputs(t, din, n, with_d, with_h0), checkpoint=checkpoint, block_d=block_d)


@pytest.mark.parametrize("with_d, with_h0", [(True, False), (False, True)])
def test_skip_and_initial_state_independently(with_d, with_h0):
    check_against_naive(inputs(19, 10, 6, with_d, with_h0, seed=1), checkpoint=4, block_d=8)


def test_strong_decay_in_one_segment():
    # dt up to ~800: exp(dt A) underflows to 0, the state forgets everything every token; T=5 is one
    # mostly padded segment of the default interval
    check_against_naive(inputs(5, 9, 3, True, True, seed=2, dt_scale=100.0))


def test_gradient_through_the_final_state_only():
    args = [x.detach().float().requires_grad_() for x in inputs(13, 6, 4, True, True, seed=3)]
    ref_h = selective_scan_naive(*args)[1]
    _, h = selective_scan_triton(*args, checkpoint=4, block_d=4)
    torch.testing.assert_close(h, ref_h, rtol=1e-5, atol=1e-5)
    leaves = [args[i] for i in (0, 1, 2, 3, 6)]  # C and D do not reach h_T
    for name, a, r in zip(["u", "dt", "A", "B", "h0"], torch.autograd.grad(h.sum(), leaves),
                          torch.autograd.grad(ref_h.sum(), leaves)):
        torch.testing.assert_close(a, r, rtol=1e-4, atol=1e-5, msg=name)


def test_package_works_without_triton():
    code = ("import sys; sys.modules['triton'] = None\n"  # `import triton` now raises ImportError
            "import torch\n"
            "from core.ops.selective_scan import selective_scan, triton as kernels\n"
            "assert not kernels.HAS_TRITON\n"
            "y, h = selective_scan(torch.randn(1, 5, 3), torch.rand(1, 5, 3), -torch.rand(3, 2),"
            " torch.randn(1, 5, 2), torch.randn(1, 5, 2))\n"
            "assert y.shape == (1, 5, 3) and h.shape == (1, 3, 2)\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
