"""The translation app end to end through its CLI: every config runs, a short fit learns,
checkpoints translate, predict writes files, and DDP (gloo, 2 processes) trains unchanged."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from apps.translation.task import TranslationModel
from apps.translation.train import main
from apps.translation.translate import main as translate_main

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = sorted((ROOT / "apps/translation/configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One data cache for the module: corpora and tokenizers are built once."""
    return str(tmp_path_factory.mktemp("cache"))


def sword_installed() -> bool:
    from apps.translation import corpora

    try:
        corpora.find_modules()
    except Exception:
        return False
    return True


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_runs_fast_dev_run(config, cache, tmp_path):
    if "bible" in config.name and not sword_installed():
        pytest.skip("SWORD modules not installed: apt-get install sword-text-sparv sword-text-web")
    cli = main(["fit", "--config", str(config), "--trainer.fast_dev_run", "1", "--data.train_limit", "300",
                "--data.cache_dir", cache, "--trainer.default_root_dir", str(tmp_path)])
    assert cli.trainer.state.finished
    assert cli.trainer.global_step == 1


def test_print_config_parses_every_config(capsys):
    for config in CONFIGS:
        with pytest.raises(SystemExit) as exit_:
            main(["fit", "--config", str(config), "--print_config"], run=True)
        assert exit_.value.code == 0
        assert "d_model" in capsys.readouterr().out


def tiny_args(cache, root, *extra):
    return ["--config", str(ROOT / "apps/translation/configs/tiny.yaml"), "--data.cache_dir", cache,
            "--trainer.default_root_dir", str(root), *extra]


def test_short_fit_lowers_loss_and_checkpoint_translates(cache, tmp_path):
    cli = main(tiny_args(cache, tmp_path, "--trainer.max_steps", "60", "--trainer.val_check_interval", "60"), run=False)
    before = cli.trainer.validate(cli.model, cli.datamodule, verbose=False)[0]["val/nll"]
    cli.trainer.fit(cli.model, cli.datamodule)
    after = cli.trainer.validate(cli.model, cli.datamodule, verbose=False)[0]
    assert after["val/nll"] < 0.8 * before, (before, after)
    assert after["val/per"] >= 0.0 and 0.0 <= after["val/wer"] <= 1.0  # PER counts insertions: it can exceed 1

    ckpt = cli.trainer.checkpoint_callback.last_model_path or cli.trainer.checkpoint_callback.best_model_path
    assert ckpt and Path(ckpt).exists()
    model = TranslationModel.from_checkpoint(ckpt)
    stored = torch.load(ckpt, weights_only=True)
    assert set(stored["tokenizers"]) == {"src", "tgt"}  # saved once, by the task
    assert "tokenizers" not in stored.get("TranslationDataModule", {})
    out = model.translate(["hello", "world"])
    assert len(out) == 2 and all(isinstance(h[0][0], str) for h in out)
    # every output symbol is a phoneme the target tokenizer knows
    known = {model.tgt_tokenizer.decode([i]) for i in range(4, model.tgt_tokenizer.vocab_size)}
    assert all(p in known for h in out for p in h[0][0].split())

    words = tmp_path / "words.txt"
    words.write_text("hello\n\nworld\n")
    result = tmp_path / "out.txt"
    translate_main(["--checkpoint", ckpt, "--input", str(words), "--output", str(result), "--beam", "3"])
    lines = result.read_text().split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[0] and lines[2]  # blank input -> blank output

    # decoding options given on the command line win over the checkpoint's hyperparameters
    test = main(["test", *tiny_args(cache, tmp_path), "--ckpt_path", ckpt, "--model.decoding.strategy", "beam",
                 "--model.decoding.beam_size", "3"])
    assert test.model.decoding.strategy == "beam" and test.model.decoding.beam_size == 3
    assert test.model.arch == model.arch

    pred = tmp_path / "pred.tsv"
    main(["predict", *tiny_args(cache, tmp_path), "--ckpt_path", ckpt, "--data.predict_path", str(words),
          "--trainer.callbacks+=apps.translation.task.WriteTranslations", "--trainer.callbacks.path", str(pred)])
    rows = pred.read_text().splitlines()
    assert [r.split("\t")[0] for r in rows] == ["hello", "", "world"]


