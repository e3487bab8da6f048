"""ONNX export of ASR models: onnxruntime transcribes exactly what PyTorch does (greedy), for the
CTC head and for transducers whose prediction network is attention or a recurrent mixer."""
import pytest
import torch

from apps.speech.audio import write_wav
from apps.speech.export import OnnxTranscriber, main
from apps.speech.model import SpeechRecognizer
from core.models import BackboneConfig


def saved_recognizer(tmp_path, loss, encoder_mixer, predictor_mixer, streaming):
    torch.manual_seed(0)
    backbone = dict(d_model=32, n_heads=2, dropout=0.0)
    model = SpeechRecognizer(vocab_size=32, encoder=BackboneConfig(n_layers=2, mixer=encoder_mixer, **backbone),
                             predictor=BackboneConfig(n_layers=1, mixer=predictor_mixer, **backbone), loss=loss,
                             joint_dim=32, streaming=streaming, subsampling_channels=8).eval()
    with torch.no_grad():  # sharper than at init, so that random weights emit labels
        for p in model.parameters():
            p.mul_(3.0)
    ckpt = tmp_path / "model.ckpt"
    torch.save({"hyper_parameters": dict(model.hparams), "state_dict": model.state_dict()}, ckpt)
    return model, ckpt


@pytest.mark.parametrize("loss,encoder_mixer,predictor_mixer,streaming", [
    ("ctc", "attention", "attention", False),
    ("transducer", "attention", "attention", False),
    ("transducer", "attention", "gla", True),
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
    with pytest.raises(SystemExit, match="not empty"):  # nothing is overwritten
        main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "onnx")])


def test_recurrent_encoders_are_refused_with_a_reason(tmp_path):
    _, ckpt = saved_recognizer(tmp_path, "ctc", "mamba", "attention", True)
    with pytest.raises(ValueError, match="needs attention mixers"):
        main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "onnx")])
