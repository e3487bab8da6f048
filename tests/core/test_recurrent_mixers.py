"""Recurrent mixers inside the backbones: cached decoding equals the full pass, hybrids work,
state size is constant, and encoders refuse causal-only mixers."""
import pytest
import torch

from core.generation import GenerationConfig, generate
from core.models import BackboneConfig, DecoderLM, Encoder, EncoderDecoder, LMConfig, Seq2SeqConfig
from core.models.blocks import Stack


@pytest.mark.parametrize("mixer", ["retnet", ["retnet", "attention"]], ids=["retnet", "hybrid"])
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


def test_left_padding_leaves_the_state_untouched():
    """A left-padded prompt ends in the same state, with the same outputs, as the unpadded one
    placed at the same positions: padding neither writes to nor decays the state."""
    torch.manual_seed(0)
    cfg = BackboneConfig(d_model=16, n_layers=1, n_heads=2, dropout=0.0, mixer="retnet", position="none")
    stack = Stack(cfg, causal=True).eval()
    x = torch.randn(1, 5, 16)
    padded = torch.cat([torch.randn(1, 3, 16), x], 1)
    mask = torch.tensor([[False] * 3 + [True] * 5])
    y_a, s_a = stack(x, states=stack.init_state(1, x.device, x.dtype), offset=3)
    y_b, s_b = stack(padded, mask=mask, states=stack.init_state(1, x.device, x.dtype))
    torch.testing.assert_close(s_b[0]["state"], s_a[0]["state"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(y_b[:, 3:], y_a, rtol=1e-5, atol=1e-6)


def test_generate_with_constant_state_size():
    torch.manual_seed(0)
    lm = DecoderLM(LMConfig(20, BackboneConfig(d_model=32, n_layers=2, n_heads=4, dropout=0.0, mixer="retnet"))).eval()
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


def test_encoder_refuses_causal_only_mixer():
    with pytest.raises(ValueError, match="causal-only"):
        Encoder(BackboneConfig(d_model=16, n_heads=2, mixer="retnet"))
