"""HGRN2 against a per-token loop written from the paper's equations (outputs, final state and every
parameter gradient, float64), with and without the lower bound and the extra output gate, and
from a state. (HF transformers has no HGRN2: no peer to compare with.)"""
import pytest
import torch
import torch.nn.functional as F

from core.mixers.hgrn2 import HGRN2
from core.models import BackboneConfig
from tests.core.mixers.gradients import assert_same_gradients, parameters_and


def make(chunk=8, seed=0, **opts):
    torch.manual_seed(seed)
    cfg = BackboneConfig(d_model=32, n_heads=4, mixer_options={"chunk": chunk, **opts})
    m = HGRN2(cfg, causal=True)
    with torch.no_grad():
        m.norm_weight.normal_(1, 0.2)
        m.proj.weight.mul_(4)  # forget-gate logits spread over several units: fast and slow channels
    return m.double()


def reference(m: HGRN2, x, state=None):
    """Token by token: f_t = lb + (1 - lb) sigmoid(W_f x), S_t = diag(f_t) S_{t-1} + (1 - f_t)^T v_t,
    o_t = q_t S_t, RMSNorm over the width, (optional swish gate), output projection."""
    b, t, d = x.shape
    h, e, lb = m.n_heads, m.expand, m.lower_bound
    w = m.proj.weight.split(d)
    s = x.new_zeros(b, h, e, e) if state is None else state
    ys = []
    for i in range(t):
        xt = x[:, i]
        q = torch.sigmoid(xt @ w[0].T).view(b, h, e)
        f = (lb + (1 - lb) * torch.sigmoid(xt @ w[1].T)).view(b, h, e)
        v = F.silu(xt @ w[2].T).view(b, h, e)
        s = f[..., None] * s + (1 - f)[..., :, None] * v[..., None, :]
        o = torch.einsum("bhk,bhkv->bhv", q, s).reshape(b, d)
        o = o / (o.square().mean(-1, keepdim=True) + m.eps).sqrt() * m.norm_weight
        if m.use_output_gate:
            o = o * F.silu(xt @ w[3].T)
        ys.append(o @ m.out.weight.T)
    return torch.stack(ys, 1), s


@pytest.mark.parametrize("t,chunk", [(1, 8), (7, 4), (37, 8), (50, 32)])
@pytest.mark.parametrize("opts", [{}, {"lower_bound": 0.3, "output_gate": True}, {"expand_ratio": 4}],
                         ids=["default", "lower_bound+gate", "expand4"])
@pytest.mark.parametrize("with_state", [False, True])
def test_matches_per_token_equations_outputs_and_gradients(t, chunk, opts, with_state):
    m = make(chunk, **opts)
    x = torch.randn(2, t, 32, dtype=torch.float64, requires_grad=True)
    shape = (2, m.n_heads, m.expand, m.expand)
    s0 = torch.randn(*shape, dtype=torch.float64, requires_grad=True) if with_state else None
    y, new = m(x, state=None if s0 is None else {"state": s0})
    ref, ref_s = reference(m, x, s0)
    torch.testing.assert_close(y, ref, rtol=1e-7, atol=1e-9)
    if with_state:
        torch.testing.assert_close(new["state"], ref_s, rtol=1e-7, atol=1e-9)
    leaves = {**parameters_and(m, x=x), **({"state": s0} if with_state else {})}
    assert_same_gradients(y, ref, leaves, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("lb", [0.0, 0.5, 0.9])
def test_gates_are_stable_for_extreme_logits(lb):
    """log f and 1 - f from logits of +-1e4 stay finite and match the direct formula where it is exact."""
    m = make(lower_bound=lb)
    z = torch.tensor([-1e4, -30.0, -3.0, 0.0, 3.0, 30.0, 1e4], dtype=torch.float64)
    log_f, k = m.gates(z)
    f = lb + (1 - lb) * torch.sigmoid(z)
    assert torch.isfinite(log_f).all() and torch.isfinite(k).all()
    torch.testing.assert_close(log_f.exp(), f, rtol=1e-12, atol=1e-300)
    # 1 - f = (1 - lb) / (1 + e^z) exactly; computing 1 - f by subtraction would lose it for z >> 0
    torch.testing.assert_close(k, (1 - lb) / (1 + z.exp()), rtol=1e-12, atol=0)
    assert k[5] > 0  # z = 30: 1 - f ~ 1e-13, not rounded to 0
    z = z.float().requires_grad_()
    log_f, k = m.gates(z)
    (log_f.sum() + k.sum()).backward()
    assert torch.isfinite(z.grad).all()


def test_lower_bound_keeps_memory():
    """f >= lb: with lb = 0.9 even a fully 'closed' forget gate keeps 90% of the state per step."""
    m = make(lower_bound=0.9)
    log_f, _ = m.gates(torch.full((3,), -1e3, dtype=torch.float64))
    torch.testing.assert_close(log_f.exp(), torch.full((3,), 0.9, dtype=torch.float64))


def test_options():
    m = make(expand_ratio=8)
    assert (m.n_heads, m.expand) == (4, 8)
    assert m.init_state(3, torch.device("cpu"), torch.float64)["state"].shape == (3, 4, 8, 8)
    with pytest.raises(ValueError):
        make(expand_ratio=5)
    with pytest.raises(ValueError):
        make(lower_bound=1.0)
