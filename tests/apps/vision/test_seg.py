"""Segmentation: masks from the engraved SVG line up with the OMR image, the data module skips and
counts every kind of bad file, SETR's padding never changes an image's logits, every seg config
trains through the CLI, ONNX agrees with PyTorch, and the segment command skips bad images."""
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from apps.vision.seg.data import SegDataModule
from apps.vision.seg.masks import CLASS_ID, CLASSES, INK_BELOW, engrave_with_mask
from apps.vision.seg.model import SETR, SETRConfig
from apps.vision.seg.task import SegTask
from apps.vision.train import main
from core.data import DataWarning
from core.errors import DataError, UserError
from core.models import BackboneConfig

CONFIGS = sorted(Path("apps/vision/configs").glob("seg*.yaml"))
LAYER = {"d_model": 32, "n_heads": 2, "dropout": 0.0, "position": "none"}


@pytest.fixture(scope="module")
def engraved():
    """(kern, svg) of the first systems of the first chorale of the music21 corpus."""
    from apps.vision.omr.corpus import corpus_scores
    from apps.vision.omr.engrave import engrave_svg
    from apps.vision.omr.kern import excerpts, read_kern

    kerns = excerpts(read_kern(corpus_scores()[0]), 2)[:3]
    return [(k, engrave_svg(k)) for k in kerns]


def test_masks_align_with_the_omr_image(engraved):
    from apps.vision.omr.engrave import engrave

    kern, svg = engraved[0]
    image, mask = engrave_with_mask(svg)
    np.testing.assert_array_equal(image, engrave(kern))  # the very image the OMR corpus holds
    assert mask.shape == image.shape and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask > 0, image < INK_BELOW)  # labelled exactly where there is ink
    present = {CLASSES[i] for i in np.unique(mask)}
    assert {"background", "staff_line", "notehead", "stem", "clef", "barline", "time_signature"} <= present
    heads = mask == CLASS_ID["notehead"]
    assert image[heads].mean() < 90  # noteheads are solid ink
    lines = mask == CLASS_ID["staff_line"]
    assert (lines.sum(1) > 0.5 * image.shape[1]).sum() >= 10  # staff lines run across the system


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)


