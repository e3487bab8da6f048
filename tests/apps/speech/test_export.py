"""ONNX export of speech models. ASR: onnxruntime transcribes exactly what PyTorch does (greedy), for
the CTC head and for transducers, with attention or recurrent encoders (bidirectional or causal) and
prediction networks, on audio of lengths the export never saw. TTS: the
step graphs synthesize the same spectrogram as PyTorch (same length, same frames) when both get the
same pre-net dropout masks, for the decoder-only model (recurrent and attention) and Transformer-TTS."""
import shutil

import numpy as np
import pytest
import torch

from apps.speech.audio import write_wav
from apps.speech.export import main
from apps.speech.asr.model import ASRConfig
from apps.speech.asr.task import SpeechRecognizer
from apps.speech.tts.task import SpeechSynthesizer
from apps.speech.tts.model import TTSConfig, VarianceConfig
from apps.speech.asr.onnx import OnnxTranscriber
from apps.speech.tts.onnx import OnnxSynthesizer
from apps.speech.transcribe import main as transcribe
from core.models import BackboneConfig
from core.tokenizers import SpaceTokenizer


def saved_recognizer(tmp_path, loss, encoder_mixer, predictor_mixer, streaming):
    torch.manual_seed(0)
    backbone = dict(d_model=32, n_heads=2, dropout=0.0)
    model = SpeechRecognizer(ASRConfig(vocab_size=32, encoder=BackboneConfig(n_layers=2, mixer=encoder_mixer, **backbone),
                                       predictor=BackboneConfig(n_layers=1, mixer=predictor_mixer, **backbone),
                                       loss=loss, joint_dim=32, streaming=streaming, subsampling_channels=8)).eval()
    with torch.no_grad():  # sharper than at init, so that random weights emit labels
        for p in model.parameters():
            p.mul_(3.0)
    return model, model.save_checkpoint(tmp_path / "model.ckpt")


@pytest.mark.parametrize("loss,encoder_mixer,predictor_mixer,streaming", [
    ("ctc", "attention", "attention", False),
    ("transducer", "attention", "attention", False),
    ("transducer", "attention", "gla", True),
    ("ctc", "mamba", "attention", False),  # bidirectional recurrent encoder: exported as ONNX Scans
    ("transducer", "gla", "mamba", True),  # streaming recurrent encoder and predictor
])
def test_onnx_transcripts_equal_pytorch(tmp_path, loss, encoder_mixer, predictor_mixer, streaming, capsys):
    model, ckpt = saved_recognizer(tmp_path, loss, encoder_mixer, predictor_mixer, streaming)
    gen = torch.Generator().manual_seed(3)
    paths = []
    for i, n in enumerate([16000, 9000, 23000]):
        write_wav(tmp_path / f"{i}.wav", torch.randn(n, generator=gen) * 0.1)
        paths.append(str(tmp_path / f"{i}.wav"))
    assert main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "onnx"), "--audio", *paths]) == 0
    assert "3/3 identical" in capsys.readouterr().out
    from apps.speech.audio import read_audio

    texts = OnnxTranscriber(tmp_path / "onnx")([read_audio(p).numpy() for p in paths])
    assert all(texts) and texts == model.transcribe([read_audio(p) for p in paths])
    assert transcribe(["--onnx", str(tmp_path / "onnx"), *paths]) == texts  # the command line runs it too
    with pytest.raises(SystemExit) as exit_:  # nothing is overwritten: one error line, exit 2
        main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "onnx")])
    assert exit_.value.code == 2 and "not empty" in capsys.readouterr().err


