"""The mixer contract, checked for every registered mixer (a new family is tested by registering it):
chunked prefill + single steps equal the full pass, padding is invisible, recurrent state has a
fixed size, generate() runs, gradients reach every parameter, and the encoder's bidirectional use
ignores right padding."""
import numpy as np
import pytest
import torch

from core.generation import GenerationConfig, generate
from core.mixers import MIXERS
from core.models import BackboneConfig, DecoderLM, Encoder, LMConfig
from core.models.blocks import Stack

ALL = sorted(MIXERS)
RECURRENT = [m for m in ALL if MIXERS[m].fixed_state]
#: small chunks/blocks so 11 tokens span several of them (the classic inter-chunk bugs)
TINY = {"chunk": 4, "block": 4}


def config(mixer, **kw) -> BackboneConfig:
    families = {mixer} if isinstance(mixer, str) else set(mixer)
    options = {name: {k: v for k, v in TINY.items() if k in MIXERS[name].options} for name in families}
    base = dict(d_model=32, n_layers=2, n_heads=4, dropout=0.0, mixer=mixer, mixer_options=options)
    base.update(kw)
    return BackboneConfig(**base)


def flat_state(states):
    return torch.cat([t.reshape(t.shape[0], -1) for layer in states for _, t in sorted(layer.items())], 1)


@pytest.mark.parametrize("mixer", ALL + [["mamba", "attention"]] * ("mamba" in MIXERS),
                         ids=ALL + ["mamba-attention"] * ("mamba" in MIXERS))
