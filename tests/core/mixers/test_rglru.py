"""Griffin's recurrent block (RG-LRU): the mixer vs the paper's equations written out per token with
the same weights (dense block-diagonal gates, explicit conv window; outputs, final state and every
parameter gradient in float64), parity with HF transformers' RecurrentGemmaRecurrentBlock,
prefill + steps, and the initialisation of a."""
import math

import pytest
import torch

from core.mixers import MIXERS
from core.models import BackboneConfig
from tests.core.mixers.gradients import assert_same_gradients, parameters_and

D, HEADS = 16, 4


def build(block=5, bias=True, seed=0, d=D, dtype=torch.float64):
    torch.manual_seed(seed)
    cfg = BackboneConfig(d_model=d, n_heads=HEADS, mixer="rglru", bias=bias, mixer_options={"block": block})
    return MIXERS["rglru"](cfg, causal=True).to(dtype)


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def naive(m, x, state=None):
    """y = W_out(gelu(W_y x) * RG-LRU(conv(W_x x))), one token at a time."""
    w = m.width
    gate_pre, u = (x @ m.proj.weight.T + m.proj.bias).split(w, dim=-1)
    w_r = torch.block_diag(*m.lru.w_a)  # [W_in, W_out], block-diagonal
    w_i = torch.block_diag(*m.lru.w_x)
    b_r, b_i = m.lru.b_a.reshape(-1), m.lru.b_x.reshape(-1)
    a = torch.sigmoid(m.lru.a_logit)
    k = m.conv.kernel
    window = x.new_zeros(x.shape[0], k - 1, w) if state is None else state["conv"].transpose(1, 2)
    h = x.new_zeros(x.shape[0], w) if state is None else state["h"]
    ys = []
    for t in range(x.shape[1]):
        window = torch.cat([window, u[:, t:t + 1]], 1)[:, -k:]
        c = (window * m.conv.weight[:, 0].T).sum(1) + m.conv.bias
        r, i = torch.sigmoid(c @ w_r + b_r), torch.sigmoid(c @ w_i + b_i)
        a_t = a ** (8 * r)
        h = a_t * h + torch.sqrt(1 - a_t**2) * (i * c)
        ys.append(m.out(gelu_tanh(gate_pre[:, t]) * h))
    return torch.stack(ys, 1), h


@pytest.mark.parametrize("t", [1, 13, 40])
@pytest.mark.parametrize("with_state", [False, True])
def test_matches_paper_equations_outputs_and_gradients(t, with_state):
    m = build()
    x = torch.randn(2, t, D, dtype=torch.float64, requires_grad=True)
    state = None
    if with_state:
        state = {"conv": torch.randn(2, m.width, 3, dtype=torch.float64),
                 "h": torch.randn(2, m.width, dtype=torch.float64)}
    y, new_state = m(x, state=state)
    ref, ref_h = naive(m, x, state)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-12)
    if with_state:
        torch.testing.assert_close(new_state["h"], ref_h, rtol=1e-10, atol=1e-12)
    assert_same_gradients(y, ref, parameters_and(m, x=x), rtol=1e-9, atol=1e-11)


