"""Export a TIGER checkpoint to ONNX and check a whole constrained beam decode against PyTorch.

    python -m apps.recommendation.export --checkpoint CKPT --out DIR [--samples 64] [--k 10]

Writes core's two seq2seq graphs (``encoder.onnx``, ``decoder.onnx``, ``config.json``:
:mod:`core.export.onnx_seq2seq`) and ``items.json``, the catalogue a runner needs to turn decoded
IDs back into items: each item's id (row i = item index i) and its semantic-ID tokens.
:class:`OnnxTiger` runs the same trie-constrained beam search as
:class:`~apps.recommendation.task.TigerTask` over onnxruntime; the check decodes ``--samples`` test
users with both and fails unless every top-``k`` list is the same and every beam score agrees
within 1e-4. The output folder must be new or empty (nothing is overwritten).

SASRec needs no search (one forward scores every item); its users export the decoder with
:func:`core.export.export_decoder_lm` if they want it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from apps.recommendation.data import RecDataModule, collate
from apps.recommendation.task import TigerTask, beam_config, item_lists
from core.errors import UserError, entry_point
from core.export import OnnxEncoderDecoder, export_encoder_decoder, new_output_dir
from core.generation import Hypothesis, TokenTrie, generate
from core.training import BaseTask, datamodule_from_checkpoint

ITEMS_FILE = "items.json"
SCORE_ATOL = 1e-4


def export_tiger(task: TigerTask, out: Path, item_ids: list[str], checkpoint: str) -> None:
    """The graphs, config.json (with the search's sizes in its metadata) and items.json."""
    task = task.eval()
    export_encoder_decoder(task.model, out, metadata={
        "bos_id": task.model.bos_id, "eos_id": task.model.eos_id, "id_length": task.id_length,
        "beam_size": task.decoding.beam_size, "checkpoint": checkpoint})
    tokens = task.item_tokens.tolist()
    (out / ITEMS_FILE).write_text(json.dumps({"item_ids": item_ids, "tokens": tokens}), encoding="utf-8")


class OnnxTiger:
    """TIGER over onnxruntime: ``top_k(src, k)`` is :meth:`TigerTask.top_k` for a padded source batch."""

    def __init__(self, path: str | Path):
        self.runner = OnnxEncoderDecoder(path)
        items = json.loads((Path(path) / ITEMS_FILE).read_text(encoding="utf-8"))
        self.item_ids, tokens = items["item_ids"], items["tokens"]
        self.items = {tuple(row): i for i, row in enumerate(tokens) if i}
        self.trie = TokenTrie([tokens[i] for i in range(1, len(tokens))])
        meta = self.runner.metadata
        self.id_length, self.beam_size = meta["id_length"], meta["beam_size"]

    def hypotheses(self, src: torch.Tensor, k: int) -> list[list[Hypothesis]]:
        return self.runner.generate(src, beam_config(self.beam_size, k, self.id_length), allowed_tokens=self.trie)

    def top_k(self, src: torch.Tensor, k: int = 10) -> torch.Tensor:
        return item_lists([[h.tokens for h in row] for row in self.hypotheses(src, k)], self.items, k)


def parity(task: TigerTask, runner: OnnxTiger, batch: dict, k: int) -> dict:
    """Top-k lists and beam scores of PyTorch and onnxruntime on one padded batch of sources."""
    with torch.no_grad():
        ours = generate(task.model, task.model.start(batch["src"]), task.beam_config(k), allowed_tokens=task.trie())
    theirs = runner.hypotheses(batch["src"], k)
    lists = [item_lists([[h.tokens for h in row] for row in hyps], runner.items, k) for hyps in (ours, theirs)]
    diff = max(abs(a.score - b.score) for ra, rb in zip(ours, theirs) for a, b in zip(ra, rb))
    same = int((lists[0] == lists[1]).all(dim=1).sum())
    return {"same_lists": same, "rows": len(batch["src"]), "max_score_diff": diff, "lists": lists[1],
            "ok": same == len(batch["src"]) and diff <= SCORE_ATOL}


@entry_point
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m apps.recommendation.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a TIGER checkpoint of apps.recommendation.train")
    p.add_argument("--out", required=True, help="a new or empty folder")
    p.add_argument("--samples", type=int, default=64, help="test users decoded by both runtimes")
    p.add_argument("--k", type=int, default=10, help="length of the compared lists")
    a = p.parse_args(argv)
    if a.samples < 1 or a.k < 1:
        raise UserError(f"--samples and --k must be at least 1, got {a.samples} and {a.k}")
    task = BaseTask.from_checkpoint(a.checkpoint)
    if not isinstance(task, TigerTask):
        raise UserError(f"{a.checkpoint}: a {type(task).__name__} checkpoint; only TIGER exports (it needs a "
                        "search; SASRec scores every item in one forward)")
    dm = datamodule_from_checkpoint(RecDataModule, a.checkpoint)
    data = dm.dataset("test")
    rows = [data[i] for i in range(min(a.samples, len(data)))]
    out = new_output_dir(a.out)
    export_tiger(task, out, list(dm.sequences.item_ids), str(a.checkpoint))
    check = parity(task, OnnxTiger(out), collate(rows), a.k)
    print(f"exported to {out}; onnxruntime vs PyTorch constrained beam search ({task.decoding.beam_size} beams) on "
          f"{check['rows']} test users: {check['same_lists']}/{check['rows']} top-{a.k} lists identical, largest "
          f"beam score difference {check['max_score_diff']:.2e} (limit {SCORE_ATOL:.0e})")
    if not check["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
