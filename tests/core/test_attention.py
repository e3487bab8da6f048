"""Attention mixer: SDPA fast path vs an explicit reference, and cached decoding vs full forward."""
import math

import pytest
import torch

from core.mixers import Attention
from core.mixers.attention import CACHE_BLOCK
from core.models import BackboneConfig
from core.models.blocks import Stack
from core.nn import alibi_slopes


def reference_attention(m: Attention, x: torch.Tensor, key_mask=None) -> torch.Tensor:
    """Explicit softmax attention, one query at a time (tests only)."""
    b, t, _ = x.shape
    q, k, v = m.qkv(x).view(b, t, -1, m.head_dim).transpose(1, 2).split([m.n_heads, m.n_kv_heads, m.n_kv_heads], 1)
    if m.rotary is not None:
        q, k = m.rotary(q), m.rotary(k)
    rep = m.n_heads // m.n_kv_heads
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    slopes = alibi_slopes(m.n_heads) if m.slopes is not None else torch.zeros(m.n_heads)
    out = torch.zeros_like(q)
    for i in range(t):
        for j_heads in range(m.n_heads):
            scores = []
            for j in range(t):
                ok = (not m.causal or j <= i) and (m.window is None or abs(i - j) < m.window)
                ok = ok and (key_mask is None or bool(key_mask[0, j]) or i == j)
                s = (q[0, j_heads, i] @ k[0, j_heads, j]) / math.sqrt(m.head_dim) - slopes[j_heads] * abs(i - j)
                scores.append(s if ok else torch.tensor(float("-inf")))
            w = torch.stack(scores).softmax(0)
            out[0, j_heads, i] = w @ v[0, j_heads]
    return m.out(out.transpose(1, 2).reshape(b, t, -1))


CASES = [
    dict(causal=True, position="rope"),
    dict(causal=False, position="rope"),
    dict(causal=True, position="alibi"),
    dict(causal=False, position="alibi"),
    dict(causal=True, position="none", window=3),
    dict(causal=False, position="rope", window=2),
    dict(causal=True, position="rope", n_kv_heads=1),
    dict(causal=True, position="rope", n_kv_heads=2, window=4),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("padded", [False, True])
def test_attention_matches_reference(case, padded):
    torch.manual_seed(0)
    case = dict(case)
    causal = case.pop("causal")
    cfg = BackboneConfig(d_model=16, n_heads=4, dropout=0.0, **case)
    m = Attention(cfg, causal=causal)
    x = torch.randn(1, 7, 16)
    mask = torch.tensor([[True] * 5 + [False] * 2]) if padded else None
    y, _ = m(x, mask=mask)
    ref = reference_attention(m, x, mask)
    rows = slice(None) if mask is None else mask[0]
    torch.testing.assert_close(y[:, rows], ref[:, rows], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("position", ["rope", "alibi", "sinusoidal", "learned", "none"])
@pytest.mark.parametrize("window", [None, 3])
def test_cached_decoding_equals_full_forward(position, window):
    torch.manual_seed(0)
    cfg = BackboneConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, dropout=0.0, position=position, window=window)
    stack = Stack(cfg, causal=True).eval()
    x = torch.randn(2, 9, 32)
    full, _ = stack(x)
    # chunked prefill (4 tokens) then one token at a time
    states = stack.init_state(2, x.device, x.dtype)
    outs, offset = [], 0
    for chunk in [x[:, :4]] + [x[:, i:i + 1] for i in range(4, 9)]:
        y, states = stack(chunk, states=states, offset=offset)
        offset += chunk.shape[1]
        outs.append(y)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-4, atol=1e-5)
    if window is not None:  # the cache stops growing at window-1 keys
        assert states[0]["key"].shape[2] == window - 1