def saved_synthesizer(tmp_path, architecture, mixer):
    torch.manual_seed(0)
    tokenizer = SpaceTokenizer.train(["h ə l oʊ | w ɜː l d", "ð ə | k æ t , s æ t"])
    layer = dict(d_model=32, n_heads=2, dropout=0.0, position="rope" if mixer == "attention" else "none")
    model = SpeechSynthesizer(
        TTSConfig(vocab_size=tokenizer.vocab_size, backbone=BackboneConfig(n_layers=2, mixer=mixer, **layer),
                  encoder=BackboneConfig(n_layers=1, **layer) if architecture == "transformer" else None,
                  reduction=2, prenet_dim=16, postnet_channels=8), architecture=architecture, max_steps=12)
    stop = model.model.heads.stop
    with torch.no_grad():  # a sharp stop head that fires on about a quarter of the steps: some utterances stop early
        stop.weight.mul_(10.0)
        logits = []
        hook = stop.register_forward_hook(lambda module, args, out: logits.append(float(out.flatten()[-1])))
        model.model.eval().synthesize(torch.tensor([[5, 6, 7, 8, 9]]), 12)
        hook.remove()
        stop.bias -= sorted(logits)[len(logits) * 3 // 4]
    model.set_tokenizers({"phonemes": tokenizer.to_json()})
    return model, model.save_checkpoint(tmp_path / "tts.ckpt")  # with max_steps=12, a runtime option


@pytest.mark.parametrize("architecture,mixer", [("decoder", "gla"), ("decoder", "attention"), ("transformer", "attention")])
def test_onnx_tts_step_graphs_equal_pytorch(tmp_path, monkeypatch, architecture, mixer, capsys):
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))  # no corpus: random phonemes are checked
    model, ckpt = saved_synthesizer(tmp_path, architecture, mixer)
    assert main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "onnx"), "--n-check", "3"]) == 0
    printed = capsys.readouterr().out
    assert "step by step: 3/3 agree" in printed and "free-running: 3/3 identical" in printed
    runner = OnnxSynthesizer(tmp_path / "onnx")
    assert runner.config["architecture"] == architecture
    lengths = set()
    for seed, ids in enumerate([[5, 6, 7, 8, 9], [4, 9, 6], [7, 7, 5, 4], [8, 5, 9, 6, 4, 7]]):
        masks = runner.sample_masks(12, seed)
        assert set(np.unique(masks)) == {0.0, 2.0}  # dropout 0.5: dropped or scaled by 1 / (1 - p)
        ours = model.model.eval().synthesize(torch.tensor([ids]), 12, torch.from_numpy(masks)).numpy()
        onnx = runner(ids, masks)
        np.testing.assert_allclose(onnx, ours, rtol=1e-4, atol=1e-4)
        lengths.add(len(onnx))
        other = runner(ids, runner.sample_masks(12, seed + 7))  # the masks matter
        assert other.shape != onnx.shape or not np.allclose(other, onnx)
    assert min(lengths) < 24 and len(lengths) > 1, lengths  # the stop flag fired, at different steps
    with pytest.raises(SystemExit) as exit_:  # one error line, exit 2
        main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "onnx")])
    assert exit_.value.code == 2 and "not empty" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")
def test_synthesize_command_runs_the_onnx_export(tmp_path, monkeypatch):
    from apps.speech.audio import audio_info
    from apps.speech.synthesize import main as synthesize

    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    _, ckpt = saved_synthesizer(tmp_path, "decoder", "gla")
    assert main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "onnx"), "--n-check", "1"]) == 0
    result = synthesize(["--onnx", str(tmp_path / "onnx"), "Hello world.", "-o", str(tmp_path / "out.wav")])
    rate, frames, channels = audio_info(tmp_path / "out.wav")
    assert (rate, channels) == (16000, 1) and frames > 0 and result["frames"] > 0


@pytest.mark.parametrize("mixer", ["attention", "mamba", "gla"])
def test_onnx_fastspeech_equals_pytorch(tmp_path, monkeypatch, capsys, mixer):
    """The non-autoregressive model: the two graphs around the length regulator give PyTorch's
    mel for texts of several lengths (2 to 13 phonemes), at other paces, and within the length cap;
    bidirectional recurrent stacks export as scans, so no length is baked into the graph."""
    monkeypatch.setenv("SEQLAB_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    tokenizer = SpaceTokenizer.train(["h ə l oʊ | w ɜː l d", "ð ə | k æ t , s æ t"])
    layer = dict(d_model=32, n_heads=2, dropout=0.0, mixer=mixer, position="rope" if mixer == "attention" else "none")
    variance = VarianceConfig(predictor_channels=16, aligner_channels=8)
    model = SpeechSynthesizer(TTSConfig(vocab_size=tokenizer.vocab_size, backbone=BackboneConfig(n_layers=2, **layer),
                                        encoder=BackboneConfig(n_layers=1, **layer), postnet_channels=8,
                                        variance=variance), architecture="fastspeech", max_steps=12)
    with torch.no_grad():
        model.model.durations.out.bias.fill_(1.0)  # ~2 frames per phoneme, so the cap of 24 frames binds sometimes
    model.set_tokenizers({"phonemes": tokenizer.to_json()})
    ckpt = model.save_checkpoint(tmp_path / "tts.ckpt")
    assert main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "onnx"), "--n-check", "3"]) == 0
    assert "one pass: 3/3 agree" in capsys.readouterr().out
    runner = OnnxSynthesizer(tmp_path / "onnx")
    lengths = set()
    for ids in ([5, 6, 7, 8, 9], [4, 9], [7, 7, 5, 4, 8, 5, 9, 6, 4, 7, 5, 6, 7]):
        ours = model.model.eval().synthesize(torch.tensor([ids]), 12).numpy()
        onnx = runner(ids)
        np.testing.assert_allclose(onnx, ours, rtol=1e-4, atol=1e-4)
        lengths.add(len(onnx))
        fast, _ = runner.one_pass(ids, pace=2.0)
        assert len(fast) < len(onnx) or len(onnx) == 24
    assert max(lengths) == 24 and len(lengths) == 3, lengths
