"""The bundled espeak-ng corpus: a 6-sentence build in tmp_path must give valid 16 kHz mono
manifests, splits disjoint by text, and refuse to overwrite itself silently."""
import json
import shutil

import pytest

from apps.speech.audio import SAMPLE_RATE, audio_info
from apps.speech import corpus as corpus_module
from apps.speech.corpus import BIBLE_MODULES, build_espeak_corpus, pick_sentences, voice_for
from apps.speech.data import main
from apps.speech.manifests import normalize_transcript, read_jsonl_manifest, validate
from core.data import SPLITS, installed_module

pytestmark = [
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)"),
    pytest.mark.skipif(
        installed_module(BIBLE_MODULES) is None, reason="no English SWORD Bible (apt-get install sword-text-web)"
    ),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("espeak")
    return out, build_espeak_corpus(out, n_sentences=6, seed=3, jobs=2, overwrite=True)


def test_manifests_describe_16k_mono_audio(corpus):
    out, summary = corpus
    assert sum(summary["utterances"].values()) + summary["skipped"] == 6 and summary["skipped"] == 0
    texts = {}
    for split in SPLITS:
        utterances, report = read_jsonl_manifest(out / f"{split}.jsonl") if summary["utterances"][split] else ([], None)
        assert len(utterances) == summary["utterances"][split]
        if utterances:
            assert report.skipped == {}
            assert validate(utterances, report, max_seconds=30.0) == utterances  # durations match the files
        for u in utterances:
            rate, frames, channels = audio_info(u.audio)
            assert (rate, channels) == (SAMPLE_RATE, 1)
            assert abs(frames / rate - u.duration) < 0.01 and u.duration > 0.5
            assert 4 <= len(normalize_transcript(u.text).split()) <= 20
            assert u.speaker == voice_for(u.audio.stem, 3)["voice"]
        texts[split] = {normalize_transcript(u.text) for u in utterances}
    assert not (texts["train"] & texts["valid"] or texts["train"] & texts["test"] or texts["valid"] & texts["test"])
    row = json.loads((out / f"{next(s for s in SPLITS if texts[s])}.jsonl").read_text().splitlines()[0])
    assert set(row["voice"]) == {"voice", "rate", "pitch"}
    assert "synthetic speech from real text" in (out / "README.txt").read_text().lower()


def test_single_voice_corpus_has_the_same_sentences_and_split(corpus, tmp_path):
    out, summary = corpus
    single = build_espeak_corpus(tmp_path / "one", n_sentences=6, seed=3, jobs=2, voice="en-us")
    assert single["utterances"] == summary["utterances"]
    for split in SPLITS:
        if not summary["utterances"][split]:
            continue
        mixed, _ = read_jsonl_manifest(out / f"{split}.jsonl")
        one, _ = read_jsonl_manifest(tmp_path / "one" / f"{split}.jsonl")
        assert [u.text for u in one] == [u.text for u in mixed]
        assert {u.speaker for u in one} == {"en-us"}
    assert "one voice, en-us" in (tmp_path / "one" / "README.txt").read_text()


def test_choice_is_deterministic():
    verses = {
        "A.1.1": "one two three four", "A.1.2": "has 12 digits in it",
        "A.1.3": "too short", "A.1.4": "five six seven eight",
    }
    assert pick_sentences(verses, 5, 0, 4, 20) == pick_sentences(verses, 5, 0, 4, 20)
    assert sorted(ref for ref, _ in pick_sentences(verses, 5, 0, 4, 20)) == ["A.1.1", "A.1.4"]
    assert voice_for("Gen.1.1", 0) == voice_for("Gen.1.1", 0)


def test_refuses_to_overwrite(corpus):
    out, _ = corpus
    before = (out / "train.jsonl").read_text()
    with pytest.raises(FileExistsError, match="overwrite"):
        build_espeak_corpus(out, n_sentences=2)
    with pytest.raises(FileExistsError, match="--overwrite"):
        main(["espeak", "--out", str(out), "--n-sentences", "2"])
    assert (out / "train.jsonl").read_text() == before


def test_cli_builds_and_prints_a_summary(tmp_path, capsys):
    main(["espeak", "--out", str(tmp_path / "c"), "--n-sentences", "2", "--seed", "1", "--jobs", "1"])
    printed = capsys.readouterr().out
    assert "train" in printed and "hours" in printed and "0 skipped" in printed
    assert sum(len(read_jsonl_manifest(p)[0]) for p in (tmp_path / "c").glob("*.jsonl") if p.stat().st_size) == 2


def test_missing_tools_name_the_package(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setenv("PATH", str(tmp_path))
        with pytest.raises(FileNotFoundError, match="apt-get install espeak-ng"):
            build_espeak_corpus(tmp_path / "out")
    monkeypatch.setattr(corpus_module, "installed_module", lambda candidates: None)
    with pytest.raises(FileNotFoundError, match="apt-get install sword-text-web"):
        build_espeak_corpus(tmp_path / "out")


def test_espeak_failures_are_skipped_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_module, "VOICES", ("zzzvoice",))  # not a voice: espeak-ng exits 1
    summary = build_espeak_corpus(tmp_path / "out", n_sentences=2, jobs=1)
    assert summary["skipped"] == 2 and sum(summary["utterances"].values()) == 0
    assert all(not (tmp_path / "out" / f"{split}.jsonl").read_text() for split in SPLITS)
