"""Cost-bucketed batches as dataset items, in a seeded order that resumes mid-epoch.

Sequence data wastes compute on padding unless a batch holds records of similar length, and a
fixed batch *size* either wastes memory on short records or overflows on long ones. So
:func:`cost_batches` sorts records by length and cuts the sorted run into batches whose padded
cost (batch size x longest record, in tokens, seconds, frames ...) fits a budget. The batches are
fixed once per split and become the items of a :class:`BatchDataset`, read with
``DataLoader(batch_size=None)``: a sampler then permutes and shards whole batches, never
splitting one.

For training, :func:`batch_loader` puts a :class:`BatchOrder` behind the loader: a seeded shuffle
of the batches per epoch (``seed + epoch``), sharded across ranks under DDP (it is a
``DistributedSampler``, so Lightning uses it as it is instead of inserting its own), and a
:class:`ResumableLoader` that tells Lightning how far into the epoch it got. Lightning stores that
``state_dict()`` in every checkpoint (``loops.fit_loop.state_dict.combined_loader``) and hands it
back on resume, so a run killed mid-epoch continues with exactly the batches the uninterrupted run
would have seen (the skipped batches are never loaded).
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from core.errors import UserError


def cost_batches(lengths: Sequence[float] | Sequence[Sequence[float]], max_cost: float, max_size: int | None = None,
                 seed: int | None = None, option: str = "max_cost") -> list[list[int]]:
    """Group record indices into batches whose padded cost ``B * sum(max length per part)`` fits ``max_cost``.

    ``lengths[i]`` is record i's padded length, a number (seconds of audio) or one per part padded
    separately (source and target tokens: cost ``B * max(S) + B * max(T)``). Records are sorted by
    length (part by part) so a batch holds similar lengths; with a ``seed``, records of equal length
    are shuffled first, so another seed mixes other records together. A batch also holds at most
    ``max_size`` records. Every index lands in exactly one batch; batches come out shortest first.
    A record over the budget alone is an error naming ``option``, the user's name for the budget.
    """
    sizes = [tuple(x) if isinstance(x, Sequence) else (x,) for x in lengths]
    order = list(range(len(sizes)))
    if seed is not None:
        random.Random(seed).shuffle(order)
    order.sort(key=lambda i: sizes[i])  # stable: ties keep the shuffled order
    batches: list[list[int]] = []
    current: list[int] = []
    longest: tuple[float, ...] = ()
    for i in order:
        size = sizes[i]
        if sum(size) > max_cost:
            raise UserError(f"record {i} needs {sum(size):g} alone, over {option}={max_cost:g}")
        grown = tuple(map(max, longest, size)) if current else size
        if current and ((max_size is not None and len(current) >= max_size)
                        or (len(current) + 1) * sum(grown) > max_cost):
            batches.append(current)
            current, grown = [], size
        current.append(i)
        longest = grown
    if current:
        batches.append(current)
    return batches


class BatchDataset(Dataset):
    """A dataset whose items are whole batches: ``collate([examples[j] for j in batch])``.

    Collating in ``__getitem__`` means DataLoader workers do it (reading audio, padding), and the
    loader runs with ``batch_size=None``. Without ``collate`` an item is the list of examples.
    """

    def __init__(self, examples: Sequence[Any], batches: Sequence[Sequence[int]],
                 collate: Callable[[list[Any]], Any] | None = None) -> None:
        self.examples = list(examples)
        self.batches = [list(b) for b in batches]
        self.collate = collate

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> Any:
        items = [self.examples[j] for j in self.batches[i]]
        return self.collate(items) if self.collate is not None else items


class BatchOrder(DistributedSampler):
    """Which batch items an epoch visits, in what order: ``DistributedSampler`` over the batches.

    Shuffled with ``seed + epoch`` (Lightning calls ``set_epoch``) or in order, split across ranks
    when a process group is running (one replica otherwise). :meth:`resume` makes the next pass
    over ``epoch`` skip the items already consumed before a checkpoint.
    """

    def __init__(self, dataset: Dataset, shuffle: bool = True, seed: int = 0) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        super().__init__(dataset, num_replicas=None if distributed else 1, rank=None if distributed else 0,
                         shuffle=shuffle, seed=seed)
        self._resume: tuple[int, int] | None = None  # (epoch, items to skip)

    def resume(self, epoch: int, consumed: int) -> None:
        self.set_epoch(epoch)
        self._resume = (epoch, consumed)

    def skipped(self) -> int:
        """Items the coming pass leaves out (consumed before the checkpoint); read when it starts."""
        return self._resume[1] if self._resume is not None and self._resume[0] == self.epoch else 0

    def __iter__(self) -> Iterator[int]:
        # a generator: the order is drawn at the first next(), after Lightning's set_epoch and
        # load_state_dict, not when iter() is called
        skip = self.skipped()
        self._resume = None
        indices = list(super().__iter__())
        yield from indices[skip:]


class ResumableLoader(DataLoader):
    """A ``DataLoader`` with Lightning's stateful-loader protocol (``state_dict``/``load_state_dict``).

    It counts the items it has handed out this epoch (not what the sampler or worker prefetching has
    drawn), so a checkpoint written after step k resumes at item k + 1. Use it with a
    :class:`BatchOrder` sampler; with any other sampler it only counts.
    """

    _consumed = 0

    def __iter__(self) -> Iterator[Any]:
        order = self.sampler
        self._consumed = order.skipped() if isinstance(order, BatchOrder) else 0
        for item in super().__iter__():
            self._consumed += 1
            yield item

    def state_dict(self) -> dict[str, int]:
        epoch = getattr(self.sampler, "epoch", 0)
        if self._consumed >= len(self):  # saved at an epoch's end: resume at the next one's start
            return {"epoch": epoch + 1, "consumed": 0}
        return {"epoch": epoch, "consumed": self._consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if isinstance(self.sampler, BatchOrder):
            self.sampler.resume(int(state["epoch"]), int(state["consumed"]))


def batch_loader(dataset: BatchDataset, shuffle: bool, seed: int = 0, num_workers: int = 0) -> DataLoader:
    """The loader for a :class:`BatchDataset`: resumable and seeded when ``shuffle`` (training);
    a plain ordered one otherwise, which Lightning shards itself for evaluation and prediction."""
    common = {"batch_size": None, "num_workers": num_workers, "persistent_workers": num_workers > 0}
    if shuffle:
        return ResumableLoader(dataset, sampler=BatchOrder(dataset, shuffle=True, seed=seed), **common)
    return DataLoader(dataset, shuffle=False, **common)
