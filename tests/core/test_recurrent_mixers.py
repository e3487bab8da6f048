"""Recurrent mixers against their closed forms and inside an encoder-decoder (the generic contract
for every mixer is in test_mixer_contract.py)."""
import torch

from core.generation import GenerationConfig, generate
from core.models import BackboneConfig, EncoderDecoder, Seq2SeqConfig



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


def test_griffin_pattern_is_two_rglru_layers_per_local_attention_layer():
    from core.models.blocks import Stack

    cfg = BackboneConfig(d_model=32, n_layers=6, n_heads=4, dropout=0.0, mixer="griffin", window=4)
    assert cfg.mixer_pattern() == ["rglru", "rglru", "attention"] * 2
    torch.manual_seed(0)
    stack = Stack(cfg, causal=True).eval()
    x = torch.randn(2, 10, 32)
    with torch.no_grad():
        full, _ = stack(x)
        states = stack.init_state(2, x.device, x.dtype)
        outs = []
        for i in range(10):  # past the window: the attention cache stays at window - 1 keys
            y, states = stack(x[:, i:i + 1], states=states, offset=i)
            outs.append(y)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-4, atol=1e-5)
    assert states[2]["key"].shape[2] == 3
