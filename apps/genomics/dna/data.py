"""Windows of a genome for causal language modelling (``task: lm``) and per-nucleotide gene
tagging (``task: tag``).

Training windows start at random positions of the training region (a new draw every epoch) and
are read from either strand with probability 1/2 (``reverse_complement``): DNA has no preferred
direction, and for tagging the labels follow (forward codon positions become reverse ones).
Evaluation tiles the held-out region so that every held-out base is scored exactly once (see
:class:`TiledWindows`); bases a window must not score get ``-100`` targets.

An ``lm`` batch holds ``ids`` [B, W + 1] (targets are ``ids[:, 1:]``); a ``tag`` batch holds
``ids`` [B, W] and ``labels`` [B, W] with ``-100`` where no label applies.

Sequence-length warm-up (HyenaDNA): ``length_warmup: [256, 512]`` trains epoch 0 on 256-base
windows, epoch 1 on 512, then ``window``, keeping tokens per batch constant; it needs the
Trainer's ``reload_dataloaders_every_n_epochs: 1``.
"""
from __future__ import annotations

import numpy as np
import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from apps.genomics.genes import GENE_LABELS, SWAP_STRAND
from apps.genomics.genome import Segment, load_genome
from apps.genomics.nucleotides import complement_table, dna_tokenizer
from core.errors import UserError
from core.tokenizers import tokenizer_from_json

IGNORE = -100
TASKS = ("lm", "tag")


class TrainWindows(Dataset):
    """``count`` windows of ``length`` bases at random places in the training segments (each
    segment drawn in proportion to its length), random strand when ``complement`` is given."""

    def __init__(self, segments: list[Segment], length: int, count: int, complement: np.ndarray | None):
        self.segments = [s for s in segments if len(s) >= length]
        if not self.segments:
            raise UserError(f"no training sequence is as long as a window ({length} bases)")
        sizes = np.array([len(s) - length + 1 for s in self.segments], dtype=np.float64)
        self.weights = torch.as_tensor(sizes / sizes.sum())
        self.length, self.count, self.complement = length, count, complement

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int):
        segment = self.segments[int(torch.multinomial(self.weights, 1))]
        start = int(torch.randint(0, len(segment) - self.length + 1, ()))
        tokens = segment.tokens[start:start + self.length]
        labels = None if segment.labels is None else segment.labels[start:start + self.length]
        if self.complement is not None and bool(torch.rand(()) < 0.5):
            tokens = self.complement[tokens[::-1]]
            labels = None if labels is None else SWAP_STRAND[labels[::-1]]
        return _item(tokens, labels, 0)


class TiledWindows(Dataset):
    """Windows covering every held-out segment so that each base is scored once: for an LM
    (``context`` 1) consecutive windows overlap by the one base that conditions the next window's
    first prediction. A segment's last window is moved back to end at the segment's end; its
    first ``skip`` positions, scored by the window before, are not scored again."""

    def __init__(self, segments: list[Segment], length: int, context: int = 0, limit: int | None = None):
        self.segments = segments
        self.tiles: list[tuple[int, int, int, int]] = []  # (segment, start, length, positions not to score)
        for k, s in enumerate(segments):
            size = min(length, len(s))
            done = context  # bases [0, done) are scored, or cannot be (no context before them)
            while done < len(s) and size > context:
                start = min(done - context, len(s) - size)
                self.tiles.append((k, start, size, done - start if start < done - context else 0))
                done = start + size
        if limit is not None:
            self.tiles = self.tiles[:limit]

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, i: int):
        k, start, size, skip = self.tiles[i]
        s = self.segments[k]
        return _item(s.tokens[start:start + size], None if s.labels is None else s.labels[start:start + size], skip)


def _item(tokens: np.ndarray, labels: np.ndarray | None, skip: int) -> dict[str, torch.Tensor]:
    item = {"ids": torch.from_numpy(np.ascontiguousarray(tokens)), "skip": torch.tensor(skip)}
    if labels is not None:
        item["labels"] = torch.from_numpy(np.ascontiguousarray(labels))
    return item