@pytest.mark.timeout(600)
def test_ddp_two_cpu_processes(cache, tmp_path):
    """Lightning's DDP (gloo) launches a second process that re-runs this command line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "apps.translation.train", "fit", *tiny_args(cache, tmp_path),
           "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
           "--trainer.max_steps", "4", "--trainer.val_check_interval", "4"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpts = list(tmp_path.rglob("*.ckpt"))
    assert ckpts, proc.stderr[-2000:]
    ckpt = TranslationModel.from_checkpoint(ckpts[0])
    assert ckpt.translate(["data"])[0][0][0] is not None


def test_export_cli_parity(cache, tmp_path):
    """Train a few steps, export with the CLI (which fails unless onnxruntime == PyTorch), translate from ONNX."""
    from apps.translation.export import main as export_main

    cli = main(["fit", *tiny_args(cache, tmp_path, "--trainer.max_steps", "20", "--trainer.val_check_interval", "20")])
    ckpt = cli.trainer.checkpoint_callback.last_model_path or cli.trainer.checkpoint_callback.best_model_path
    out = tmp_path / "onnx"
    export_main(["--checkpoint", ckpt, "--out", str(out)])  # raises SystemExit(1) on any mismatch
    assert (out / "encoder.onnx").exists() and (out / "decoder.onnx").exists() and (out / "pytorch/model.safetensors").exists()
    with pytest.raises(SystemExit):  # a second export never overwrites the first
        export_main(["--checkpoint", ckpt, "--out", str(out)])
    words = tmp_path / "w.txt"
    words.write_text("cat\ndog\n")
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    translate_main(["--onnx", str(out), "--input", str(words), "--output", str(a), "--beam", "2"])
    translate_main(["--checkpoint", ckpt, "--input", str(words), "--output", str(b), "--beam", "2"])
    assert a.read_text() == b.read_text()


def test_attention_plot(cache, tmp_path):
    from apps.translation.plot import cross_attention, main as plot_main

    cli = main(["fit", *tiny_args(cache, tmp_path, "--trainer.max_steps", "5", "--trainer.val_check_interval", "5")])
    ckpt = cli.trainer.checkpoint_callback.last_model_path or cli.trainer.checkpoint_callback.best_model_path
    model = TranslationModel.from_checkpoint(ckpt)
    src, out, weights = cross_attention(model, "seqlab")
    assert src[:6] == list("seqlab") and out[-1] == "</s>"
    assert weights.shape == (1, len(out), len(src))  # tiny.yaml: one decoder layer
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, len(out)))
    png = tmp_path / "att.png"
    plot_main(["--checkpoint", ckpt, "--text", "seqlab", "-o", str(png)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_environment_overrides_and_bf16(cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PL_FIT__TRAINER__MAX_EPOCHS", "7")  # (options set in the --config file win over env)
    with pytest.raises(SystemExit):
        main(["fit", *tiny_args(cache, tmp_path), "--print_config"])
    assert "max_epochs: 7" in capsys.readouterr().out
    monkeypatch.delenv("PL_FIT__TRAINER__MAX_EPOCHS")
    cli = main(["fit", *tiny_args(cache, tmp_path, "--trainer.fast_dev_run", "2", "--trainer.precision", "bf16-mixed")])
    assert cli.trainer.global_step == 2 and cli.trainer.precision == "bf16-mixed"


@pytest.mark.parametrize("mixer", ["retnet", "[retnet,attention]"])
def test_decoder_mixer_is_one_config_line(mixer, cache, tmp_path):
    cli = main(["fit", *tiny_args(cache, tmp_path, "--trainer.fast_dev_run", "2", "--model.arch.decoder.mixer", mixer,
                                  "--model.arch.decoder.n_layers", "2")])
    assert cli.trainer.global_step == 2
    names = {type(layer.mixer).__name__ for layer in cli.model.model.decoder.stack.layers}
    assert "MultiScaleRetention" in names


def test_missing_training_file_is_one_line(cache, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", *tiny_args(cache, tmp_path), "--data.corpus", "files", "--data.train_path",
              str(tmp_path / "nothere.tsv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and err[-1] == f"error: file not found: {tmp_path / 'nothere.tsv'}"
