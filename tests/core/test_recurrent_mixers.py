"""Recurrent mixers inside the backbones: cached decoding equals the full pass, hybrids work,
state size is constant, and encoders refuse causal-only mixers."""
import pytest
import torch

from core.generation import GenerationConfig, generate
from core.models import BackboneConfig, DecoderLM, Encoder, EncoderDecoder, LMConfig, Seq2SeqConfig
from core.models.blocks import Stack


RECURRENT = ["retnet", "linear_attention"]


def softmax_free_reference(mixer, x):
    """Linear attention written as masked (quadratic) attention: the parallel form it must equal."""
    b, t, _ = x.shape
    h, dk = mixer.n_heads, mixer.dk
    q, k, v = (y.view(b, t, h, dk).transpose(1, 2) for y in mixer.qkv(x).chunk(3, dim=-1))
    q, k = torch.nn.functional.elu(q) + 1, torch.nn.functional.elu(k) + 1
    scores = (q @ k.transpose(-1, -2)).tril()
    o = (scores @ v) / (scores.sum(-1, keepdim=True) + mixer.eps)
    return mixer.out(o.transpose(1, 2).reshape(b, t, h * dk))


def test_linear_attention_matches_quadratic_form():
    from core.mixers import LinearAttention

    torch.manual_seed(0)
    m = LinearAttention(BackboneConfig(d_model=16, n_heads=2, mixer_options={"chunk": 4}), causal=True)
    x = torch.randn(2, 10, 16, requires_grad=True)
    y, _ = m(x)
    ref = softmax_free_reference(m, x)
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-5)
    g1 = torch.autograd.grad(y.sum(), x)[0]
    g2 = torch.autograd.grad(ref.sum(), x)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mixer", RECURRENT + [["retnet", "attention"], ["linear_attention", "attention"]],
                         ids=RECURRENT + ["retnet-hybrid", "linear-hybrid"])
def test_prefill_and_steps_equal_full_forward(mixer):
    torch.manual_seed(0)
    cfg = BackboneConfig(d_model=32, n_layers=2, n_heads=4, dropout=0.0, mixer=mixer, mixer_options={"chunk": 4})
    stack = Stack(cfg, causal=True).eval()
    x = torch.randn(2, 11, 32)
    full, _ = stack(x)
    states = stack.init_state(2, x.device, x.dtype)
    outs, offset = [], 0
    for chunk in [x[:, :6]] + [x[:, i:i + 1] for i in range(6, 11)]:  # prefill spans chunks, then steps
        y, states = stack(chunk, states=states, offset=offset)
        offset += chunk.shape[1]
        outs.append(y)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mixer", RECURRENT)
def test_left_padding_leaves_the_state_untouched(mixer):
    """A left-padded prompt ends in the same state, with the same outputs, as the unpadded one
    placed at the same positions: padding neither writes to nor decays the state."""
    torch.manual_seed(0)
    cfg = BackboneConfig(d_model=16, n_layers=1, n_heads=2, dropout=0.0, mixer=mixer, position="none")
    stack = Stack(cfg, causal=True).eval()
    x = torch.randn(1, 5, 16)
    padded = torch.cat([torch.randn(1, 3, 16), x], 1)
    mask = torch.tensor([[False] * 3 + [True] * 5])
    y_a, s_a = stack(x, states=stack.init_state(1, x.device, x.dtype), offset=3)
    y_b, s_b = stack(padded, mask=mask, states=stack.init_state(1, x.device, x.dtype))
    torch.testing.assert_close(s_b[0]["state"], s_a[0]["state"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(y_b[:, 3:], y_a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mixer", RECURRENT)
def test_generate_with_constant_state_size(mixer):
    torch.manual_seed(0)
    lm = DecoderLM(LMConfig(20, BackboneConfig(d_model=32, n_layers=2, n_heads=4, dropout=0.0, mixer=mixer))).eval()
    state = lm.start(2)
    sizes = []
    ids = torch.tensor([[1], [1]])
    for _ in range(5):
        logits, state = lm.step(ids, state)
        sizes.append(sum(t.numel() for layer in state.layers for t in layer.values()))
        ids = logits[:, -1].argmax(-1, keepdim=True)
    assert len(set(sizes)) == 1  # O(1) memory per step
    hyps = generate(lm, lm.start(2), GenerationConfig(max_len=6))
    assert len(hyps) == 2


def test_encoder_decoder_with_recurrent_decoder_decodes_like_full_recompute():
    torch.manual_seed(0)
    enc = BackboneConfig(d_model=32, n_layers=1, n_heads=4, dropout=0.0)
    dec = BackboneConfig(d_model=32, n_layers=2, n_heads=4, dropout=0.0, mixer=["retnet", "attention"])
    model = EncoderDecoder(Seq2SeqConfig(15, 15, enc, dec, tie_output=False)).eval()
    src = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 0]])
    hyps = generate(model, model.start(src), GenerationConfig(max_len=6))
    for row, h in zip(src, hyps):
        ys = [1]
        with torch.no_grad():
            for _ in range(5):
                nxt = int(model(row[None], torch.tensor([ys]))[0, -1].argmax())
                if nxt == 2:
                    break
                ys.append(nxt)
        assert h[0].tokens == ys[1:]


@pytest.mark.parametrize("mixer", RECURRENT)
def test_encoder_refuses_causal_only_mixer(mixer):
    with pytest.raises(ValueError, match="causal-only"):
        Encoder(BackboneConfig(d_model=16, n_heads=2, mixer=mixer))