def test_matches_hf_recurrent_gemma_block():
    """Same weights in HF's block (positions from 1, so its document-start reset never fires)."""
    from transformers import RecurrentGemmaConfig
    from transformers.models.recurrent_gemma.modeling_recurrent_gemma import RecurrentGemmaRecurrentBlock

    m = build(d=32, dtype=torch.float32)
    hf_cfg = RecurrentGemmaConfig(hidden_size=32, lru_width=m.width, num_attention_heads=HEADS, conv1d_width=4,
                                  num_hidden_layers=1, vocab_size=10)
    hf = RecurrentGemmaRecurrentBlock(hf_cfg, layer_idx=0)
    with torch.no_grad():
        hf.linear_y.weight.copy_(m.proj.weight[:m.width])
        hf.linear_y.bias.copy_(m.proj.bias[:m.width])
        hf.linear_x.weight.copy_(m.proj.weight[m.width:])
        hf.linear_x.bias.copy_(m.proj.bias[m.width:])
        hf.conv_1d.weight.copy_(m.conv.weight)
        hf.conv_1d.bias.copy_(m.conv.bias)
        hf.rg_lru.recurrent_gate_weight.copy_(m.lru.w_a)
        hf.rg_lru.input_gate_weight.copy_(m.lru.w_x)
        hf.rg_lru.recurrent_gate_bias.copy_(m.lru.b_a)
        hf.rg_lru.input_gate_bias.copy_(m.lru.b_x)
        hf.rg_lru.recurrent_param.copy_(-m.lru.a_logit)  # HF: log a = -softplus(param)
        hf.linear_out.weight.copy_(m.out.weight)
        hf.linear_out.bias.copy_(m.out.bias)
        x = torch.randn(2, 23, 32)
        y, _ = m(x)
        y_hf, _ = hf(x, position_ids=torch.arange(1, 24).expand(2, -1), attention_mask=None, use_cache=False)
    torch.testing.assert_close(y, y_hf, rtol=1e-4, atol=1e-5)


def test_prefill_then_steps_equals_full_pass():
    m = build(block=4, bias=False).eval()
    x = torch.randn(2, 19, D, dtype=torch.float64)
    with torch.no_grad():
        full, _ = m(x)
        state = m.init_state(2, x.device, x.dtype)
        y, state = m(x[:, :9], state=state)
        outs = [y]
        for i in range(9, 19):
            y, state = m(x[:, i:i + 1], state=state)
            outs.append(y)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-12, atol=1e-12)
    assert state["h"].shape == (2, m.width) and state["conv"].shape == (2, m.width, 3)


def test_init_and_width():
    m = build(d=32, dtype=torch.float32)
    assert m.width == 48 and m.lru.w_a.shape == m.lru.w_x.shape == (HEADS, 12, 12)
    a_c = torch.sigmoid(m.lru.a_logit) ** 8
    assert a_c.min() >= 0.9 - 1e-6 and a_c.max() <= 0.999 + 1e-6
    # expand rounds to a multiple of n_heads
    cfg = BackboneConfig(d_model=30, n_heads=6, mixer="rglru", position="none", mixer_options={"expand": 4 / 3})
    assert MIXERS["rglru"](cfg, causal=True).width == 42


def test_input_scale_is_stable_when_a_is_near_one():
    """sqrt(1 - a_t^2) from -expm1(2 log a_t): exact where 1 - a_t^2 would cancel in float32."""
    m = build(d=32, dtype=torch.float32)
    with torch.no_grad():
        m.lru.a_logit.fill_(20.0)  # a = sigmoid(20): log a ~ -2e-9
        _, b = m.lru.coefficients(torch.ones(1, 1, m.width))
    r = torch.sigmoid(m.lru.w_a.sum(1) + m.lru.b_a).detach().reshape(-1)  # the gates of x = ones
    i = torch.sigmoid(m.lru.w_x.sum(1) + m.lru.b_x).detach().reshape(-1)
    log_a = -8 * r.double() * torch.nn.functional.softplus(torch.tensor(-20.0, dtype=torch.float64))
    expected = torch.sqrt(-torch.expm1(2 * log_a)) * i.double()
    assert (b[0, 0].double() - expected).abs().max() / expected.abs().max() < 1e-5
    assert (expected > 0).all()


def test_saturated_recurrence_gate_keeps_gradients_finite():
    """r_t = 0 exactly gives a_t = 1 and 1 - a_t^2 = 0, where the sqrt's derivative is infinite."""
    m = build(d=32, dtype=torch.float32)
    with torch.no_grad():
        m.lru.b_a.fill_(-200.0)
    x = torch.randn(2, 6, 32, requires_grad=True)
    y, _ = m(x)
    y.square().sum().backward()
    bad = [n for n, p in m.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad and torch.isfinite(x.grad).all(), bad
