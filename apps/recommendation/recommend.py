"""``python -m apps.recommendation.recommend --checkpoint CKPT --user ID [--k 10]``

Prints the user's last items (titles, oldest first) and the model's top-K next items with titles.
The checkpoint is a SASRec or TIGER one written by ``apps.recommendation.train``; the data it was
trained on is rebuilt from the options the checkpoint recorded, and the recommendation reads the
user's whole sequence (the held-out validation and test items too: this is the next item after
everything the user did), and items the user already has are not recommended (``--include-seen``
ranks them too). An unknown user, a bad K or a foreign checkpoint is one line, exit 2.
"""
from __future__ import annotations

import argparse

import torch

from apps.recommendation.data import Histories, RecDataModule, collate
from apps.recommendation.interactions import Example
from apps.recommendation.task import SASRecTask, TigerTask
from core.errors import UserError, entry_point
from core.training import BaseTask, datamodule_from_checkpoint


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m apps.recommendation.recommend", description=__doc__.split("\n\n")[1])
    parser.add_argument("--checkpoint", required=True, help="a SASRec or TIGER checkpoint")
    parser.add_argument("--user", required=True, help="a user id of the training data")
    parser.add_argument("--k", type=int, default=10, help="how many items to recommend")
    parser.add_argument("--last", type=int, default=5, help="how many of the user's last items to show")
    parser.add_argument("--include-seen", action="store_true",
                        help="also rank the items the user already has (by default they are left out)")
    return parser.parse_args(argv)


def recommend(task: BaseTask, dm: RecDataModule, user: str, k: int, include_seen: bool = False) -> list[int]:
    """The top-``k`` item indices for ``user``'s next item, best first; unless ``include_seen``,
    none the user already has."""
    if not isinstance(task, (SASRecTask, TigerTask)):
        raise UserError(f"a {type(task).__name__} checkpoint does not recommend; give a SASRec or TIGER one")
    history = dm.full_history(user)
    seen = set() if include_seen else set(history)
    if not 1 <= k <= dm.n_items - len(seen):
        raise UserError(f"--k must be between 1 and the {dm.n_items - len(seen)} items left to recommend, got {k}")
    tokens = task.item_tokens if isinstance(task, TigerTask) else None
    rows = Histories([Example(user, tuple(history[-dm.max_history:]), 0)], tokens, dm.user_tokens)
    with torch.no_grad():
        return [i for i in task.top_k(collate([rows[0]]), k, exclude=seen)[0].tolist() if i > 0]


@entry_point
def main(argv=None) -> int:
    args = parse(argv)
    task = BaseTask.from_checkpoint(args.checkpoint)
    dm = datamodule_from_checkpoint(RecDataModule, args.checkpoint)
    items = recommend(task, dm, args.user, args.k, args.include_seen)
    history = dm.full_history(args.user)
    print(f"user {args.user}: last {min(args.last, len(history))} of {len(history)} items")
    for item in history[-args.last:] if args.last > 0 else []:
        print(f"  {dm.title(item)}")
    print(f"top {len(items)} recommendations ({type(task).__name__}):")
    for rank, item in enumerate(items, 1):
        print(f"{rank:3d}. {dm.title(item)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
