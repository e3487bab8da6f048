"""Triton kernels for per-head gates vs the naive reference: outputs, final state and every gradient,
in float32. Without CUDA the kernels run in Triton's interpreter (tests/conftest.py), hence tiny shapes."""
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")

from core.ops.gated_linear import gated_linear_naive  # noqa: E402
from core.ops.gated_linear.triton import gated_linear_triton  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def inputs(t, b, dk, dv, with_state, h=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    # laid out [B, T, H, D] and viewed as [B, H, T, D], as mixers pass them: not contiguous
    q, k = (torch.randn(b, t, h, dk, generator=g).transpose(1, 2) for _ in range(2))
    v = torch.randn(b, t, h, dv, generator=g).transpose(1, 2)
    gate = F.logsigmoid(torch.randn(b, h, t, generator=g) * 4)  # log gates from ~0 down to about -9
    state = torch.randn(b, h, dk, dv, generator=g) if with_state else None
    return [None if x is None else x.to(DEVICE).requires_grad_() for x in (q, k, v, gate, state)]


@pytest.mark.parametrize("t,chunk,b,dk,dv", [
    (48, 16, 1, 16, 16),  # three whole chunks
    (37, 16, 2, 16, 32),  # a padded last chunk, Dk != Dv
    (20, 16, 1, 8, 5),  # Dk, Dv padded to 16
])
@pytest.mark.parametrize("with_state", [False, True])
def test_triton_matches_naive_outputs_and_gradients(t, chunk, b, dk, dv, with_state):
    args = inputs(t, b, dk, dv, with_state)
    o, s = gated_linear_triton(*args, chunk=chunk)
    ref_o, ref_s = gated_linear_naive(*(None if x is None else x.double() for x in args))
    torch.testing.assert_close(o.double(), ref_o, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(s.double(), ref_s, rtol=1e-4, atol=1e-5)

    w_o, w_s = torch.randn_like(o), torch.randn_like(s)  # weight every output and state entry differently
    leaves = [x for x in args if x is not None]
    grads = torch.autograd.grad((o * w_o).sum() + (s * w_s).sum(), leaves)
    ref_grads = torch.autograd.grad((ref_o * w_o).sum() + (ref_s * w_s).sum(), leaves)
    for name, a, r in zip("qkvgs", grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-4, atol=1e-5, msg=lambda m: f"gradient of {name}: {m}")


def test_strong_decay_forgets_the_initial_state():
    """Gates of -9 per step (and a near-zero decay over a chunk) leave nothing of the state: no
    overflow, no NaN, the exponents stay <= 0."""
    q, k, v, _, s0 = inputs(32, 1, 16, 16, with_state=True)
    g = torch.full(q.shape[:3], -9.0, device=DEVICE)
    o, s = gated_linear_triton(q, k, v, g, s0 * 1e6, chunk=16)
    ref_o, ref_s = gated_linear_naive(q, k, v, g, torch.zeros_like(s0))
    torch.testing.assert_close(o[:, :, 8:], ref_o[:, :, 8:], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(s, ref_s, rtol=1e-4, atol=1e-5)
