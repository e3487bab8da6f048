"""The speech inference commands with the files a user gets wrong: ``transcribe`` reports a bad audio
file (missing, unreadable, stereo, empty, shorter than the front end's receptive field), gives it an
empty transcript and goes on (one line per file, in order, exit 1); a missing, truncated or foreign
checkpoint is one line naming the file (exit 2); ``synthesize`` refuses bad arguments in one line."""
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from apps.speech.asr.model import ASRConfig
from apps.speech.audio import write_wav
from apps.speech.features import min_audio_samples
from apps.speech.asr.task import SpeechRecognizer
from apps.speech.tts.task import SpeechSynthesizer
from apps.speech.transcribe import main as transcribe
from core.errors import EXIT_ERROR, EXIT_SKIPPED
from core.models import BackboneConfig

LAYER = dict(d_model=16, n_heads=2, dropout=0.0)


def tiny_recognizer(streaming: bool = False) -> SpeechRecognizer:
    return SpeechRecognizer(ASRConfig(vocab_size=32, encoder=BackboneConfig(n_layers=1, **LAYER),
                                      predictor=BackboneConfig(n_layers=1, **LAYER), loss="ctc", joint_dim=16,
                                      subsampling_channels=8, streaming=streaming))


@pytest.fixture(scope="module")
def asr(tmp_path_factory):
    """An untrained CTC recognizer with a sharpened head, so that random weights emit labels."""
    torch.manual_seed(0)
    model = tiny_recognizer().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model, model.save_checkpoint(tmp_path_factory.mktemp("asr") / "asr.ckpt")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory, asr):
    folder = tmp_path_factory.mktemp("audio")
    gen = torch.Generator().manual_seed(1)
    write_wav(folder / "a.wav", torch.randn(12000, generator=gen) * 0.1)
    write_wav(folder / "b.wav", torch.randn(9000, generator=gen) * 0.1)
    need = min_audio_samples(asr[0].cfg.features)
    write_wav(folder / "short.wav", torch.randn(need - 1, generator=gen) * 0.1)  # one sample too few
    write_wav(folder / "just.wav", torch.randn(need, generator=gen) * 0.1)  # exactly enough
    soundfile.write(folder / "stereo.wav", np.zeros((4000, 2), dtype=np.float32), 16000)
    soundfile.write(folder / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    (folder / "junk.wav").write_bytes(b"RIFF not really a wav")
    return folder


def run(command, argv, capsys):
    try:
        result, code = command(argv), 0
    except SystemExit as exit_:
        result, code = None, exit_.code
    out, err = capsys.readouterr()
    return code, result, out, err


def test_every_file_gets_a_line_bad_ones_empty_and_reported(asr, recordings, capsys):
    model, ckpt = asr
    names = ["a.wav", "short.wav", "missing.wav", "b.wav", "stereo.wav", "empty.wav", "junk.wav", "just.wav"]
    paths = [str(recordings / n) for n in names]
    code, _, out, err = run(transcribe, ["--checkpoint", str(ckpt), *paths], capsys)
    assert code == EXIT_SKIPPED
    rows = [line.split("\t") for line in out.splitlines()]
    assert [r[0] for r in rows] == paths  # one line per file, in the order given
    from apps.speech.audio import read_audio

    for name, (_, text) in zip(names, rows):
        if name in ("a.wav", "b.wav", "just.wav"):  # the good files are transcribed as on their own
            assert text == model.transcribe([read_audio(recordings / name)])[0]
        else:
            assert text == ""
    assert any(text for n, (_, text) in zip(names, rows) if n in ("a.wav", "b.wav")), "the model should emit labels"
    warnings = err.splitlines()
    assert len(warnings) == 6 and all(w.startswith("warning: ") for w in warnings)
    for name, reason in [("short.wav", "shorter than"), ("missing.wav", "missing"), ("stereo.wav", "2 channels"),
                         ("empty.wav", "empty"), ("junk.wav", "unreadable")]:
        assert any(str(recordings / name) in w and reason in w for w in warnings), (name, warnings)
    assert warnings[-1] == ("warning: transcribe: skipped 5 of 8 records "
                            "(too short: file 2; missing: file 3; not mono: file 5; empty: file 6; unreadable: file 7)")


def test_all_good_files_exit_0_and_return_the_transcripts(asr, recordings, capsys):
    model, ckpt = asr
    code, result, out, err = run(transcribe, ["--checkpoint", str(ckpt), str(recordings / "a.wav")], capsys)
    assert code == 0 and err == "" and out == f"{recordings / 'a.wav'}\t{result[0]}\n"


def test_streaming_skips_short_audio_too(tmp_path, recordings, capsys):
    torch.manual_seed(0)
    model = tiny_recognizer(streaming=True)
    ckpt = model.save_checkpoint(tmp_path / "stream.ckpt")
    code, _, out, err = run(transcribe, ["--checkpoint", str(ckpt), "--stream", str(recordings / "short.wav"),
                                         str(recordings / "a.wav")], capsys)
    assert code == EXIT_SKIPPED and [line.split("\t")[0] for line in out.splitlines()] == \
        [str(recordings / "short.wav"), str(recordings / "a.wav")]
    assert "shorter than" in err and "too short: file 1" in err


def tts_checkpoint(path: Path) -> Path:
    from apps.speech.tts.model import TTSConfig
    from core.tokenizers import SpaceTokenizer

    tokenizer = SpaceTokenizer.train(["h ə l oʊ | w ɜː l d"])
    model = SpeechSynthesizer(TTSConfig(vocab_size=tokenizer.vocab_size, backbone=BackboneConfig(n_layers=1, **LAYER),
                                        reduction=2, prenet_dim=8, postnet_channels=8), max_steps=4)
    return model.save_checkpoint(path)


@pytest.mark.parametrize("case", ["missing", "truncated", "not a checkpoint", "wrong app"])
def test_bad_checkpoint_is_one_line_naming_the_file(asr, recordings, tmp_path, capsys, case):
    bad = tmp_path / "model.ckpt"
    if case == "truncated":
        bad.write_bytes(asr[1].read_bytes()[:20_000])
    elif case == "not a checkpoint":
        bad.write_text("hello\n")
    elif case == "wrong app":  # a TTS checkpoint given to the recognizer
        tts_checkpoint(bad)
    code, _, out, err = run(transcribe, ["--checkpoint", str(bad), str(recordings / "a.wav")], capsys)
    assert code == EXIT_ERROR and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and str(bad) in err, err


def test_synthesize_refuses_bad_arguments_in_one_line(tmp_path, capsys):
    from apps.speech.synthesize import main as synthesize

    out = tmp_path / "out.wav"
    out.write_bytes(b"keep me")
    code, _, _, err = run(synthesize, ["--checkpoint", str(tmp_path / "none.ckpt"), "Hello.", "-o", str(out)], capsys)
    assert code == EXIT_ERROR and err == f"error: {out} exists; choose another -o (nothing is overwritten)\n"
    assert out.read_bytes() == b"keep me"
    code, _, _, err = run(synthesize, ["--checkpoint", str(tmp_path / "none.ckpt"), "Hello.",
                                       "-o", str(tmp_path / "new.wav")], capsys)
    assert code == EXIT_ERROR and err.splitlines()[-1] == f"error: {tmp_path / 'none.ckpt'}: checkpoint not found"
    code, _, _, err = run(synthesize, ["--checkpoint", str(tmp_path / "none.ckpt"), "  ", "-o", str(tmp_path / "new.wav")],
                          capsys)
    assert code == EXIT_ERROR and err == "error: the text is blank: nothing to synthesize\n"
    code, _, _, err = run(synthesize, ["--checkpoint", str(tmp_path / "none.ckpt"), "Hello.", "-o", str(tmp_path / "new.wav"),
                                       "--reference", str(tmp_path / "gone.wav")], capsys)
    assert code == EXIT_ERROR and err == f"error: missing audio file: {tmp_path / 'gone.wav'}\n"
    assert not (tmp_path / "new.wav").exists()
