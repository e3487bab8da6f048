"""OMR model and task: cached decoding equals the full forward, padding never changes an image's
transcription, the data module validates manifests, every config trains through the CLI."""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from apps.vision.omr.data import OMRDataModule
from apps.vision.omr.model import OMRConfig, OMRModel
from apps.vision.omr.task import OMRTask
from apps.vision.train import main
from core.data import DataWarning
from core.errors import UserError
from core.models import BackboneConfig

CONFIGS = sorted(Path("apps/vision/configs").glob("omr*.yaml"))
LAYER = dict(d_model=32, n_heads=2, dropout=0.0)


def tiny(trunk="patch", mixer="attention", encoder=None) -> OMRModel:
    torch.manual_seed(0)
    cfg = OMRConfig(vocab_size=40, trunk=trunk, patch=8, encoder=encoder,
                    decoder=BackboneConfig(n_layers=2, mixer=mixer, position="rope" if mixer == "attention" else "none",
                                           **LAYER))
    return OMRModel(cfg).eval()


@pytest.mark.parametrize("trunk,mixer", [("patch", "attention"), ("patch", "gla"), ("resnet", "attention")])
def test_cached_decoding_equals_full_forward(trunk, mixer):
    model = tiny(trunk, mixer)
    images, sizes = torch.rand(2, 1, 48, 64), torch.tensor([[48, 64], [32, 40]])
    tgt = torch.randint(4, 40, (2, 6))
    tgt[:, 0] = model.bos_id
    with torch.no_grad():
        full = model(images, sizes, tgt)
        state = model.start(images, sizes)
        steps = []
        for t in range(tgt.shape[1]):
            logits, state = model.step(tgt[:, t:t + 1], state)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-4, atol=1e-4)


def test_padding_never_changes_an_image():
    """The patch trunk is local, and padded grid cells are masked out of the cross-attention."""
    model = tiny("patch", encoder=BackboneConfig(n_layers=1, **LAYER))
    small = torch.rand(1, 1, 24, 40)
    batch = torch.zeros(2, 1, 48, 64)
    batch[0, :, :24, :40] = small[0]
    batch[1] = torch.rand(1, 48, 64)
    tgt = torch.randint(4, 40, (1, 5))
    with torch.no_grad():
        alone = model(small, torch.tensor([[24, 40]]), tgt)
        padded = model(batch, torch.tensor([[24, 40], [48, 64]]), tgt.expand(2, -1))[:1]
    torch.testing.assert_close(padded, alone, rtol=1e-5, atol=1e-5)


def test_config_errors_are_one_line():
    with pytest.raises(UserError, match="trunk="):
        OMRConfig(trunk="vgg")
    with pytest.raises(UserError, match="additive 2-D scheme"):
        OMRConfig(position="rope_2d")


