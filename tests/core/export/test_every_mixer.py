"""ONNX vs PyTorch for every registered mixer (a new family is tested by registering it), in a tiny
decoder-only LM and as a decoder layer of a tiny encoder-decoder: logits over a prompt prefill and
a few single steps agree, and so do the states, the graph's state inputs are the names of
core/export/names.py, and greedy generation through onnxruntime equals PyTorch token for token."""
import pytest
import torch

from core.export import (
    OnnxDecoderLM, OnnxEncoderDecoder, decoder_input_names, export_decoder_lm, export_encoder_decoder,
    lm_input_names, stack_layer_states,
)
from core.generation import GenerationConfig, generate
from core.mixers import MIXERS
from core.models import BackboneConfig, DecoderLM, EncoderDecoder, LMConfig, Seq2SeqConfig

ALL = sorted(MIXERS)
PAD, BOS, EOS, VOCAB = 0, 1, 2, 24
ATOL = 1e-4


def backbone(mixer: str = "attention") -> BackboneConfig:
    return BackboneConfig(d_model=16, n_layers=1, n_heads=2, dropout=0.0, mixer=mixer, max_len=64)


def sharpen(model: torch.nn.Module) -> torch.nn.Module:
    """Unit-scale embeddings and head: at the default init (std 0.02) logits are near-ties, and a
    greedy comparison would test rounding, not the graph."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed" in name or name.startswith("head"):
                p.normal_(0.0, 1.0)
    return model.eval()


def close(got: torch.Tensor, want: torch.Tensor) -> None:
    torch.testing.assert_close(got, want, atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("mixer", ALL)
def test_decoder_lm_onnx_matches_pytorch(mixer, tmp_path):
    torch.manual_seed(0)
    model = sharpen(DecoderLM(LMConfig(VOCAB, backbone(mixer), tie_output=False)))
    export_decoder_lm(model, tmp_path, metadata={"bos_id": BOS, "eos_id": EOS})
    runner = OnnxDecoderLM(tmp_path)
    layers = stack_layer_states(model.decoder.stack)
    assert [i.name for i in runner.decoder.get_inputs()] == lm_input_names(layers)
    assert runner.step_only == MIXERS[mixer].fixed_state  # recurrent: one-token step graph

    prompt = torch.tensor([[BOS, 5, 9, 7], [BOS, 11, 4, 7]])
    with torch.no_grad():
        ref = model.start(2)
        want, ref = model.step(prompt, ref)
        got, state = runner.step(prompt, runner.start(2))
        close(got, want)
        for ids in ([[3], [8]], [[6], [6]], [[12], [5]]):
            ids = torch.tensor(ids)
            want, ref = model.step(ids, ref)
            got, state = runner.step(ids, state)
            close(got, want)
        assert state.offset == ref.offset == 7
        for a, b in zip(state.layers, ref.layers):
            assert sorted(a) == sorted(b)
            for n in a:
                close(a[n], b[n])

    # greedy generation from the prompt: same tokens, same log-probabilities
    cfg = GenerationConfig(max_len=8, bos_id=EOS, eos_id=EOS)  # bos_id is replaced by the prompt's last token
    got = runner.generate(prompt, cfg)
    with torch.no_grad():
        _, ref = model.step(prompt[:, :-1], model.start(2))
    want = generate(model, ref, GenerationConfig(max_len=8, bos_id=7, eos_id=EOS))
    assert [[h.tokens for h in row] for row in got] == [[h.tokens for h in row] for row in want]
    assert all(abs(g[0].logprob - w[0].logprob) < 1e-3 for g, w in zip(got, want))


def sources() -> torch.Tensor:
    return torch.tensor([[5, 6, 7, 8, 9, EOS], [9, 4, EOS, PAD, PAD, PAD]])


#: Encoder-decoders: every registered mixer is one decoder layer of a hybrid, so that the (identical,
#: attention) encoder is exported twice rather than once per mixer: 16 exports took ~200 s on 2 busy
#: cores, the two hybrids ~30 s. Growing-state mixers form one decoder (a chunked graph, whole
#: prefill in one call), recurrent ones the other (a one-token step graph).
GROUPS = {"growing": [m for m in ALL if not MIXERS[m].fixed_state], "recurrent": [m for m in ALL if MIXERS[m].fixed_state]}


@pytest.mark.parametrize("group", list(GROUPS))
def test_encoder_decoder_onnx_matches_pytorch(group, tmp_path):
    mixers = GROUPS[group]
    torch.manual_seed(0)
    decoder = BackboneConfig(d_model=16, n_layers=len(mixers), n_heads=2, dropout=0.0, mixer=mixers, max_len=64)
    model = sharpen(EncoderDecoder(Seq2SeqConfig(VOCAB, VOCAB, backbone(), decoder, tie_output=False), pad_id=PAD))
    export_encoder_decoder(model, tmp_path, metadata={"bos_id": BOS, "eos_id": EOS})
    runner = OnnxEncoderDecoder(tmp_path)
    layers = stack_layer_states(model.decoder.stack)
    assert [i.name for i in runner.decoder.get_inputs()] == decoder_input_names(layers)
    assert runner.step_only == (group == "recurrent")
    src = sources()
    with torch.no_grad():
        ref, state = model.start(src), runner.start(src)
        for ids in ([[BOS, 5, 6], [BOS, 3, 3]], [[4], [9]], [[10], [4]]):
            ids = torch.tensor(ids)
            want, ref = model.step(ids, ref)
            got, state = runner.step(ids, state)
            close(got, want)
        for mixer, a, b in zip(mixers, state.layers, ref.layers):
            assert sorted(a) == sorted(b), mixer
            for n in b:
                torch.testing.assert_close(a[n], b[n], atol=ATOL, rtol=1e-4, msg=lambda m, where=f"{mixer} {n}": f"{where}: {m}")
    cfg = GenerationConfig(max_len=6, bos_id=BOS, eos_id=EOS)
    assert ([h.tokens for row in runner.generate(src, cfg) for h in row]
            == [h.tokens for row in generate(model, model.start(src), cfg) for h in row])
