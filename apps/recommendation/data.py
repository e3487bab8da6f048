"""The recommendation data module: one interaction log, cut by chronological leave-one-out, as the
batches each of the app's three models reads.

Where the events come from: ``inter`` (and optionally ``items``, the matching item file), read by
:func:`apps.recommendation.interactions.read_interactions`, else the bundled MovieLens-100k
(:mod:`apps.recommendation.datasets`). Then, with the committed functions and nothing else:
:func:`filter_k_core` (``min_user_events``), :func:`user_sequences`, :func:`leave_one_out` and
:func:`examples` (histories of at most ``max_history`` items, leakage-free).

``kind`` says which batches come out (each model checks it gets the kind it reads):

* ``items`` (SASRec): ``history`` int64 [B, T] item indices 1..N, right-padded with 0, ``target``
  [B] the next item, ``length`` [B];
* ``semantic_ids`` (TIGER): the item table ``semantic_ids`` (a file the rqvae stage wrote, one ID
  per item in item-index order) turns items into tokens. ``src`` [B, S] is the optional hashed user
  token followed by the history items' ID tokens flattened (right-padded), ``tgt`` [B, L+1] the next
  item's tokens; ``target``/``history`` as for ``items``. The token vocabulary is core's specials
  (pad 0, BOS 1, EOS 2, unknown 3), then ``user_tokens`` user-hash buckets, then the ID tokens
  (:attr:`token_offset` is where they start);
* ``embeddings`` (the RQ-VAE): rows of the item text-embedding matrix [B, D] (``embeddings``, a
  user's ``.npy``, else computed from the item file and cached by
  :func:`apps.recommendation.embeddings.item_embeddings`); every split holds all items, since
  semantic IDs are made for the whole catalogue, not for held-out users.

Item index i (1..N) is ``sequences.item_ids[i]``; row i - 1 of the embeddings and of the
semantic-ID table is item i, so the three models agree on what an item is.
"""
from __future__ import annotations

import zlib
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from apps.recommendation.datasets import bundled_movielens
from apps.recommendation.embeddings import item_embeddings, load_embeddings
from apps.recommendation.interactions import (MIN_SPLIT_EVENTS, Example, Interactions, LeaveOneOut, Sequences,
                                              examples, filter_k_core, leave_one_out, read_interactions,
                                              user_sequences)
from apps.recommendation.semantic_ids import SemanticIds
from core.data import SplitDataModule
from core.errors import UserError
from core.tokenizers.base import SPECIAL_TOKENS

KINDS = ("items", "semantic_ids", "embeddings")
#: the specials below every other token (core's pad/BOS/EOS/unknown ids 0..3)
N_SPECIALS = len(SPECIAL_TOKENS)

#: parsed logs by (path, size, mtime) of their files: a test session or a fit + test in one process
#: reads the 100k events once
_READ_CACHE: dict[tuple, Interactions] = {}


def _read(inter: Path, items: Path | None) -> Interactions:
    key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in (inter, items) if p is not None)
    if key not in _READ_CACHE:
        _READ_CACHE[key] = read_interactions(inter, items)
    return _READ_CACHE[key]


def user_token(user: str, buckets: int) -> int:
    """The hashed user token (TIGER's: users share ``buckets`` tokens by a hash of their id): CRC32,
    so the same user gets the same token in every process (Python's ``hash`` of a str is salted)."""
    return N_SPECIALS + zlib.crc32(user.encode("utf-8")) % buckets


class Histories(Dataset):
    """Examples as tensors; ``tokens`` (the semantic-ID table as tokens, row i = item i) adds the
    TIGER fields."""

    def __init__(self, rows: list[Example], tokens: torch.Tensor | None, user_tokens: int):
        self.rows, self.tokens, self.user_tokens = rows, tokens, user_tokens

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ex = self.rows[i]
        out = {"history": torch.tensor(ex.history, dtype=torch.int64), "target": torch.tensor(ex.target)}
        if self.tokens is not None:
            src = self.tokens[out["history"]].flatten()
            if self.user_tokens:
                src = torch.cat([torch.tensor([user_token(ex.user, self.user_tokens)]), src])
            out["src"], out["tgt"] = src, self.tokens[ex.target]
        return out