def test_prefill_and_steps_equal_full_forward(mixer):
    torch.manual_seed(0)
    stack = Stack(config(mixer), causal=True).eval()
    x = torch.randn(2, 11, 32)
    with torch.no_grad():
        full, _ = stack(x)
        states = stack.init_state(2, x.device, x.dtype)
        outs, offset = [], 0
        for piece in [x[:, :6]] + [x[:, i:i + 1] for i in range(6, 11)]:
            y, states = stack(piece, states=states, offset=offset)
            offset += piece.shape[1]
            outs.append(y)
    torch.testing.assert_close(torch.cat(outs, 1), full, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mixer", ALL)
def test_left_padding_leaves_outputs_and_state_untouched(mixer):
    torch.manual_seed(0)
    stack = Stack(config(mixer, n_layers=1, position="none"), causal=True).eval()
    x = torch.randn(1, 7, 32)
    padded = torch.cat([torch.randn(1, 3, 32), x], 1)
    mask = torch.tensor([[False] * 3 + [True] * 7])
    with torch.no_grad():
        y_a, s_a = stack(x, states=stack.init_state(1, x.device, x.dtype), offset=3)
        y_b, s_b = stack(padded, mask=mask, states=stack.init_state(1, x.device, x.dtype))
    torch.testing.assert_close(y_b[:, 3:], y_a, rtol=1e-4, atol=1e-5)
    if MIXERS[mixer].fixed_state:  # (attention keeps padded keys in its cache, masked)
        torch.testing.assert_close(flat_state(s_b), flat_state(s_a), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mixer", ALL)
def test_right_padding_does_not_change_real_outputs(mixer):
    """Training batches are right-padded: real positions must not see the padding."""
    torch.manual_seed(0)
    stack = Stack(config(mixer), causal=True).eval()
    x = torch.randn(1, 9, 32)
    padded = torch.cat([x, torch.randn(1, 4, 32)], 1)
    mask = torch.tensor([[True] * 9 + [False] * 4])
    with torch.no_grad():
        y_a, _ = stack(x)
        y_b, _ = stack(padded, mask=mask)
    torch.testing.assert_close(y_b[:, :9], y_a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mixer", RECURRENT)
def test_generate_with_constant_state_size(mixer):
    torch.manual_seed(0)
    lm = DecoderLM(LMConfig(20, config(mixer))).eval()
    state = lm.start(2)
    sizes = []
    ids = torch.tensor([[1], [1]])
    with torch.no_grad():
        for _ in range(5):
            logits, state = lm.step(ids, state)
            sizes.append(sum(t.numel() for layer in state.layers for t in layer.values()))
            ids = logits[:, -1].argmax(-1, keepdim=True)
    assert len(set(sizes)) == 1, sizes  # O(1) memory per step
    hyps = generate(lm, lm.start(2), GenerationConfig(max_len=6, strategy="beam", beam_size=2))
    assert len(hyps) == 2 and all(len(h[0].tokens) <= 6 for h in hyps)


@pytest.mark.parametrize("mixer", ALL)
def test_gradients_reach_every_parameter(mixer):
    torch.manual_seed(0)
    stack = Stack(config(mixer, n_layers=1), causal=True)
    x = torch.randn(2, 10, 32, requires_grad=True)
    y, _ = stack(x)
    y.square().sum().backward()
    missing = [n for n, p in stack.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("mixer", ALL)
def test_encoder_sees_both_directions_and_ignores_right_padding(mixer):
    torch.manual_seed(0)
    enc = Encoder(config(mixer)).eval()
    x = torch.randn(1, 8, 32)
    with torch.no_grad():
        y, y2 = enc(x), enc(torch.cat([x[:, :7], torch.randn(1, 1, 32)], 1))
        padded = torch.cat([x, torch.randn(1, 3, 32)], 1)
        y_pad = enc(padded, mask=torch.tensor([[True] * 8 + [False] * 3]))
    assert not torch.allclose(y[:, 0], y2[:, 0])  # the first position sees the last
    torch.testing.assert_close(y_pad[:, :8], y, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mixer", ALL)
def test_step_exports_to_onnx_with_parity(mixer, tmp_path):
    """The recurrent step (state in, state out) runs in onnxruntime and agrees with PyTorch over
    several steps from a prefilled state, with a batch size other than the exported one."""
    import onnxruntime as ort

    from core.export import export_mixer_step
    from core.export.names import layer_state_names
    from core.mixers import build_mixer

    torch.manual_seed(0)
    cfg = config(mixer)
    m = build_mixer(mixer, cfg, causal=True).eval()
    names = export_mixer_step(m, tmp_path / "step.onnx", cfg.d_model)
    sess = ort.InferenceSession(str(tmp_path / "step.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 9, cfg.d_model)
    with torch.no_grad():
        _, state = m(x[:, :5], state=m.init_state(3, x.device, x.dtype))
        ort_state = {n: state[n].numpy() for n in names}
        for i in range(5, 9):
            want, state = m(x[:, i:i + 1], state=state, offset=i)
            past = layer_state_names(0, not m.fixed_state, names, "past")
            assert [i.name for i in sess.get_inputs()] == ["x", "offset", *past]
            outs = sess.run(None, {"x": x[:, i:i + 1].numpy(), "offset": np.asarray(i, dtype=np.int64),
                                   **{p: ort_state[n] for p, n in zip(past, names)}})
            torch.testing.assert_close(torch.from_numpy(outs[0]), want, rtol=1e-4, atol=1e-5)
            ort_state = dict(zip(names, outs[1:]))
            for n in names:
                torch.testing.assert_close(torch.from_numpy(ort_state[n]), state[n], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mixer", RECURRENT)
def test_scanned_form_equals_chunked_form(mixer):
    """The export form (a scan over the step) gives the chunked form's outputs at real positions,
    causal and bidirectional, with right padding."""
    from core.export import scanned_mixers

    torch.manual_seed(0)
    x = torch.randn(2, 11, 32)
    mask = torch.tensor([[True] * 11, [True] * 7 + [False] * 4])
    for stack in (Stack(config(mixer), causal=True).eval(), Encoder(config(mixer)).eval().stack):
        with torch.no_grad():
            want = stack(x, mask=mask)[0]
            with scanned_mixers(stack):
                got = stack(x, mask=mask)[0]
        torch.testing.assert_close(got[mask], want[mask], rtol=1e-4, atol=1e-5)
    assert not any(type(layer.mixer).__name__ == "ScannedMixer" for layer in stack.layers)  # put back


@pytest.mark.parametrize("mixer", ["mamba", "gla", "slstm"])
def test_recurrent_encoder_exports_to_onnx_for_any_length(mixer, tmp_path):
    """With its mixers as scans, a bidirectional recurrent encoder exports once and runs in
    onnxruntime at lengths and batch sizes it was not exported with."""
    import onnxruntime as ort

    from core.export import scanned_mixers

    torch.manual_seed(0)
    enc = Encoder(config(mixer)).eval()
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("length", min=2)}
    with torch.no_grad(), scanned_mixers(enc.stack):
        prog = torch.onnx.export(enc, (torch.randn(2, 6, 32), torch.ones(2, 6, dtype=torch.bool)), dynamo=True,
                                 input_names=["x", "mask"], dynamic_shapes=(dims, dims))
    prog.save(tmp_path / "encoder.onnx")
    sess = ort.InferenceSession(str(tmp_path / "encoder.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 13, 32)
    mask = torch.tensor([[True] * 13, [True] * 9 + [False] * 4, [True] * 2 + [False] * 11])
    with torch.no_grad():
        want = enc(x, mask=mask)
    got = torch.from_numpy(sess.run(None, {"x": x.numpy(), "mask": mask.numpy()})[0])
    torch.testing.assert_close(got[mask], want[mask], rtol=1e-4, atol=1e-5)
