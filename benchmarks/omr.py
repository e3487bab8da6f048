"""OMR: our image -> **kern model vs HF transformers' VisionEncoderDecoderModel, same batches, same clock.

    python benchmarks/omr.py --corpus DIR [--budget-s 900] [--eval 100] [--beam 5]
    python benchmarks/omr.py --quick           # a tiny smoke run on 3 engraved chorales (not recorded)

``DIR`` is a corpus written by ``python -m apps.vision.data omr`` (split by piece: the test systems
come from pieces neither model saw). Both models are randomly initialised and of about the same size:

* ours, twice: a ResNet-18 trunk to stride 16 (one channel; the SMT shape, ``omr.yaml``), and
  16-pixel patches through a 4-layer core encoder (the peer's shape, ``omr_patch.yaml``); both with
  2-D sinusoidal positions, a 4-layer pre-norm decoder (d 256, RoPE, SwiGLU, KV cache) and padded
  grid cells masked;
* peer: ViT encoder (patch 16, one channel, ``interpolate_pos_encoding``) + BERT decoder with
  cross-attention (d 256, 4 layers), built from configs.

Each trains with the same AdamW, warm-up, gradient clipping and label-smoothed cross-entropy on the
same batches (same order) for ``--budget-s`` seconds of compute (loading the PNGs is excluded for
all); the models take each batch in turn, so any other load on the machine slows all of them
alike. Then all decode the test systems greedily and with beam search (``--beam``) under the same
token cap; SER / CER / LER are the SMT paper's (corpus edit distance x 100 / reference length, over
bekern tokens, characters, lines), plus the share of predictions Verovio can engrave.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import hardware, markdown_table, record  # noqa: E402
from apps.vision.metrics import omr_metrics  # noqa: E402
from apps.vision.omr.data import OMRDataModule  # noqa: E402
from apps.vision.omr.kern import detokenize  # noqa: E402
from apps.vision.omr.model import OMRConfig, OMRModel  # noqa: E402
from core.generation import GenerationConfig, generate  # noqa: E402
from core.models import BackboneConfig  # noqa: E402
from core.training import token_loss  # noqa: E402

PAD, BOS, EOS = 0, 1, 2
PEER = "HF VisionEncoderDecoder"


def build_ours(vocab: int, d: int, layers: int, trunk: str) -> OMRModel:
    """``resnet``: the SMT shape (omr.yaml); ``patch``: 16-pixel patches through a ``layers``-deep
    core encoder, the peer's shape (omr_patch.yaml)."""
    backbone = BackboneConfig(d_model=d, n_layers=layers, n_heads=4, dropout=0.1, max_len=2048)
    return OMRModel(OMRConfig(vocab_size=vocab, trunk=trunk, patch=16, position="sinusoidal_2d",
                              encoder=replace(backbone, position="none") if trunk == "patch" else None,
                              decoder=backbone))


def build_peer(vocab: int, d: int, enc_layers: int, dec_layers: int):
    from transformers import BertConfig, VisionEncoderDecoderConfig, VisionEncoderDecoderModel, ViTConfig

    enc = ViTConfig(hidden_size=d, num_hidden_layers=enc_layers, num_attention_heads=4, intermediate_size=4 * d,
                    image_size=224, patch_size=16, num_channels=1, hidden_dropout_prob=0.1)
    dec = BertConfig(vocab_size=vocab, hidden_size=d, num_hidden_layers=dec_layers, num_attention_heads=4,
                     intermediate_size=4 * d, max_position_embeddings=2048, is_decoder=True, add_cross_attention=True,
                     pad_token_id=PAD, hidden_dropout_prob=0.1)
    cfg = VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = BOS, PAD, EOS
    return VisionEncoderDecoderModel(config=cfg)


def loss_ours(model, batch, smoothing):
    tgt = batch["tgt_ids"]
    hidden = model.features(batch["images"], batch["sizes"], tgt[:, :-1])
    return token_loss(hidden, model.head, tgt[:, 1:], PAD, smoothing)[0]


