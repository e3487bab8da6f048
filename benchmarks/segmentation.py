"""Segmentation of engraved scores: SETR (attention, and a Mamba encoder) vs torchvision's FCN and
DeepLabv3 (ResNet-50, from scratch), the same data and the same wall-clock training budget each.

    python benchmarks/segmentation.py                  # 4 models x 300 s on the bundled corpus, recorded
    python benchmarks/segmentation.py --budget-s 60 --no-record
    python benchmarks/segmentation.py --quick          # seconds: a smoke run, never recorded

Data: the bundled mask corpus (:mod:`apps.vision.seg.corpus`; the first ``--build-limit`` music21
scores, built into the cache folder on first use, split by piece) at ``--image-scale``. Every model
trains on the same batches in the same order (AdamW, cross-entropy over labelled pixels, padding
ignored) until its budget is spent, then is scored on the test split (pieces never seen in training):
mIoU over the classes present and pixel accuracy (torchmetrics, micro), plus training images/s.
The torchvision networks see the grayscale image repeated to three channels (``weights=None,
weights_backbone=None``: nothing is downloaded); their stride-8 output is upsampled to the input
size inside the model, as torchvision does.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import hardware, markdown_table, record  # noqa: E402

MODELS = ("setr-attention", "setr-mamba", "fcn_resnet50", "deeplabv3_resnet50")
CONFIGS = {"setr-attention": "apps/vision/configs/seg.yaml", "setr-mamba": "apps/vision/configs/seg_mamba.yaml"}


class TorchvisionPeer(nn.Module):
    """A torchvision segmentation network on our batches: gray -> 3 channels, logits from ``out``."""

    def __init__(self, name: str, num_classes: int):
        super().__init__()
        from torchvision.models import segmentation

        self.net = getattr(segmentation, name)(weights=None, weights_backbone=None, num_classes=num_classes,
                                               aux_loss=False)

    def forward(self, images: torch.Tensor, sizes: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(images.expand(-1, 3, -1, -1))["out"]


def setr(config: str, num_classes: int, quick: bool) -> nn.Module:
    import yaml

    from apps.vision.seg.model import SETR, SETRConfig
    from core.training import as_config

    arch = yaml.safe_load(Path(config).read_text())["model"]["init_args"]["arch"]
    arch["num_classes"] = num_classes
    if quick:  # the smoke run checks the plumbing, not the figures
        arch["encoder"] = {**arch["encoder"], "n_layers": 2, "d_model": 64}
    return SETR(as_config(SETRConfig, arch))


def build(name: str, num_classes: int, quick: bool) -> nn.Module:
    torch.manual_seed(0)
    return setr(CONFIGS[name], num_classes, quick) if name in CONFIGS else TorchvisionPeer(name, num_classes)


def train(model: nn.Module, batches: list[dict], budget_s: float, ignore: int, device, warmup: bool) -> dict:
    """Train until ``budget_s`` is spent; with ``warmup``, one untimed step first (kernel selection
    and allocator warm-up would otherwise count against the first model's throughput)."""
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
    model.to(device).train()

    def step(batch):
        logits = model(batch["images"].to(device), batch["sizes"].to(device))
        loss = F.cross_entropy(logits, batch["masks"].to(device), ignore_index=ignore)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    if warmup:
        step(batches[0])
    steps = images = 0
    start = time.perf_counter()
    while time.perf_counter() - start < budget_s:
        batch = batches[steps % len(batches)]
        loss = step(batch)
        steps, images = steps + 1, images + batch["images"].shape[0]
    if device != "cpu" and torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"steps": steps, "seconds": seconds, "images_s": images / seconds, "loss": float(loss.detach())}


@torch.no_grad()
def score(model: nn.Module, batches: list[dict], num_classes: int, ignore: int, device) -> tuple[float, float]:
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    miou = MulticlassJaccardIndex(num_classes, average="macro", ignore_index=ignore)
    acc = MulticlassAccuracy(num_classes, average="micro", ignore_index=ignore)
    model.eval()
    for batch in batches:
        pred = model(batch["images"].to(device), batch["sizes"].to(device)).argmax(1).cpu()
        miou.update(pred, batch["masks"])
        acc.update(pred, batch["masks"])
    return 100 * float(miou.compute()), 100 * float(acc.compute())


