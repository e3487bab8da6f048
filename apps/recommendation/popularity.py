"""``python -m apps.recommendation.popularity [--inter F [--items F]] [--stage test]``

The most-popular baseline on the same split and metrics as the models (full ranking over every
item): the yardstick a sequence model has to beat. Reads the bundled MovieLens-100k unless
``--inter`` names a log; prints one ``name value`` line per metric.
"""
from __future__ import annotations

import argparse

from apps.recommendation.data import RecDataModule
from apps.recommendation.task import evaluate_popularity
from core.errors import entry_point


@entry_point
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apps.recommendation.popularity", description=__doc__.split("\n\n")[1])
    p.add_argument("--inter", help="interaction log (MovieLens ratings.dat / u.data, RecBole .inter, Amazon JSON)")
    p.add_argument("--items", help="the matching item file (titles)")
    p.add_argument("--min-user-events", type=int, default=5)
    p.add_argument("--stage", choices=("valid", "test"), default="test")
    a = p.parse_args(argv)
    dm = RecDataModule(inter=a.inter, items=a.items, min_user_events=a.min_user_events)
    metrics = evaluate_popularity(dm, a.stage)
    print(f"most popular on {dm.sequences.source} ({len(dm.sequences.users)} users, {dm.n_items} items), "
          f"{a.stage} split:")
    for name, value in metrics.items():
        print(f"{name} {value:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