def loss_peer(model, batch, smoothing):
    tgt = batch["tgt_ids"]
    logits = model(pixel_values=batch["images"], decoder_input_ids=tgt[:, :-1],
                   decoder_attention_mask=tgt[:, :-1] != PAD, interpolate_pos_encoding=True).logits
    return F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD, label_smoothing=smoothing)


class Trainee:
    """One model's optimiser, schedule and counters; ``step`` times only its own compute."""

    def __init__(self, name: str, model, loss_fn, decode, lr: float, warmup: int, smoothing: float = 0.1):
        self.name, self.model, self.loss_fn, self.decode, self.smoothing = name, model, loss_fn, decode, smoothing
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min((s + 1) / warmup, math.sqrt(warmup / (s + 1))))
        self.steps = self.images = 0
        self.spent, self.loss = 0.0, float("nan")

    def step(self, batch) -> None:
        self.model.train()
        t0 = time.perf_counter()
        value = self.loss_fn(self.model, batch, self.smoothing)
        self.opt.zero_grad(set_to_none=True)
        value.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.sched.step()
        self.spent += time.perf_counter() - t0
        self.steps, self.images, self.loss = self.steps + 1, self.images + len(batch["kern"]), value.item()


def train(trainees: list[Trainee], dm: OMRDataModule, budget_s: float) -> None:
    """Every model takes the same batch in turn, until each has spent ``budget_s`` seconds of compute:
    same data in the same order, and whatever else loads the machine loads all of them alike."""
    epoch = 0
    torch.manual_seed(0)
    while any(t.spent < budget_s for t in trainees):
        loader = dm.train_dataloader()
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)  # a new order each epoch, the same for every model
        for batch in loader:
            active = [t for t in trainees if t.spent < budget_s]
            if not active:
                break
            for t in active:
                t.step(batch)
                if t.steps % 50 == 0:
                    print(f"  {t.name} step {t.steps}: loss {t.loss:.3f}, {t.images / t.spent:.2f} img/s", flush=True)
        epoch += 1
    for t in trainees:
        t.model.eval()


def cut(ids: list[int]) -> list[int]:
    """Generated tokens up to EOS (HF rows carry the start token and padding after EOS)."""
    ids = [i for i in ids if i not in (PAD, BOS)]
    return ids[: ids.index(EOS)] if EOS in ids else ids


def ids_to_kern(tok, ids: list[int]) -> str:
    return detokenize(tok.decode(cut(ids)).split())


@torch.no_grad()
def decode_ours(model, batch, beam: int, max_len: int, min_len: int = 0) -> list[list[int]]:
    cfg = GenerationConfig(strategy="beam" if beam > 1 else "greedy", beam_size=beam, max_len=max_len, min_len=min_len)
    return [row[0].tokens for row in generate(model, model.start(batch["images"], batch["sizes"]), cfg)]


@torch.no_grad()
def decode_peer(model, batch, beam: int, max_len: int, min_len: int = 0) -> list[list[int]]:
    out = model.generate(pixel_values=batch["images"], interpolate_pos_encoding=True, num_beams=beam,
                         max_new_tokens=max_len, min_new_tokens=min_len, decoder_start_token_id=BOS, eos_token_id=EOS,
                         pad_token_id=PAD, do_sample=False, length_penalty=1.0)
    return [row.tolist() for row in out]


def decode_speed(trainees: list[Trainee], batches, beam: int, length: int, corpus, quick: bool) -> None:
    """Images/s of each (untrained) model when every output is exactly ``length`` tokens: what
    a model has learnt to write no longer decides how long it decodes."""
    for t in trainees:
        t.model.eval()
        t.decode(t.model, {k: v[:2] for k, v in batches[0].items()}, beam, 4)  # untimed warm-up
    seconds = {t.name: {1: 0.0, beam: 0.0} for t in trainees}
    n = sum(len(b["kern"]) for b in batches)
    for batch in batches:
        for width in (1, beam):
            for t in trainees:
                t0 = time.perf_counter()
                t.decode(t.model, batch, width, length, length - 1)
                seconds[t.name][width] += time.perf_counter() - t0
    rows = [[name, f"{n / s[1]:.2f}", f"{seconds[PEER][1] / s[1]:.2f}x",
             f"{n / s[beam]:.2f}", f"{seconds[PEER][beam] / s[beam]:.2f}x"] for name, s in seconds.items()]
    table = markdown_table(["model", "greedy img/s", "vs HF", f"beam-{beam} img/s", "vs HF"], rows)
    notes = (f"{n} test systems in batches of up to 16, every output forced to {length} tokens (EOS forbidden "
             "before), untrained models of the benchmark's shapes: decoding speed at equal output length.")
    if quick:
        print(table + "\n\n" + notes)
    else:
        record("OMR decoding speed at equal output length: seqlab vs HF VisionEncoderDecoderModel.generate",
               f"python benchmarks/omr.py --corpus {corpus} --decode-speed {length} --eval {n} --beam {beam}",
               table, notes)