@pytest.mark.parametrize("grad_mode", [torch.no_grad, torch.inference_mode])
def test_the_cache_grows_in_place_and_a_branched_state_keeps_its_keys(grad_mode):
    """Without autograd, decoding writes each new key into a preallocated buffer. Past the first
    buffer (CACHE_BLOCK positions) it moves to a bigger one, and stepping one state twice (two
    continuations of one prefix) must not let the second overwrite the first's keys."""
    torch.manual_seed(0)
    cfg = BackboneConfig(d_model=16, n_layers=2, n_heads=2, dropout=0.0, position="rope", max_len=128)
    stack = Stack(cfg, causal=True).eval()
    n = CACHE_BLOCK + 6
    x = torch.randn(2, n, 16)
    with grad_mode():
        full, _ = stack(x)
        states = stack.init_state(2, x.device, x.dtype)
        outs, pointers = [], set()
        for i in range(n):
            y, states = stack(x[:, i:i + 1], states=states, offset=i)
            outs.append(y)
            pointers.add(states[0]["key"].data_ptr())
        torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-4, atol=1e-5)
        assert len(pointers) == 2  # one buffer for the first CACHE_BLOCK keys, one after
        # branch: two different tokens after the same 5-token prefix, then one more on branch a
        prefix = stack.init_state(2, x.device, x.dtype)
        _, prefix = stack(x[:, :5], states=prefix)
        a, b, after = torch.randn(3, 2, 1, 16).unbind(0)
        _, state_a = stack(a, states=prefix, offset=5)
        y_b, _ = stack(b, states=prefix, offset=5)
        y_after, _ = stack(after, states=state_a, offset=6)
        torch.testing.assert_close(y_b, stack(torch.cat([x[:, :5], b], 1))[0][:, -1:], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(y_after, stack(torch.cat([x[:, :5], a, after], 1))[0][:, -1:], rtol=1e-4, atol=1e-5)


def test_padded_cached_decoding_matches_full():
    """Key padding masks carry through the cache (left-padded prompts in a decoder-only LM)."""
    torch.manual_seed(0)
    cfg = BackboneConfig(d_model=16, n_layers=1, n_heads=2, dropout=0.0)
    stack = Stack(cfg, causal=True).eval()
    x = torch.randn(2, 6, 16)
    mask = torch.tensor([[False, False, True, True, True, True], [True] * 6])
    full, _ = stack(x, mask=mask)
    states = stack.init_state(2, x.device, x.dtype)
    y1, states = stack(x[:, :3], mask=mask[:, :3], states=states)
    y2, states = stack(x[:, 3:], states=states, offset=3)
    got = torch.cat([y1, y2], 1)
    torch.testing.assert_close(got[:, 2:], full[:, 2:], rtol=1e-4, atol=1e-5)


def test_gradients_flow_through_all_parameters():
    cfg = BackboneConfig(d_model=16, n_layers=2, n_heads=2, dropout=0.0, position="alibi")
    stack = Stack(cfg, causal=True)
    stack(torch.randn(2, 5, 16))[0].sum().backward()
    missing = [n for n, p in stack.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_config_validation():
    with pytest.raises(ValueError, match="position"):
        BackboneConfig(position="xpos")
    with pytest.raises(ValueError, match="tile"):
        BackboneConfig(n_layers=3, mixer=["attention", "attention"])
    with pytest.raises(ValueError, match="window"):
        BackboneConfig(window=1)
    assert BackboneConfig(n_layers=4, mixer=["attention", "attention"]).mixer_pattern() == ["attention"] * 4


def test_padding_rows_skip_the_mlp_without_changing_real_outputs():
    """Encoder-decoder outputs at real positions are identical with and without MLP row packing."""
    from core.models import EncoderDecoder, Seq2SeqConfig

    torch.manual_seed(0)
    b = BackboneConfig(d_model=32, n_layers=2, n_heads=4, dropout=0.0)
    model = EncoderDecoder(Seq2SeqConfig(30, 30, b, b)).eval()
    src = torch.tensor([[5, 6, 7, 2, 0, 0], [8, 9, 10, 11, 12, 2]])
    tgt = torch.tensor([[1, 5, 6, 0, 0], [1, 7, 8, 9, 10]])
    packed = model.features(src, tgt)
    memory, mask = model.encoder(model.src_embed(src), mask=src != 0), src != 0
    unpacked = model.decoder.stack(model.tgt_embed(tgt), memory=model.decoder.memory_states(memory, mask))[0]
    ref_memory = model.encoder.stack(model.src_embed(src), mask=mask)[0]  # no packing
    torch.testing.assert_close(memory[mask], ref_memory[mask], rtol=1e-5, atol=1e-6)
    real = tgt != 0
    torch.testing.assert_close(packed[real], unpacked[real], rtol=1e-5, atol=1e-6)


def test_cross_attention_weights_are_the_ones_its_output_uses():
    """need_weights returns the softmax weights; weights @ values, projected, is the SDPA output;
    padded source positions get zero weight; recording() sees every forward with gradients."""
    from core.mixers import CrossAttention

    torch.manual_seed(0)
    cross = CrossAttention(BackboneConfig(d_model=16, n_heads=2, dropout=0.0))
    memory = cross.memory_state(torch.randn(2, 5, 16), torch.tensor([[True] * 5, [True] * 3 + [False] * 2]))
    x = torch.randn(2, 4, 16, requires_grad=True)
    out, w = cross(x, memory, need_weights=True)
    assert w.shape == (2, 2, 4, 5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 4))
    torch.testing.assert_close(w[1, :, :, 3:].detach(), torch.zeros(2, 4, 2))
    y = (w @ memory["value"]).transpose(1, 2).reshape(2, 4, 16)
    torch.testing.assert_close(cross.out(y), out, rtol=1e-5, atol=1e-6)
    with cross.recording() as records:
        plain = cross(x, memory)
        cross(x[:, :2], memory)
    torch.testing.assert_close(plain, out)
    assert [r.shape[2] for r in records] == [4, 2]
    torch.testing.assert_close(records[0], w)
    records[0].sum().backward()
    assert x.grad is not None
    cross(x, memory)
    assert len(records) == 2  # nothing recorded outside the block