@torch.no_grad()
def write_sample(model: nn.Module, batch: dict, classes: list[str], device, path: Path) -> None:
    """What ``python -m apps.vision.segment --compare`` shows, for the first image of ``batch``."""
    from apps.vision.segment import compare_view, palette, save_rgb

    h, w = batch["sizes"][0].tolist()
    pred = model(batch["images"][:1].to(device), batch["sizes"][:1].to(device)).argmax(1)[0, :h, :w].cpu().numpy()
    truth = batch["masks"][0, :h, :w].numpy().copy()
    truth[truth >= len(classes)] = 0  # ignored pixels drawn as background
    image = (255 * (1 - batch["images"][0, 0, :h, :w].clamp(0, 1))).to(torch.uint8).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_rgb(path, compare_view(image, pred.astype("int64"), truth.astype("int64"), classes, palette(len(classes))))
    print(f"sample written to {path}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--budget-s", type=float, default=300.0, help="training wall-clock per model")
    p.add_argument("--corpus", help="a segmentation corpus folder (default: the bundled one, built on first use)")
    p.add_argument("--build-limit", type=int, default=150, help="scores of the bundled corpus")
    p.add_argument("--measures", type=int, default=3)
    p.add_argument("--image-scale", type=float, default=0.5)
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--eval-limit", type=int, default=100, help="test images scored")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="3 scores, 2-measure systems, 2 s per model, small SETR; "
                                                         "scores the valid split (3 scores hold no test piece)")
    p.add_argument("--no-record", action="store_true")
    p.add_argument("--sample", help="write input | prediction | ground truth of the first test image by the "
                                    "first SETR model here (PNG)")
    a = p.parse_args(argv)
    from apps.vision.seg.data import SegDataModule

    split = "test"
    if a.quick:
        a.budget_s, a.build_limit, a.measures, a.eval_limit, a.max_batch = min(a.budget_s, 2.0), 3, 2, 2, 2
        split, a.no_record = "valid", True
    dm = SegDataModule(corpus_dir=a.corpus, build_limit=None if a.corpus else a.build_limit, measures=a.measures,
                       image_scale=a.image_scale, max_batch=a.max_batch, max_pixels=2_000_000,
                       eval_limit=a.eval_limit, train_limit=8 if a.quick else None)
    k, ignore = dm.num_classes, dm.ignore_index
    train_batches = list(dm.train_dataloader())
    eval_batches = list(dm.test_dataloader() if split == "test" else dm.val_dataloader())
    n_train, n_eval = len(dm.samples("train")), len(dm.samples(split))
    print(f"hardware: {hardware()}\ndata: {dm.corpus_dir}, {n_train} training images, {n_eval} {split} images, "
          f"{k} classes, scale {a.image_scale}; budget {a.budget_s:g} s per model on {a.device}", flush=True)
    rows = []
    for name in a.models:
        model = build(name, k, a.quick)
        params = sum(p.numel() for p in model.parameters())
        run = train(model, train_batches, a.budget_s, ignore, a.device, warmup=not a.quick)
        miou, acc = score(model, eval_batches, k, ignore, a.device)
        rows.append([name, f"{params / 1e6:.1f} M", f"{run['steps']} steps / {run['seconds']:.0f} s",
                     f"{run['images_s']:.2f}", f"{miou:.1f}", f"{acc:.1f}"])
        print(f"{name}: {rows[-1][1:]}", flush=True)
        if a.sample and name in CONFIGS:
            write_sample(model, eval_batches[0], dm.classes, a.device, Path(a.sample))
            a.sample = None
    table = markdown_table(["model", "params", "training", "train images/s", f"{split} mIoU %", "pixel acc %"], rows)
    ours = {r[0]: r for r in rows}
    ratios = []
    for setr_name in ("setr-attention", "setr-mamba"):
        for peer in ("fcn_resnet50", "deeplabv3_resnet50"):
            if setr_name in ours and peer in ours:
                ratios.append(f"{setr_name} / {peer}: images/s {float(ours[setr_name][3]) / float(ours[peer][3]):.2f}x, "
                              f"mIoU {float(ours[setr_name][4]) - float(ours[peer][4]):+.1f} points")
    notes = (f"Bundled mask corpus ({n_train} training / {n_eval} {split} systems of engraved music21 scores, "
             f"{k} classes, images at scale {a.image_scale}), {a.budget_s:g} s of training each on the same batches; "
             "torchvision peers from scratch on the gray image repeated to 3 channels. " + "; ".join(ratios)
             + (". QUICK smoke run: SETR shrunk to 2 layers of width 64, no warm-up step; these figures compare "
                "nothing." if a.quick else ""))
    print("\n" + table + "\n\n" + notes)
    if not a.no_record:
        record("segmentation: SETR vs torchvision FCN / DeepLabv3 on engraved scores",
               "python benchmarks/segmentation.py " + " ".join(argv or sys.argv[1:]), table, notes)


if __name__ == "__main__":
    main()