def evaluate(trainees: list[Trainee], batches, tok, beam: int, max_len: int) -> dict[str, dict[str, float]]:
    """Decode every batch with each model in turn: {model name: SER, CER, LER, engravable, img/s, tok/s}."""
    metrics = {t.name: MetricCollection(omr_metrics()) for t in trainees}
    seconds, tokens = dict.fromkeys(metrics, 0.0), dict.fromkeys(metrics, 0)
    warm = {k: v[:2] for k, v in batches[0].items()}
    for t in trainees:  # untimed: first-call set-up (allocations, thread pools) is not decoding speed
        t.decode(t.model, warm, beam, 4)
    for batch in batches:
        for t in trainees:
            t0 = time.perf_counter()
            ids = t.decode(t.model, batch, beam, max_len)
            seconds[t.name] += time.perf_counter() - t0
            metrics[t.name].update([ids_to_kern(tok, row) for row in ids], batch["kern"])
            tokens[t.name] += sum(len(cut(row)) + 1 for row in ids)  # + EOS
    n = sum(len(b["kern"]) for b in batches)
    return {name: {**{k.split("/")[-1]: float(v) for k, v in m.compute().items()},
                   "img_s": n / seconds[name], "tok_s": tokens[name] / seconds[name]} for name, m in metrics.items()}