def write_manifest(tmp_path, rows) -> Path:
    Image.fromarray(np.full((20, 30), 255, np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_data_module_skips_bad_records_and_names_the_file(tmp_path):
    kern = "**kern\n4c\n*-\n"
    rows = [{"image": "ok.png", "kern": kern}, {"image": "ok.png", "transcript": kern},
            {"image": "missing.png", "kern": kern}, {"image": "broken.png", "kern": kern},
            {"image": "ok.png", "kern": "4c"}, {"image": "ok.png"}, "not json",
            {"image": "ok.png", "kern": "**kern\t**kern\n4c\n*-\t*-\n"},  # a line with one field for two spines
            {"image": "ok.png", "kern": "**kern\n*^\n4c\t4e\n*-\n"}]  # a split spine never joined
    manifest = write_manifest(tmp_path, rows)
    before = manifest.read_bytes()
    dm = OMRDataModule(train=str(manifest))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        examples = dm.examples("train")
    assert len(examples) == 2 and examples[0].ids[0] == 1 and examples[0].ids[-1] == 2  # BOS ... EOS
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(messages) == 1 and "train.jsonl" in messages[0] and "skipped 7 of 9" in messages[0]
    for reason in ("missing image", "unreadable image", "not **kern", "missing key", "invalid JSON", "broken spines"):
        assert reason in messages[0]
    assert manifest.read_bytes() == before  # inputs are never modified
    bad = write_manifest(tmp_path, [{"image": "missing.png", "kern": kern}])
    with pytest.raises(UserError, match="train.jsonl: no usable records"):
        OMRDataModule(train=str(bad)).examples("train")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_runs_fast_dev_run(config, corpus, tmp_path):
    cli = main(["fit", "--config", str(config), "--trainer.fast_dev_run", "1", "--data.init_args.corpus_dir",
                str(corpus), "--data.init_args.max_batch", "2", "--trainer.default_root_dir", str(tmp_path)])
    assert cli.trainer.state.finished and cli.trainer.global_step == 1


def test_fit_checkpoint_transcribes(omr_run):
    cli = omr_run
    logged = cli.trainer.logged_metrics
    assert {"val/ser", "val/cer", "val/ler", "val/engravable"} <= set(logged)
    assert 0.0 <= float(logged["val/engravable"]) <= 100.0
    ckpt = cli.trainer.checkpoint_callback.best_model_path
    task = OMRTask.from_checkpoint(ckpt)
    batch = next(iter(cli.datamodule.val_dataloader()))
    texts = task.transcribe(batch["images"], batch["sizes"])
    assert len(texts) == len(batch["kern"]) and all(isinstance(t, str) and t.endswith("\n") for t in texts)
    assert task.tokenizer.vocab_size == cli.datamodule.vocab_size


def test_augmentations_distort_training_images_only(corpus):
    from apps.vision.augment import Augment, AugmentConfig

    torch.manual_seed(0)
    clean = torch.zeros(1, 60, 200)
    clean[:, 20:22, :] = 1.0  # a staff line
    out = Augment(AugmentConfig(p=1.0))(clean)
    assert out.shape == clean.shape and 0.0 <= out.min() and out.max() <= 1.0
    assert (out - clean).abs().mean() > 0.01
    plain = Augment(AugmentConfig(p=0.0))(clean)
    torch.testing.assert_close(plain, clean)
    dm = OMRDataModule(corpus_dir=str(corpus), augment=AugmentConfig(p=1.0), max_batch=2)
    train, valid = next(iter(dm.train_dataloader())), next(iter(dm.val_dataloader()))
    ref = OMRDataModule(corpus_dir=str(corpus), max_batch=2)
    torch.testing.assert_close(next(iter(ref.val_dataloader()))["images"], valid["images"])  # evaluation: clean
    from apps.vision.batching import to_ink
    from apps.vision.omr.data import read_image

    first = to_ink(read_image(Path(train["paths"][0])), dm.hparams.image_scale)
    seen = train["images"][0, :, : first.shape[1], : first.shape[2]]
    assert (seen - first).abs().mean() > 0.01  # training images are distorted


def test_transcribe_command_keeps_order_and_reports_bad_images(corpus, omr_checkpoint, tmp_path, capsys):
    from apps.vision.transcribe import main as transcribe

    ckpt = omr_checkpoint
    good = sorted((corpus / "images").glob("*.png"))[:2]
    (tmp_path / "broken.png").write_bytes(b"not a png")
    inputs = [good[0], tmp_path / "missing.png", tmp_path / "broken.png", good[1]]
    capsys.readouterr()
    status = transcribe(["--checkpoint", ckpt, *map(str, inputs), "--render", str(tmp_path / "render"),
                         "--musicxml", str(tmp_path / "xml"), "--output", str(tmp_path / "out.krn")])
    assert status == 1  # something was skipped
    out = (tmp_path / "out.krn").read_text()
    assert [line for line in out.splitlines() if line.startswith("!!!image:")] == [f"!!!image: {p}" for p in inputs]
    err = capsys.readouterr().err
    assert "missing.png" in err and "broken.png: unreadable image" in err
    rendered = np.asarray(Image.open(tmp_path / "render" / f"{good[0].stem}.png"))
    assert rendered.shape[0] > np.asarray(Image.open(good[0])).shape[0]  # the input, and more below it
    with pytest.raises(SystemExit) as exit_:
        transcribe(["--checkpoint", str(tmp_path / "none.ckpt"), str(good[0])])
    assert exit_.value.code == 2 and "none.ckpt" in capsys.readouterr().err


def test_predict_writes_transcriptions_in_manifest_order(corpus, omr_checkpoint, tmp_path):
    out = tmp_path / "pred.jsonl"
    main(["predict", "--config", "apps/vision/configs/omr_tiny.yaml", "--ckpt_path", omr_checkpoint,
          "--data.init_args.corpus_dir", str(corpus), "--data.init_args.train", str(corpus / "train.jsonl"),
          "--data.init_args.test", str(corpus / "valid.jsonl"),
          "--data.init_args.eval_limit", "null", "--trainer.default_root_dir", str(tmp_path),
          "--trainer.callbacks+=apps.vision.writers.WriteTranscriptions", "--trainer.callbacks.path", str(out)])
    manifest = [json.loads(line) for line in (corpus / "valid.jsonl").read_text().splitlines()]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(r["image"]).name for r in rows] == [Path(m["image"]).name for m in manifest]
    assert all(r["kern"].endswith("\n") for r in rows)
