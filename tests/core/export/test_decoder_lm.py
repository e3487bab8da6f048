"""The decoder-only export: one step graph that prefills a prompt of any length and continues with
state, ``config.json`` beside it, and :class:`OnnxDecoderLM` running core.generation's searches on
it unchanged (greedy and beam equal PyTorch). Every mixer's parity is in test_every_mixer.py; this
file checks the graph's interface once, on a windowed rope attention LM (cache shorter than offset)."""
import json

import onnx
import pytest
import torch

from core.errors import UserError
from core.export import DEFAULT_OPSET, OnnxDecoderLM, export_decoder_lm
from core.generation import GenerationConfig, generate
from core.models import BackboneConfig, DecoderLM, LMConfig

BOS, EOS, VOCAB = 1, 2, 24


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    cfg = LMConfig(VOCAB, BackboneConfig(d_model=16, n_layers=2, n_heads=2, n_kv_heads=1, dropout=0.0, window=4,
                                         max_len=64), tie_output=False)
    model = DecoderLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, p.shape[1] ** -0.5)
    out = tmp_path_factory.mktemp("lm")
    paths = export_decoder_lm(model, out, metadata={"bos_id": BOS, "eos_id": EOS, "tokenizer": "tok.json"})
    return model, OnnxDecoderLM(out), paths


def test_graph_interface_and_config(exported):
    _, runner, paths = exported
    assert sorted(paths) == ["config", "decoder"]
    inputs = {i.name: i.shape for i in runner.decoder.get_inputs()}
    assert list(inputs) == ["input_ids", "offset"] + [f"past_key_values.{i}.decoder.{kv}" for i in (0, 1)
                                                      for kv in ("key", "value")]
    assert inputs["input_ids"] == ["batch", "tgt_len"] and inputs["offset"] == []
    assert inputs["past_key_values.1.decoder.value"] == ["batch", 1, "past_len", 8]
    outputs = {o.name: o.shape for o in runner.decoder.get_outputs()}
    assert list(outputs) == ["logits"] + [f"present.{i}.decoder.{kv}" for i in (0, 1) for kv in ("key", "value")]
    assert outputs["logits"] == ["batch", "tgt_len", VOCAB] and outputs["present.0.decoder.key"][2] == "present_len"
    cfg = json.loads(paths["config"].read_text())
    assert cfg["format"] == "seqlab.onnx_decoder_lm" and cfg["opset"] == DEFAULT_OPSET and not cfg["step_only"]
    assert cfg["metadata"]["tokenizer"] == "tok.json" and cfg["vocab_size"] == VOCAB
    assert cfg["layer_states"][0] == {"growing": True, "shapes": {"key": [1, 0, 8], "value": [1, 0, 8]}}
    assert {o.version for o in onnx.load(str(paths["decoder"])).opset_import if o.domain == ""} == {DEFAULT_OPSET}
    assert runner.generation_config().eos_id == EOS
    assert (runner.bos_id, runner.eos_id) == (BOS, EOS)  # core.generation reads the model's specials


def test_prefill_in_chunks_equals_one_call(exported):
    """Prompts of several lengths in one call or in chunks give the same logits (the window cuts the
    cache to 3 keys while offsets keep counting), with a batch size the export never saw."""
    model, runner, _ = exported
    ids = torch.randint(3, VOCAB, (3, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, _ = model.step(ids, model.start(3))
    whole, _ = runner.step(ids, runner.start(3))
    torch.testing.assert_close(whole, want, atol=1e-4, rtol=1e-4)
    state, parts = runner.start(3), []
    for chunk in (ids[:, :4], ids[:, 4:5], ids[:, 5:]):
        logits, state = runner.step(chunk, state)
        parts.append(logits)
    torch.testing.assert_close(torch.cat(parts, 1), want, atol=1e-4, rtol=1e-4)
    assert state.offset == 9 and state.layers[0]["key"].shape[2] == 3


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_generation_from_a_prompt_equals_pytorch(exported, strategy):
    model, runner, _ = exported
    prompt = torch.tensor([[BOS, 5, 9, 13, 7], [BOS, 11, 4, 4, 7]])
    cfg = GenerationConfig(strategy=strategy, beam_size=3, n_best=2 if strategy == "beam" else 1, max_len=10,
                           eos_id=EOS)
    got = runner.generate(prompt, cfg)
    with torch.no_grad():
        _, state = model.step(prompt[:, :-1], model.start(2))
    want = generate(model, state, GenerationConfig(**{**vars(cfg), "bos_id": 7}))
    assert [[h.tokens for h in row] for row in got] == [[h.tokens for h in row] for row in want]
    assert all(abs(g.score - w.score) < 1e-3 for gr, wr in zip(got, want) for g, w in zip(gr, wr))
    assert got[0][0].tokens != got[1][0].tokens  # the prompts matter
    state, last = runner.prompt(prompt)  # the same search through core.generation directly
    assert last == 7 and state.offset == 4
    assert generate(runner, state, GenerationConfig(**{**vars(cfg), "bos_id": last})) == got


def test_bad_prompt_and_bad_folder(exported, tmp_path):
    _, runner, paths = exported
    with pytest.raises(ValueError, match="same token"):
        runner.prompt(torch.tensor([[BOS, 5], [BOS, 6]]))
    state, last = runner.prompt(torch.tensor([[BOS]]))  # a prompt of one token consumes nothing
    assert last == BOS and state.offset == 0 and state.layers[0]["key"].shape == (1, 1, 0, 8)
    (tmp_path / "config.json").write_text(json.dumps({"format": "seqlab.onnx_seq2seq", "version": 2}))
    with pytest.raises(UserError, match="not a seqlab.onnx_decoder_lm export"):
        OnnxDecoderLM(tmp_path)
    cfg = json.loads(paths["config"].read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "version": 99}))
    with pytest.raises(UserError, match="export the checkpoint again"):
        OnnxDecoderLM(tmp_path)
