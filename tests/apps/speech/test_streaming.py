"""Streaming transcription of a causal model: chunk by chunk, partial transcripts only grow, and the
final one equals offline greedy decoding of the whole recording, whatever the chunk size."""
import pytest
import torch

from apps.speech.asr.model import ASRConfig
from apps.speech.asr.task import SpeechRecognizer
from apps.speech.asr.streaming import StreamingTranscriber
from core.models import BackboneConfig


def recognizer(mixer, loss, head=None, seed=0):
    torch.manual_seed(seed)
    backbone = dict(d_model=32, n_heads=2, dropout=0.0)
    model = SpeechRecognizer(ASRConfig(vocab_size=32, encoder=BackboneConfig(n_layers=2, mixer=mixer, **backbone),
                                       predictor=BackboneConfig(n_layers=1, **backbone), loss=loss, joint_dim=32,
                                       streaming=True, subsampling_channels=8), head=head).eval()
    with torch.no_grad():  # a sharper joint than at init, so that random weights emit labels
        for p in model.parameters():
            p.mul_(3.0)
    return model


@pytest.mark.parametrize("mixer,loss,head", [("attention", "transducer", None), ("mamba", "joint", "ctc"),
                                             ("gla", "joint", "transducer")])
@pytest.mark.parametrize("chunk", [1600, 2777, 16000])
def test_streaming_equals_offline(mixer, loss, head, chunk):
    model = recognizer(mixer, loss, head)
    audio = torch.randn(24000, generator=torch.Generator().manual_seed(1)) * 0.1
    offline = model.transcribe([audio])[0]
    stream = StreamingTranscriber(model)
    partials = [stream.feed(audio[i:i + chunk]) for i in range(0, len(audio), chunk)]
    assert offline, "the test model should emit something"
    assert partials[-1] == offline
    assert all(b.startswith(a) for a, b in zip(partials, partials[1:]))  # a partial transcript only grows
    if chunk < len(audio):
        assert partials[0] != offline  # and really is partial early on


def test_bidirectional_models_refuse_to_stream():
    model = recognizer("attention", "ctc")
    model.model.cfg.streaming = False
    with pytest.raises(ValueError, match="streaming: true"):
        StreamingTranscriber(model)


def test_transcribe_command_streams_and_matches_offline(tmp_path, capsys):
    from apps.speech.audio import write_wav
    from apps.speech.transcribe import main

    model = recognizer("mamba", "transducer")
    ckpt = model.save_checkpoint(tmp_path / "model.ckpt")
    audio = torch.randn(20000, generator=torch.Generator().manual_seed(2)) * 0.1
    write_wav(tmp_path / "a.wav", audio)
    offline = main(["--checkpoint", str(ckpt), str(tmp_path / "a.wav")])
    streamed = main(["--checkpoint", str(ckpt), "--stream", "--chunk-ms", "200", str(tmp_path / "a.wav")])
    out, err = capsys.readouterr()
    assert streamed == offline and offline[0]
    assert out.splitlines() == [f"{tmp_path / 'a.wav'}\t{offline[0]}"] * 2
    assert len(err.splitlines()) >= 2  # partial transcripts along the way
