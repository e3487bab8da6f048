"""minGRU / minLSTM: the scan-based mixer vs the paper's per-token equations written out here with
the same weights (outputs, final state and every parameter gradient, float64), prefill + steps,
and the normalised minLSTM gates where both raw gates underflow."""
import pytest
import torch

from core.mixers import MIXERS
from core.mixers.mingru import MinLSTM
from core.models import BackboneConfig
from tests.core.mixers.gradients import assert_same_gradients, parameters_and

D = 16


def build(name: str, block=5, bias=True, seed=0):
    torch.manual_seed(seed)
    cfg = BackboneConfig(d_model=D, n_heads=4, mixer=name, bias=bias, mixer_options={"expand": 2, "block": block})
    return MIXERS[name](cfg, causal=True).double()


def g(x):
    """The paper's positive activation, literally."""
    return torch.where(x >= 0, x + 0.5, 1 / (1 + torch.exp(-x)))


def naive(mixer, x, h0=None):
    """The recurrences exactly as printed in Feng et al. (2024), one token at a time."""
    n = 2 if mixer.__class__.__name__ == "MinGRU" else 3
    weights = mixer.proj.weight.chunk(n, dim=0)
    biases = mixer.proj.bias.chunk(n)
    h = x.new_zeros(x.shape[0], mixer.hidden) if h0 is None else h0
    ys = []
    for t in range(x.shape[1]):
        pre = [x[:, t] @ w.T + b for w, b in zip(weights, biases)]
        if n == 2:
            z = torch.sigmoid(pre[0])
            h = (1 - z) * h + z * g(pre[1])
        else:
            f, i = torch.sigmoid(pre[0]), torch.sigmoid(pre[1])
            h = f / (f + i) * h + i / (f + i) * g(pre[2])
        ys.append(mixer.out(h))
    return torch.stack(ys, 1), h


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
@pytest.mark.parametrize("t", [1, 13, 40])
@pytest.mark.parametrize("with_state", [False, True])
def test_matches_paper_equations_outputs_and_gradients(name, t, with_state):
    mixer = build(name)
    x = torch.randn(2, t, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, mixer.hidden, dtype=torch.float64) if with_state else None
    y, state = mixer(x, state=None if h0 is None else {"h": h0})
    ref, ref_h = naive(mixer, x, h0)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-12)
    if with_state:
        torch.testing.assert_close(state["h"], ref_h, rtol=1e-10, atol=1e-12)
    else:
        assert state is None
    assert_same_gradients(y, ref, parameters_and(mixer, x=x), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_prefill_then_steps_equals_full_pass(name):
    mixer = build(name, block=4, bias=False).eval()
    x = torch.randn(2, 19, D, dtype=torch.float64)
    with torch.no_grad():
        full, _ = mixer(x)
        state = mixer.init_state(2, x.device, x.dtype)
        y, state = mixer(x[:, :9], state=state)
        outs = [y]
        for i in range(9, 19):
            y, state = mixer(x[:, i:i + 1], state=state)
            outs.append(y)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-12, atol=1e-12)
    assert state["h"].shape == (2, 2 * D)


def test_minlstm_normalised_gates_finite_when_both_gates_underflow():
    """f / (f + i) is 0/0 in float32 once both sigmoids underflow; as sigmoid(log f - log i) it is 1/2."""
    mixer = MinLSTM(BackboneConfig(d_model=4, n_heads=1, mixer="minlstm", mixer_options={"expand": 1}), causal=True)
    u = torch.tensor([[[-200.0] * 4 + [-200.0] * 4 + [1.0] * 4]])
    a, b = mixer.coefficients(u)
    torch.testing.assert_close(a, torch.full_like(a, 0.5))
    torch.testing.assert_close(b, torch.full_like(b, 0.75))  # i' * g(1) = 0.5 * 1.5


def test_expanded_width_and_state_dtype():
    mixer = MIXERS["mingru"](BackboneConfig(d_model=32, n_heads=4, mixer="mingru"), causal=True)
    assert mixer.hidden == 64 and mixer.proj.out_features == 128
    assert mixer.init_state(3, torch.device("cpu"), torch.bfloat16)["h"].dtype == torch.float32
