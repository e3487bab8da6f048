"""Speech manifests and audio I/O on tiny fixture corpora built in tmp_path: every reader, every
bad-input kind skipped and counted with a DataWarning that names the file and line."""
import json
import re

import numpy as np
import pytest
import soundfile
import torch

from apps.speech.audio import AudioError, audio_info, read_audio, write_wav
from apps.speech.features import FeatureConfig, min_audio_samples
from apps.speech.manifests import (
    MIN_SAMPLES, normalize_transcript, read_corpus, read_jsonl_manifest, read_librispeech, read_ljspeech, validate,
)
from core.data import DataWarning


def sine(path, seconds=0.5, rate=16000, channels=1, **kwargs):
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t)
    soundfile.write(str(path), np.stack([wave] * channels, axis=1) if channels > 1 else wave, rate, **kwargs)
    return path


def test_read_audio_resamples_and_rejects_bad_files(tmp_path):
    audio = read_audio(sine(tmp_path / "a8k.wav", seconds=0.5, rate=8000))
    assert audio.dtype == torch.float32 and audio.shape == (8000,)
    assert 0.25 < audio.abs().max() < 0.35  # a 440 Hz tone survives resampling
    assert audio_info(tmp_path / "a8k.wav") == (8000, 4000, 1)
    with pytest.raises(AudioError, match="2 channels, expected mono"):
        read_audio(sine(tmp_path / "stereo.wav", channels=2))
    with pytest.raises(AudioError, match="missing"):
        read_audio(tmp_path / "nope.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(AudioError, match="unreadable"):
        read_audio(tmp_path / "junk.wav")
    soundfile.write(str(tmp_path / "empty.wav"), np.zeros(0), 16000)
    with pytest.raises(AudioError, match="empty"):
        read_audio(tmp_path / "empty.wav")
    write_wav(tmp_path / "silent.wav", np.zeros(160, dtype=np.float32), 16000)  # silence is fine
    assert read_audio(tmp_path / "silent.wav").abs().sum() == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def write_manifest(path, lines):
    path.write_text("".join(line if isinstance(line, str) else json.dumps(line) for line in lines))
    return path


def test_jsonl_manifest_skips_and_validates(tmp_path):
    sine(tmp_path / "ok.wav", 0.5)
    sine(tmp_path / "long.wav", 2.0)
    sine(tmp_path / "stereo.wav", 0.5, channels=2)
    soundfile.write(str(tmp_path / "empty.wav"), np.zeros(0), 16000)
    (tmp_path / "junk.wav").write_bytes(b"garbage")
    good = {"audio": "ok.wav", "text": "Hello, world", "duration": 0.5, "speaker": "s1"}
    manifest = write_manifest(tmp_path / "m.jsonl", [json.dumps(row) + "\n" for row in [
        good,                                                        # 1 kept
        {"audio": "ok.wav", "duration": 0.5},                        # 2 missing key
        {"audio": "ok.wav", "text": 5, "duration": 0.5},             # 3 not a string
        {"audio": "ok.wav", "text": "  ", "duration": 0.5},          # 4 empty text
        {"audio": "ok.wav", "text": "x", "duration": "long"},        # 5 bad duration
        {"audio": "missing.wav", "text": "hi", "duration": 0.5},     # 6 unreadable audio
        {"audio": "junk.wav", "text": "hi", "duration": 0.5},        # 7 unreadable audio
        {"audio": "empty.wav", "text": "hi", "duration": 0.0},       # 8 empty audio
        {"audio": "stereo.wav", "text": "hi", "duration": 0.5},      # 9 2 channels
        {"audio": "ok.wav", "text": "hi", "duration": 3.0},          # 10 duration mismatch
        {"audio": "long.wav", "text": "hi", "duration": 2.0},        # 11 longer than 1 s
        {"audio": "ok.wav", "text": "naïve ok!", "duration": 0.5},   # 12 unknown characters
    ]] + ["{not json\n"])                                             # 13 invalid JSON
    utterances, report = read_jsonl_manifest(manifest)
    assert report.total == 13
    assert {r: lines for r, lines in report.skipped.items()} == {
        "missing key": [2], "not a string": [3], "empty text": [4], "bad duration": [5], "invalid JSON": [13],
    }
    assert utterances[0].audio == tmp_path / "ok.wav" and utterances[0].speaker == "s1" and utterances[0].line == 1
    with pytest.warns(DataWarning) as caught:
        kept = validate(utterances, report, max_seconds=1.0, alphabet=set("abcdefghijklmnopqrstuvwxyz ,"))
    assert [u.line for u in kept] == [1]
    assert report.skipped["unreadable audio"] == [6, 7]
    assert report.skipped["empty audio"] == [8]
    assert report.skipped["2 channels"] == [9]
    assert report.skipped["duration mismatch"] == [10]
    assert report.skipped["longer than 1 s"] == [11]
    assert report.skipped["unknown characters '!', 'ï'"] == [12]
    assert len(caught) == 1
    message = str(caught[0].message)
    assert str(manifest) in message and "skipped 12 of 13" in message
    assert "duration mismatch: line 10" in message


def test_nothing_left_raises_naming_the_file(tmp_path):
    row = {"audio": "gone.wav", "text": "hi", "duration": 1.0}
    manifest = write_manifest(tmp_path / "bad.jsonl", [json.dumps(row) + "\n"])
    utterances, report = read_jsonl_manifest(manifest)
    with pytest.warns(DataWarning), pytest.raises(ValueError, match=re.escape(str(manifest)) + ".*no usable records"):
        validate(utterances, report)


def test_ljspeech_prefers_normalized_text_and_skips_bad_lines(tmp_path):
    (tmp_path / "wavs").mkdir()
    sine(tmp_path / "wavs" / "LJ001.wav", 0.25, rate=22050)
    sine(tmp_path / "wavs" / "LJ002.wav", 0.5, rate=22050)
    (tmp_path / "metadata.csv").write_text(
        "LJ001|Dr. Smith, 1st|Doctor Smith, first\n"
        "LJ002|Plain text only|\n"
        "LJ003|no audio for this one|\n"
        "LJ004 missing separators\n"
        "LJ002||\n"
        "LJ002|a|b|c\n"
    )
    utterances, report = read_corpus(tmp_path)
    assert [(u.audio.name, u.text, u.line) for u in utterances] == [
        ("LJ001.wav", "Doctor Smith, first", 1), ("LJ002.wav", "Plain text only", 2),
    ]
    assert utterances[0].duration == pytest.approx(0.25, abs=1e-3)
    assert report.skipped == {"unreadable audio": [3], "missing column": [4], "empty text": [5], "extra column": [6]}
    assert read_ljspeech(tmp_path)[0] == utterances
    with pytest.warns(DataWarning, match="metadata.csv.*line 3"):
        assert len(validate(utterances, report)) == 2


def test_librispeech_tree(tmp_path):
    chapter = tmp_path / "19" / "198"
    chapter.mkdir(parents=True)
    sine(chapter / "19-198-0000.flac", 0.5, format="FLAC")
    sine(chapter / "19-198-0001.flac", 0.3, format="FLAC")
    (chapter / "19-198.trans.txt").write_text(
        "19-198-0000 NORTHANGER ABBEY\n19-198-0001 WAS WRITTEN\n"
        "19-198-0002 HAS NO AUDIO\n19-198-0003\n"
    )
    utterances, report = read_corpus(tmp_path)
    assert [(u.text, u.speaker, u.line) for u in utterances] == [
        ("NORTHANGER ABBEY", "19", 1), ("WAS WRITTEN", "19", 2),
    ]
    assert utterances[1].duration == pytest.approx(0.3, abs=1e-3)
    assert report.skipped == {"unreadable audio in 19-198.trans.txt": [3], "empty text in 19-198.trans.txt": [4]}
    assert read_librispeech(tmp_path)[0] == utterances


def test_read_corpus_rejects_unknown_layouts(tmp_path):
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_corpus(tmp_path)
    with pytest.raises(ValueError, match="unknown speech corpus format"):
        read_corpus(tmp_path, format="tsv")


def test_normalize_transcript():
    text = "Don’t  STOP—the well-known café, 12 times!"
    assert normalize_transcript(text) == "don't stop the well known cafe times"
    text = "‘Quoted,’ he said: ‘the disciples’ feet’."
    assert normalize_transcript(text) == "quoted he said the disciples' feet"


def test_nemo_manifest_keys_and_named_missing_keys(tmp_path):
    sine(tmp_path / "ok.wav", 0.5)
    manifest = write_manifest(tmp_path / "nemo.jsonl", [json.dumps(row) + "\n" for row in [
        {"audio_filepath": "ok.wav", "text": "hello", "duration": 0.5},  # NeMo's keys
        {"audio": "ok.wav", "text": "hi", "duration": 0.5, "speaker": "s2"},  # ours
        {"audio_path": "ok.wav", "text": "hi", "duration": 0.5},  # neither
    ]])
    utterances, report = read_jsonl_manifest(manifest)
    assert [(u.audio, u.text, u.speaker) for u in utterances] == [(tmp_path / "ok.wav", "hello", ""),
                                                                   (tmp_path / "ok.wav", "hi", "s2")]
    assert report.skipped == {"missing key": [3]}
    assert 'missing key (expected keys "audio" (or "audio_filepath"), "text", "duration"): line 3' in report.summary()


def test_audio_shorter_than_the_front_end_needs_is_skipped(tmp_path):
    """The default front end needs 1,472 samples (92 ms at 16 kHz) for one encoder frame."""
    assert MIN_SAMPLES == min_audio_samples(FeatureConfig()) == 1472
    write_wav(tmp_path / "short.wav", np.full(MIN_SAMPLES - 1, 0.1, dtype=np.float32), 16000)
    write_wav(tmp_path / "enough.wav", np.full(MIN_SAMPLES, 0.1, dtype=np.float32), 16000)
    write_wav(tmp_path / "short8k.wav", np.full(MIN_SAMPLES // 2 - 1, 0.1, dtype=np.float32), 8000)  # resampled
    manifest = write_manifest(tmp_path / "m.jsonl", [json.dumps({"audio": name, "text": "hi", "duration": n / rate}) + "\n"
                                                     for name, n, rate in [("short.wav", MIN_SAMPLES - 1, 16000),
                                                                           ("enough.wav", MIN_SAMPLES, 16000),
                                                                           ("short8k.wav", MIN_SAMPLES // 2 - 1, 8000)]])
    utterances, report = read_jsonl_manifest(manifest)
    with pytest.warns(DataWarning, match=r"shorter than 92 ms: lines 1, 3"):
        kept = validate(utterances, report)
    assert [u.audio.name for u in kept] == ["enough.wav"]
    assert validate(utterances[:1], read_jsonl_manifest(manifest)[1], min_samples=0)  # another front end's limit
