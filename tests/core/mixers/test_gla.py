"""GLA against a per-token loop written from the paper's equations (outputs, final state and every
parameter gradient, float64), with strong and weak gates, and from a state. (Neither HF
transformers nor an installed package implements GLA: no peer to compare with.)"""
import pytest
import torch

from core.mixers.gla import GatedLinearAttention
from core.models import BackboneConfig
from tests.core.mixers.gradients import assert_same_gradients, parameters_and


def make(chunk=8, strong=False, seed=0, **opts):
    torch.manual_seed(seed)
    cfg = BackboneConfig(d_model=32, n_heads=4, mixer_options={"chunk": chunk, **opts})
    m = GatedLinearAttention(cfg, causal=True)
    with torch.no_grad():
        m.norm_weight.normal_(1, 0.2)
        if strong:  # log gates spread far below the init's ~-0.04 (down to several units per step)
            m.gate_up.weight.mul_(60)
            m.gate_up.bias.normal_(0, 20)
    return m.double()


def reference(m: GatedLinearAttention, x, state=None):
    """Token by token: projections, low-rank gate, S_t = diag(alpha_t) S_{t-1} + k_t^T v_t,
    o_t = q_t S_t / sqrt(Dk), per-head RMSNorm, swish output gate, output projection."""
    b, t, d = x.shape
    h, dk, dv = m.n_heads, m.dk, m.dv
    wq, wk, wv, wr = m.proj.weight.split([h * dk, h * dk, h * dv, h * dv])
    s = x.new_zeros(b, h, dk, dv) if state is None else state
    ys = []
    for i in range(t):
        xt = x[:, i]
        q, k = (xt @ wq.T).view(b, h, dk), (xt @ wk.T).view(b, h, dk)
        v, r = (xt @ wv.T).view(b, h, dv), xt @ wr.T
        alpha = torch.sigmoid(xt @ m.gate_down.weight.T @ m.gate_up.weight.T + m.gate_up.bias) ** (1 / m.gate_norm)
        s = alpha.view(b, h, dk, 1) * s + k[..., :, None] * v[..., None, :]
        o = torch.einsum("bhk,bhkv->bhv", q, s) / dk**0.5
        o = o / (o.square().mean(-1, keepdim=True) + m.eps).sqrt() * m.norm_weight
        ys.append((o.reshape(b, h * dv) * r * torch.sigmoid(r)) @ m.out.weight.T)
    return torch.stack(ys, 1), s


@pytest.mark.parametrize("t,chunk", [(1, 8), (7, 4), (37, 8), (50, 32)])
@pytest.mark.parametrize("strong", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
def test_matches_per_token_equations_outputs_and_gradients(t, chunk, strong, with_state):
    m = make(chunk, strong)
    x = torch.randn(2, t, 32, dtype=torch.float64, requires_grad=True)
    s0 = torch.randn(2, 4, m.dk, m.dv, dtype=torch.float64, requires_grad=True) if with_state else None
    y, new = m(x, state=None if s0 is None else {"state": s0})
    ref, ref_s = reference(m, x, s0)
    torch.testing.assert_close(y, ref, rtol=1e-7, atol=1e-9)
    if with_state:
        torch.testing.assert_close(new["state"], ref_s, rtol=1e-7, atol=1e-9)
    leaves = {**parameters_and(m, x=x), **({"state": s0} if with_state else {})}
    assert_same_gradients(y, ref, leaves, rtol=1e-7, atol=1e-9)


def test_options_shape_the_state():
    m = make(expand_k=1.0, expand_v=2.0, gate_rank=4)
    assert (m.dk, m.dv, m.gate_down.out_features) == (8, 16, 4)
    assert m.init_state(3, torch.device("cpu"), torch.float64)["state"].shape == (3, 4, 8, 16)
    x = torch.randn(1, 5, 32, dtype=torch.float64)
    torch.testing.assert_close(m(x)[0], reference(m, x)[0], rtol=1e-7, atol=1e-9)
    with pytest.raises(ValueError):
        make(expand_k=0.3)  # 32 * 0.3 = 9 key channels do not split over 4 heads


def test_default_gates_forget_slowly():
    """tau = 16 puts alpha = sigmoid(.)^(1/16) near 1 at init: long memory from the start."""
    m = make()
    alpha = torch.sigmoid(m.gate_up(m.gate_down(torch.randn(64, 32, dtype=torch.float64)))) ** (1 / 16)
    assert alpha.min() > 0.9