def write_bad_corpus(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    gray, labels = np.full((12, 20), 255, np.uint8), np.zeros((12, 20), np.uint8)
    labels[2:5, 3:9] = 2
    labels[0, 0] = 255  # ignore_index is never out of range
    for stem in ("ok1", "ok2", "nomask", "size", "labels", "maskmode", "imgmode"):
        _png(root / "images" / f"{stem}.png", gray)
    _png(root / "masks" / "ok1.png", labels)
    _png(root / "masks" / "ok2.png", labels)
    _png(root / "masks" / "size.png", labels[:10])
    bad = labels.copy()
    bad[1, 1] = 7
    _png(root / "masks" / "labels.png", bad)
    _png(root / "masks" / "maskmode.png", np.stack([labels] * 3, -1))  # a colour mask
    _png(root / "images" / "imgmode.png", np.full((12, 20), 40000, np.uint16))  # 16-bit
    _png(root / "masks" / "imgmode.png", labels)
    (root / "images" / "empty.png").write_bytes(b"")
    _png(root / "masks" / "empty.png", labels)
    _png(root / "images" / "cut.png", np.random.default_rng(0).integers(0, 255, (12, 20), dtype=np.uint8))
    data = (root / "images" / "cut.png").read_bytes()
    (root / "images" / "cut.png").write_bytes(data[: len(data) // 2])  # a download cut short
    _png(root / "masks" / "cut.png", labels)
    stems = ["ok1", "ok2", "missing", "nomask", "size", "labels", "maskmode", "imgmode", "empty", "cut"]
    (root / "train.txt").write_text("\n".join(stems) + "\n")
    return root


def test_data_module_skips_bad_files_and_names_them(tmp_path):
    root = write_bad_corpus(tmp_path / "corpus")
    before = {p: hashlib.md5(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}
    dm = SegDataModule(corpus_dir=str(root), num_classes=3, image_scale=1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = dm.samples("train")
    assert [s.image.stem for s in samples] == ["ok1", "ok2"]
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(messages) == 1 and "train.txt" in messages[0] and "skipped 8 of 10" in messages[0]
    for reason in ("missing image", "missing mask", "mask size differs from image", "labels out of range",
                   "wrong mask mode", "wrong image mode", "empty file", "truncated image"):
        assert reason in messages[0], reason
    assert {p: hashlib.md5(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()} == before
    batch = next(iter(dm.train_dataloader()))
    assert batch["images"].shape == (2, 1, 12, 20) and batch["masks"].shape == (2, 12, 20)
    assert int(batch["masks"][0, 0, 0]) == 255 and int(batch["masks"][0, 3, 4]) == 2
    (root / "train.txt").write_text("missing\nsize\n")
    with pytest.raises(DataError, match="train.txt: no usable images"), pytest.warns(DataWarning):
        SegDataModule(corpus_dir=str(root), num_classes=3).samples("train")


def test_batches_pad_with_ignore_index_and_crop(tmp_path):
    root = tmp_path / "c"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem, (h, w) in {"a": (10, 30), "b": (20, 16)}.items():
        _png(root / "images" / f"{stem}.png", np.full((h, w), 100, np.uint8))
        _png(root / "masks" / f"{stem}.png", np.ones((h, w), np.uint8))
    (root / "train.txt").write_text("a\nb\n")
    dm = SegDataModule(corpus_dir=str(root), image_scale=1.0, ignore_index=9)
    assert dm.num_classes == 2  # the largest training label + 1
    batch = next(iter(dm.train_dataloader()))
    assert batch["masks"].shape == (2, 20, 30) and set(batch["masks"].unique().tolist()) == {1, 9}
    ink = batch["images"][:, 0]
    assert float(ink[batch["masks"] == 9].abs().max()) == 0.0 and float(ink[batch["masks"] == 1].min()) > 0.5
    crops = next(iter(SegDataModule(corpus_dir=str(root), image_scale=1.0, crop=12).train_dataloader()))
    assert crops["images"].shape == (2, 1, 12, 12)
    with pytest.raises(UserError, match="image_scale"):
        SegDataModule(image_scale=0)


def tiny(mixer="attention", classes=5, layers=2) -> SETR:
    torch.manual_seed(0)
    return SETR(SETRConfig(num_classes=classes, patch=8, decoder_channels=8,
                           encoder=BackboneConfig(n_layers=layers, mixer=mixer, **LAYER))).eval()


@pytest.mark.parametrize("mixer", ["attention", "gla", "mamba"])
def test_padding_never_changes_an_image(mixer):
    """Padded cells are masked in the encoder, packed after the real ones, and zeroed at every
    decoder stage; upsampling is nearest, so nothing crosses from padding into the image."""
    model = tiny(mixer)
    small = torch.rand(1, 1, 21, 37)
    batch = torch.zeros(2, 1, 48, 64)
    batch[0, :, :21, :37] = small[0]
    batch[1] = torch.rand(1, 48, 64)
    with torch.no_grad():
        alone = model(small)
        padded = model(batch, torch.tensor([[21, 37], [48, 64]]))[:1, :, :21, :37]
    assert alone.shape == (1, 5, 21, 37)
    torch.testing.assert_close(padded, alone, rtol=1e-5, atol=1e-5)


def test_config_errors_are_one_line():
    with pytest.raises(UserError, match="power of two"):
        SETRConfig(patch=12)
    with pytest.raises(UserError, match="additive 2-D scheme"):
        SETRConfig(position="rope_2d")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, engraved):
    """Three engraved systems with their masks, as the bundled builder writes them."""
    from apps.vision.seg.corpus import BUILD_FILE

    root = tmp_path_factory.mktemp("seg") / "corpus"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for n, (_, svg) in enumerate(engraved):
        image, mask = engrave_with_mask(svg)
        _png(root / "images" / f"s{n}.png", image)
        _png(root / "masks" / f"s{n}.png", mask)
    (root / "train.txt").write_text("s0\ns1\ns2\n")
    (root / "valid.txt").write_text("s1\n")
    (root / "test.txt").write_text("s2\n")
    (root / BUILD_FILE).write_text(json.dumps({"classes": list(CLASSES)}))
    return root


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_runs_fast_dev_run(config, corpus, tmp_path):
    cli = main(["fit", "--config", str(config), "--trainer.fast_dev_run", "1", "--data.init_args.corpus_dir",
                str(corpus), "--data.init_args.max_batch", "2", "--trainer.default_root_dir", str(tmp_path)])
    assert cli.trainer.state.finished and cli.trainer.global_step == 1
    assert cli.model.arch.num_classes == len(CLASSES) and cli.model.classes == list(CLASSES)  # linked
    assert {"val/miou", "val/pixel_acc"} <= set(cli.trainer.logged_metrics)


def test_onnx_matches_pytorch(tmp_path):
    from apps.vision.seg.onnx import OnnxSegmenter, export_and_check, parity

    model = tiny(classes=4, layers=1)
    pages = [np.random.default_rng(n).integers(0, 256, (30 + 7 * n, 41 - 5 * n), dtype=np.uint8) for n in range(2)]
    paths, check = export_and_check(model, tmp_path / "onnx", pages, image_scale=0.5)  # the export command's path
    assert paths["segmenter"].is_file() and check["ok"] == 1.0 and check["max_abs_diff"] < 1e-4
    runner = OnnxSegmenter(tmp_path / "onnx")
    assert runner.image_scale == 0.5 and runner.classes == ["0", "1", "2", "3"]
    images = torch.rand(3, 1, 45, 70)  # no side a whole number of patches, other sizes than the export's
    sizes = torch.tensor([[45, 70], [30, 33], [17, 70]])
    for row, (h, w) in zip(images, sizes.tolist()):
        row[:, h:], row[:, :, w:] = 0, 0
    check = parity(model, runner, images, sizes)
    assert check["max_abs_diff"] < 1e-4 and check["label_mismatch"] < 1e-3


def test_segment_skips_a_bad_image_and_writes_the_rest(corpus, tmp_path, capsys):
    from apps.vision.segment import main as segment

    task = SegTask(arch=SETRConfig(num_classes=len(CLASSES), patch=8, decoder_channels=8,
                                   encoder=BackboneConfig(n_layers=1, **LAYER)), classes=list(CLASSES))
    ckpt = task.save_checkpoint(tmp_path / "seg.ckpt")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    good = corpus / "images" / "s0.png"
    status = segment([str(bad), str(good), "-o", str(tmp_path / "masks"), "--ckpt", str(ckpt),
                      "--compare", str(tmp_path / "views"), "--mask", str(corpus / "masks" / "s0.png"),
                      "--mask", str(corpus / "masks" / "s0.png")])
    assert status == 1 and "bad.png: unreadable image; skipped" in capsys.readouterr().err
    with Image.open(tmp_path / "masks" / "s0.png") as out, Image.open(good) as src:
        assert out.mode == "P" and out.size == src.size and np.asarray(out).max() < len(CLASSES)
    with Image.open(tmp_path / "views" / "s0.png") as view, Image.open(good) as src:
        assert view.width > 3 * src.width and view.height > src.height  # input | prediction | truth, legend
    assert not (tmp_path / "masks" / "bad.png").exists()
    with pytest.raises(SystemExit) as exit_:  # outputs are not overwritten unless asked
        segment([str(good), "-o", str(tmp_path / "masks" / "s0.png"), "--ckpt", str(ckpt)])
    assert exit_.value.code == 2


def test_data_command_builds_the_bundled_layout(tmp_path, capsys):
    from apps.vision.data import main as data

    out = tmp_path / "seg"
    data(["seg", "--out", str(out), "--limit", "1", "--measures", "6", "--jobs", "1"])
    assert "images of 1 pieces" in capsys.readouterr().out
    build = json.loads((out / "build.json").read_text())
    assert build["classes"] == list(CLASSES)
    stems = [s for split in ("train", "valid", "test") for s in (out / f"{split}.txt").read_text().split()]
    assert stems and len(stems) == sum(build["images"].values())
    for stem in stems:
        with Image.open(out / "images" / f"{stem}.png") as image, Image.open(out / "masks" / f"{stem}.png") as mask:
            assert image.mode == "L" and mask.mode == "L" and image.size == mask.size
    with pytest.raises(SystemExit):  # an existing corpus is never overwritten
        data(["seg", "--out", str(out), "--limit", "1"])


def test_export_command_checks_a_seg_checkpoint(corpus, tmp_path, capsys):
    from apps.vision.export import main as export
    from apps.vision.seg.onnx import OnnxSegmenter

    task = SegTask(arch=SETRConfig(num_classes=len(CLASSES), patch=8, decoder_channels=8,
                                   encoder=BackboneConfig(n_layers=1, **LAYER)), classes=list(CLASSES))
    ckpt = task.save_checkpoint(tmp_path / "seg.ckpt")
    out = tmp_path / "onnx"
    export(["--checkpoint", str(ckpt), "--out", str(out), "--images", str(corpus / "images" / "s0.png"),
            str(corpus / "images" / "s1.png")])
    assert "on 2 images: largest logit difference" in capsys.readouterr().out
    assert OnnxSegmenter(out).classes == list(CLASSES)


def test_predict_writes_one_label_png_per_test_image(corpus, tmp_path):
    folder = tmp_path / "masks"
    main(["predict", "--config", "apps/vision/configs/seg_tiny.yaml", "--data.init_args.corpus_dir", str(corpus),
          "--trainer.default_root_dir", str(tmp_path), "--trainer.callbacks+=apps.vision.writers.WriteMasks",
          "--trainer.callbacks.folder", str(folder)])
    written = sorted(p.name for p in folder.iterdir())
    assert written == ["s2.png"]  # test.txt
    with Image.open(folder / "s2.png") as out, Image.open(corpus / "images" / "s2.png") as src:
        assert out.mode == "P" and out.size == src.size and np.asarray(out).max() < len(CLASSES)