def params(model) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", help="folder written by python -m apps.vision.data omr")
    p.add_argument("--budget-s", type=float, default=900.0, help="training compute seconds per model")
    p.add_argument("--eval", type=int, default=100, help="test systems to decode")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--sample", help="write the first test system above our re-engraved prediction here (PNG)")
    p.add_argument("--quick", action="store_true", help="3 chorales, seconds of training, not recorded")
    p.add_argument("--decode-speed", type=int, metavar="L",
                   help="no training: decode with every model forced to write L tokens (EOS forbidden until then), "
                        "so decoding speed is compared at equal output lengths")
    a = p.parse_args()
    torch.manual_seed(0)
    split = "valid" if a.quick else "test"  # the 3 smoke-test chorales hold no test piece
    if a.quick:
        dm = OMRDataModule(build_limit=3, measures=2, image_scale=0.5, max_batch=4, eval_limit=4)
        a.budget_s, a.beam, d, layers = 5.0, 2, 64, 1
    else:
        if not a.corpus:
            p.error("--corpus is required (or --quick)")
        dm = OMRDataModule(corpus_dir=a.corpus, image_scale=0.5, max_pixels=4_000_000, max_batch=16,
                           eval_limit=a.eval)
        d, layers = 256, 4
    tok = dm.bekern_tokenizer()
    print(f"{hardware()}\ntrain systems {len(dm.examples('train'))}, test systems {len(dm.examples(split))}, "
          f"vocabulary {tok.vocab_size}", flush=True)
    test = list(dm.val_dataloader() if split == "valid" else dm.test_dataloader())
    max_len = int(1.25 * max(len(e.ids) for e in dm.examples(split)))

    trainees = []
    for name, build, loss_fn, decode in (
            ("seqlab ResNet-18", lambda: build_ours(tok.vocab_size, d, layers, "resnet"), loss_ours, decode_ours),
            ("seqlab patches + encoder", lambda: build_ours(tok.vocab_size, d, layers, "patch"), loss_ours, decode_ours),
            (PEER, lambda: build_peer(tok.vocab_size, d, layers, layers), loss_peer, decode_peer)):
        torch.manual_seed(0)
        trainees.append(Trainee(name, build(), loss_fn, decode, a.lr, a.warmup))
        print(f"{name}: {params(trainees[-1].model):.2f} M parameters", flush=True)
    if a.decode_speed:
        return decode_speed(trainees, test, a.beam, a.decode_speed, a.corpus, a.quick)
    print(f"training each for {a.budget_s:.0f} s of compute", flush=True)
    train(trainees, dm, a.budget_s)
    results = {t.name: {"params": params(t.model), "steps": t.steps, "train_img_s": t.images / t.spent,
                        "loss": t.loss, "epochs": t.images / len(dm.examples("train"))} for t in trainees}
    for beam in (1, a.beam):
        for name, scores in evaluate(trainees, test, tok, beam, max_len).items():
            results[name][beam] = scores
            print(f"  {name} beam {beam}: {scores}", flush=True)

    rows = []
    peer = results[PEER]
    for name, r in results.items():
        for beam in (1, a.beam):
            e = r[beam]
            rows.append([name, f"{r['params']:.1f} M", r["steps"], f"{r['epochs']:.2f}", f"{r['train_img_s']:.2f}",
                         "greedy" if beam == 1 else f"beam {beam}", f"{e['ser']:.1f}", f"{e['cer']:.1f}", f"{e['ler']:.1f}",
                         f"{e['engravable']:.0f} %", f"{e['img_s']:.2f}", f"{e['tok_s']:.0f}"])
    table = markdown_table(["model", "params", "steps", "epochs", "train img/s", "decoding", "SER", "CER", "LER",
                            "engravable", "decode img/s", "decode tok/s"], rows)
    ratios = " ".join(
        f"{name} / HF: training images/s {r['train_img_s'] / peer['train_img_s']:.2f}x, greedy decoding "
        f"{r[1]['img_s'] / peer[1]['img_s']:.2f}x, beam-{a.beam} decoding {r[a.beam]['img_s'] / peer[a.beam]['img_s']:.2f}x "
        f"(per token {r[a.beam]['tok_s'] / peer[a.beam]['tok_s']:.2f}x), "
        f"SER (beam {a.beam}) {r[a.beam]['ser']:.1f} vs {peer[a.beam]['ser']:.1f}."
        for name, r in results.items() if name != PEER)
    notes = (f"{len(dm.examples('train'))} training systems, {len(dm.examples(split))} test systems from "
             f"held-out pieces (corpus `{a.corpus}`), {a.budget_s:.0f} s of training compute each, token cap "
             f"{max_len}. {ratios} The SMT paper's 5.1 SER is on GrandStaff (53k piano systems, days of GPU "
             "training): a different, larger set.")
    if a.quick:
        print(table + "\n\n" + notes)
    else:
        record("OMR: seqlab vs HF VisionEncoderDecoderModel (music21 corpus, engraved)",
               f"python benchmarks/omr.py --corpus {a.corpus} --budget-s {a.budget_s:.0f} --eval {a.eval} --beam {a.beam}",
               table, notes)
    if a.sample:
        best = min((n for n in results if n != PEER), key=lambda n: results[n][a.beam]["ser"])
        write_sample(next(t.model for t in trainees if t.name == best), test[0], tok, a.beam, max_len, Path(a.sample))


def write_sample(model, batch, tok, beam: int, max_len: int, path: Path) -> None:
    """The first test system above our prediction, re-engraved (what ``transcribe --render`` writes)."""
    import numpy as np
    from PIL import Image

    from apps.vision.omr.data import read_image
    from apps.vision.omr.engrave import engrave
    from apps.vision.transcribe import side_by_side

    one = {"images": batch["images"][:1], "sizes": batch["sizes"][:1]}
    kern = ids_to_kern(tok, decode_ours(model, one, beam, max_len)[0])
    picture = side_by_side(read_image(Path(batch["paths"][0])), engrave(kern), kern)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(picture)).save(path)
    print(f"sample written to {path}\nreference:\n{batch['kern'][0]}\nprediction:\n{kern}")


if __name__ == "__main__":
    main()
