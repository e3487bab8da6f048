"""The speech command line (ASR and TTS configs) on a tiny espeak-ng corpus: every config runs, fit -> test -> transcribe from
the checkpoint, and the data module's handling of bad manifests."""
import json
import warnings
from pathlib import Path

import pytest
import torch

from apps.speech.audio import write_wav
from apps.speech.data import SpeechDataModule
from apps.speech.asr.task import SpeechRecognizer
from apps.speech.train import main
from core.data import DataWarning

CONFIGS = sorted(Path("apps/speech/configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from apps.speech.corpus import build_espeak_corpus

    out = tmp_path_factory.mktemp("espeak")
    try:
        build_espeak_corpus(out, n_sentences=40, jobs=1)
    except FileNotFoundError as err:  # espeak-ng or the SWORD Bible module not installed
        pytest.skip(str(err))
    return out


def small(corpus, tmp_path, task="asr"):
    model = ["--model.cmvn_batches", "1"] if task == "asr" else ["--model.max_steps", "30"]
    return ["--data.corpus_dir", str(corpus), "--data.train_limit", "8", "--data.eval_limit", "4",
            "--data.max_batch", "4", *model, "--trainer.default_root_dir", str(tmp_path),
            "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false"]


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_config_runs_one_step(config, corpus, tmp_path):
    main(["fit", "--config", str(config), "--trainer.fast_dev_run", "1", *small(corpus, tmp_path, config.stem[:3])])


def test_fit_test_and_transcribe_from_the_checkpoint(corpus, tmp_path, capsys):
    main(["fit", "--config", "apps/speech/configs/asr_tiny.yaml", *small(corpus, tmp_path)])
    ckpt = next(tmp_path.rglob("*.ckpt"))
    # the architecture comes from the checkpoint, runtime options (decoding) from the command line
    cli = main(["test", "--config", "apps/speech/configs/asr_tiny.yaml", "--ckpt_path", str(ckpt),
                "--model.arch.encoder.d_model", "64", "--model.decoding", "beam", *small(corpus, tmp_path)])
    assert cli.model.decoding == "beam" and cli.model.cfg.encoder.d_model == 32
    assert "test/wer" in capsys.readouterr().out
    model = SpeechRecognizer.from_checkpoint(ckpt)
    assert bool(model.cmvn_fitted) and not torch.allclose(model.model.cmvn.mean, torch.zeros(80))
    dm = SpeechDataModule(corpus_dir=str(corpus), eval_limit=2)
    example = dm.examples("test")[0]
    from apps.speech.audio import read_audio

    texts = model.transcribe([read_audio(example.utterance.audio)])
    assert len(texts) == 1 and isinstance(texts[0], str)
    assert set(texts[0]) <= set("abcdefghijklmnopqrstuvwxyz' ")


def test_bad_utterances_are_skipped_with_one_warning(tmp_path):
    tone = torch.sin(torch.arange(8000) * 0.1) * 0.3
    write_wav(tmp_path / "a.wav", tone)
    rows = [{"audio": "a.wav", "text": "Hello, world!", "duration": 0.5},
            {"audio": "missing.wav", "text": "gone", "duration": 0.5},
            {"audio": "a.wav", "text": "room 12", "duration": 0.5},
            "not json"]
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    dm = SpeechDataModule(train=str(manifest))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        examples = dm.examples("train")
    assert [e.target for e in examples] == ["hello world"]
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(messages) == 1 and "train.jsonl" in messages[0] and "skipped 3 of 4" in messages[0], messages

    manifest.write_text(json.dumps(rows[1]) + "\n")
    with pytest.raises(ValueError, match="train.jsonl: no usable records"):
        SpeechDataModule(train=str(manifest)).examples("train")


def test_missing_manifest_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", "apps/speech/configs/asr_tiny.yaml", "--data.init_args.train",
              str(tmp_path / "nothere.jsonl"), "--trainer.default_root_dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and err[-1] == f"error: file not found: {tmp_path / 'nothere.jsonl'}"