def collate(items: list[dict[str, torch.Tensor]], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Pads to the longest window (held-out segments may be shorter than a window); padding and
    the ``skip`` bases get ``-100`` targets."""
    width = max(len(it["ids"]) for it in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    targets = torch.full((len(items), width), IGNORE, dtype=torch.long)
    has_labels = "labels" in items[0]
    for r, it in enumerate(items):
        n, skip = len(it["ids"]), int(it["skip"])
        ids[r, :n] = it["ids"]
        gold = it["labels"] if has_labels else it["ids"]
        targets[r, skip:n] = gold[skip:]
    batch = {"ids": ids, "mask": ids != pad_id}
    batch["labels" if has_labels else "targets"] = targets
    return batch


class DNADataModule(L.LightningDataModule):
    def __init__(self, task: str = "lm", fasta: str | None = None, gff: str | None = None, window: int = 1024,
                 batch_size: int = 8, windows_per_epoch: int = 2000, reverse_complement: bool = True,
                 keep_case: bool = False, valid_fraction: float = 0.05, test_fraction: float = 0.1,
                 eval_limit: int | None = None, length_warmup: list[int] | None = None,
                 cache_dir: str | None = None, num_workers: int = 0):
        """``fasta`` None: the bundled genome (gene labels from pyrodigal); with ``task: tag`` a
        user FASTA needs a ``gff`` of its CDS features. ``eval_limit`` caps the validation and
        test windows (tests and quick runs); ``windows_per_epoch`` sets what an epoch is."""
        super().__init__()
        self.save_hyperparameters()  # in checkpoints: predict and export read the same data
        if task not in TASKS:
            raise UserError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        if task == "tag" and fasta is not None and gff is None:
            raise UserError(f"{fasta}: gene tagging of a user genome needs its annotation (data.gff: a GFF3 or BED file of its CDS)")
        if window < 2:
            raise UserError(f"window must be at least 2 bases, got {window}")
        self.task, self.fasta, self.gff, self.window = task, fasta, gff, window
        self.batch_size, self.windows_per_epoch = batch_size, windows_per_epoch
        self.reverse_complement, self.keep_case = reverse_complement, keep_case
        self.valid_fraction, self.test_fraction, self.eval_limit = valid_fraction, test_fraction, eval_limit
        self.length_warmup = list(length_warmup or [])
        self.cache_dir, self.num_workers = cache_dir, num_workers
        self.tokenizer = dna_tokenizer(keep_case)
        self._splits: dict[str, list[Segment]] | None = None

    # ------------------------------------------------------------------ sizes the model needs

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def num_classes(self) -> int:
        """Gene labels (tagging only: a language model has no such size, so the CLI's link to
        ``arch.num_classes`` is skipped for it)."""
        if self.task != "tag":
            raise AttributeError("num_classes: only gene tagging has classes")
        return len(GENE_LABELS)

    def tokenizers_json(self) -> dict[str, str]:
        return {"dna": self.tokenizer.to_json()}

    def use_tokenizers_json(self, tokenizers: dict[str, str]) -> None:
        self.tokenizer = tokenizer_from_json(tokenizers["dna"])

    # ------------------------------------------------------------------ data

    def segments(self, split: str) -> list[Segment]:
        if self._splits is None:
            self._splits = load_genome(self.tokenizer, self.fasta, self.gff, labels=self.task == "tag",
                                       valid_fraction=self.valid_fraction, test_fraction=self.test_fraction,
                                       cache_dir=self.cache_dir)
        return self._splits[split]

    def setup(self, stage: str | None = None) -> None:
        self.segments("train")

    def train_window(self) -> int:
        """This epoch's window length (sequence-length warm-up, then ``window``)."""
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        return self.length_warmup[epoch] if epoch < len(self.length_warmup) else self.window

    def train_dataloader(self):
        if self.length_warmup and self.trainer is not None and self.trainer.reload_dataloaders_every_n_epochs != 1:
            raise UserError("length_warmup needs trainer.reload_dataloaders_every_n_epochs: 1")
        length = self.train_window()
        scale = max(1, self.window // length)  # same bases per batch (and per epoch) while the windows are short
        complement = complement_table(self.tokenizer) if self.reverse_complement else None
        extra = 1 if self.task == "lm" else 0  # an LM window predicts ``length`` bases from length + 1
        data = TrainWindows(self.segments("train"), length + extra, self.windows_per_epoch * scale, complement)
        return DataLoader(data, batch_size=self.batch_size * scale, shuffle=False, collate_fn=collate,
                          num_workers=self.num_workers, drop_last=True)

    def _eval_loader(self, split: str):
        segments = self.segments(split)
        if not segments:
            raise UserError(f"the {split} region is empty: raise {split}_fraction")
        extra = 1 if self.task == "lm" else 0
        data = TiledWindows(segments, self.window + extra, extra, self.eval_limit)
        return DataLoader(data, batch_size=self.batch_size, shuffle=False, collate_fn=collate,
                          num_workers=self.num_workers)

    def val_dataloader(self):
        return self._eval_loader("valid")

    def test_dataloader(self):
        return self._eval_loader("test")

    def predict_dataloader(self):
        return self._eval_loader("test")