def collate(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Right-pad the variable-length fields with 0 (padding: item 0, token 0)."""
    out = {"target": torch.stack([r["target"] for r in rows]),
           "length": torch.tensor([len(r["history"]) for r in rows])}
    for name in ("history", "src"):
        if name in rows[0]:
            out[name] = torch.nn.utils.rnn.pad_sequence([r[name] for r in rows], batch_first=True)
    if "tgt" in rows[0]:
        out["tgt"] = torch.stack([r["tgt"] for r in rows])
    return out


def stack_rows(rows: list[tuple[torch.Tensor]]) -> torch.Tensor:
    """Embedding rows [B, D] (a module-level function: worker processes pickle it)."""
    return torch.stack([r[0] for r in rows])


class RecDataModule(SplitDataModule):
    """Leave-one-out splits of one interaction log (see the module docstring)."""

    def __init__(self, inter: str | None = None, items: str | None = None, kind: str = "items",
                 min_user_events: int = 5, max_history: int = 20, semantic_ids: str | None = None,
                 user_tokens: int = 0, embeddings: str | None = None, batch_size: int = 256,
                 num_workers: int = 0, cache_dir: str | None = None):
        """``user_tokens``: hash buckets of the TIGER source's user token (0: no user token)."""
        super().__init__()
        self.save_hyperparameters()  # in checkpoints: ``recommend`` rebuilds the same split
        if kind not in KINDS:
            raise UserError(f"data.kind must be one of {', '.join(KINDS)}, got {kind!r}")
        for name, path in (("data.inter", inter), ("data.items", items), ("data.embeddings", embeddings)):
            if path is not None and not Path(path).is_file():
                raise UserError(f"{path}: {name} is not a file")
        if items is not None and inter is None:
            raise UserError("data.items needs data.inter (the events it describes); without both the bundled "
                            "MovieLens-100k is used")
        if kind == "semantic_ids" and semantic_ids is None:
            raise UserError("data.kind semantic_ids needs data.semantic_ids, the table the rqvae stage wrote "
                            "(semantic_ids.pt beside its checkpoint)")
        if min_user_events < MIN_SPLIT_EVENTS:
            raise UserError(f"data.min_user_events must be at least {MIN_SPLIT_EVENTS} (leave-one-out needs a "
                            f"training, a validation and a test item), got {min_user_events}")
        for name, value, least in (("max_history", max_history, 1), ("batch_size", batch_size, 1),
                                   ("user_tokens", user_tokens, 0), ("num_workers", num_workers, 0)):
            if value < least:
                raise UserError(f"data.{name} must be at least {least}, got {value}")
        self.inter, self.items_path, self.kind = inter, items, kind
        self.min_user_events, self.max_history = min_user_events, max_history
        self.semantic_ids_path, self.user_tokens, self.embeddings_path = semantic_ids, user_tokens, embeddings
        self.batch_size, self.num_workers, self.cache_dir = batch_size, num_workers, cache_dir

    # ------------------------------------------------------------------ the log and its split

    @cached_property
    def interactions(self) -> Interactions:
        if self.inter is not None:
            return _read(Path(self.inter), Path(self.items_path) if self.items_path else None)
        files = bundled_movielens(self.cache_dir)
        return _read(files.inter, files.item)

    @cached_property
    def sequences(self) -> Sequences:
        return user_sequences(filter_k_core(self.interactions, self.min_user_events))

    @cached_property
    def split(self) -> LeaveOneOut:
        return leave_one_out(self.sequences)

    @property
    def n_items(self) -> int:
        return self.sequences.n_items

    def title(self, item: int) -> str:
        """An item index's title (its id when the item file gives none)."""
        item_id = self.sequences.item_ids[item]
        return self.interactions.items.get(item_id, {}).get("title") or f"item {item_id}"

    def full_history(self, user: str) -> list[int]:
        """Every item of ``user`` oldest first (training, validation and test item): what a
        recommendation for the user's next item reads. An unknown user is a one-line error."""
        index = {u: i for i, u in enumerate(self.sequences.users)}
        if user not in index:
            raise UserError(f"{self.sequences.source}: no user {user!r} (after keeping users with at least "
                            f"{self.min_user_events} events; {len(index)} users, e.g. {self.sequences.users[0]!r})")
        return self.sequences.items[index[user]].tolist()

    # ------------------------------------------------------------------ semantic IDs

    @cached_property
    def semantic_id_table(self) -> SemanticIds:
        ids = SemanticIds.load(self.semantic_ids_path)
        if ids.n_items != self.n_items:
            raise UserError(f"{self.semantic_ids_path}: {ids.n_items} semantic IDs for {self.n_items} items; the "
                            "rqvae stage must run on the same data (data.inter, data.min_user_events)")
        return ids

    @property
    def token_offset(self) -> int:
        """The first semantic-ID token (after the specials and the user buckets)."""
        return N_SPECIALS + self.user_tokens

    def item_tokens(self) -> torch.Tensor:
        """int64 [N + 1, L + 1]: item i's ID tokens in row i (row 0, padding, is all 0)."""
        tokens = self.semantic_id_table.to_tokens(self.token_offset)
        return torch.cat([torch.zeros(1, tokens.shape[1], dtype=torch.int64), tokens])

    @property
    def vocab_size(self) -> int:
        """TIGER's token vocabulary (0 for the other kinds, which have none)."""
        return self.token_offset + self.semantic_id_table.vocab_size if self.kind == "semantic_ids" else 0

    @property
    def id_length(self) -> int:
        return self.semantic_id_table.levels + 1 if self.kind == "semantic_ids" else 0

    # ------------------------------------------------------------------ item embeddings

    @cached_property
    def embeddings(self) -> np.ndarray:
        order = self.sequences.item_ids[1:]
        if self.embeddings_path is not None:
            return load_embeddings(self.embeddings_path, n_items=len(order))
        return item_embeddings(self.interactions.items, order, self.cache_dir)

    @property
    def embedding_dim(self) -> int:
        return int(self.embeddings.shape[1]) if self.kind == "embeddings" else 0

    # ------------------------------------------------------------------ loaders

    def dataset(self, split: str) -> Dataset:
        if self.kind == "embeddings":
            return TensorDataset(torch.from_numpy(self.embeddings))
        tokens = self.item_tokens() if self.kind == "semantic_ids" else None
        return Histories(examples(self.split, split, self.max_history), tokens, self.user_tokens)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if self.kind == "embeddings":
            return DataLoader(self.dataset(split), batch_size=self.batch_size, shuffle=shuffle,
                              num_workers=self.num_workers, collate_fn=stack_rows)
        return DataLoader(self.dataset(split), batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, collate_fn=collate)
