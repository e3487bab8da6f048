"""Top-K retrieval metrics with full ranking: every item of the catalogue competes, no sampled
negatives (sampled metrics overstate and even reorder models: Krichene & Rendle 2020).

Each user has ONE relevant item (the held-out next item), so everything follows from its rank r
(0 = first) in the user's ranking of all items:

* Recall@K = 1 if r < K else 0 (with one relevant item it is also the hit rate);
* NDCG@K = 1 / log2(r + 2) if r < K else 0 (the ideal DCG of one relevant item is 1);
* coverage@K: the share of the catalogue that appears in at least one user's top-K list;

each averaged over users. A model that scores items gives ranks by :func:`ranks_from_scores`; a
model that generates a list (TIGER's beam search) by :func:`ranks_from_lists`, where an item not in
the list ranks past every K.
"""
from __future__ import annotations

import torch
from torchmetrics import MeanMetric, Metric

#: the rank of an item that is not in a generated list: beyond every K
NOT_LISTED = 1 << 30
KS = (5, 10)


def ranks_from_scores(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """int64 [B]: the target's position when every item is sorted by score [B, N], ties in item
    order (a stable descending sort, so the rank and the shown top-K list always agree): the
    items scoring higher plus the tied ones with a lower index. Columns set to -inf (padding)
    come after every real item."""
    gold = scores.gather(1, target[:, None])
    lower = torch.arange(scores.shape[1], device=scores.device)[None, :] < target[:, None]
    return ((scores > gold) | ((scores == gold) & lower)).sum(1)


def ranks_from_lists(lists: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """int64 [B]: the target's position in each row of ``lists`` [B, K] (item indices, best first,
    -1 where a list is short), :data:`NOT_LISTED` when it is not there."""
    hit = lists == target[:, None]
    position = hit.int().argmax(1)
    return torch.where(hit.any(1), position, torch.full_like(position, NOT_LISTED))


class RecallAt(MeanMetric):
    """Recall@K from ranks (one relevant item per user)."""

    def __init__(self, k: int, **kwargs):
        super().__init__(**kwargs)
        self.k = k

    def update(self, ranks: torch.Tensor) -> None:
        super().update((ranks < self.k).float())


class NDCGAt(MeanMetric):
    """NDCG@K from ranks (one relevant item per user, so the ideal DCG is 1)."""

    def __init__(self, k: int, **kwargs):
        super().__init__(**kwargs)
        self.k = k

    def update(self, ranks: torch.Tensor) -> None:
        gain = 1.0 / torch.log2(ranks.clamp(max=NOT_LISTED).double() + 2)
        super().update(torch.where(ranks < self.k, gain, torch.zeros_like(gain)).float())


class Coverage(Metric):
    """Share of the ``n_items`` items (indices 1..N) that appear in some top-K list."""

    full_state_update = False

    def __init__(self, n_items: int, **kwargs):
        super().__init__(**kwargs)
        self.n_items = n_items
        self.add_state("seen", default=torch.zeros(n_items + 1), dist_reduce_fx="max")

    def update(self, lists: torch.Tensor) -> None:
        """``lists`` [B, K] item indices (-1 or 0 where a list is short: not counted)."""
        real = lists[(lists >= 1) & (lists <= self.n_items)]
        self.seen[real] = 1.0

    def compute(self) -> torch.Tensor:
        return self.seen[1:].sum() / max(self.n_items, 1)


def ranking_metrics(n_items: int, ks: tuple[int, ...] = KS) -> dict[str, Metric]:
    """``recall@K``, ``ndcg@K`` for each K and ``coverage@max K``."""
    out: dict[str, Metric] = {}
    for k in ks:
        out[f"recall@{k}"] = RecallAt(k)
        out[f"ndcg@{k}"] = NDCGAt(k)
    out[f"coverage@{max(ks)}"] = Coverage(n_items)
    return out


def update_ranking_metrics(metrics, ranks: torch.Tensor, lists: torch.Tensor) -> None:
    """Feed every ranking metric of ``metrics`` (a dict or MetricCollection, with or without other
    entries): ranks [B] of the targets, lists [B, K] the top-K items shown."""
    for key, metric in metrics.items():
        name = key.rpartition("/")[2]  # (a MetricCollection's keys carry its "val/" / "test/" prefix)
        if name.startswith(("recall@", "ndcg@")):
            metric.update(ranks)
        elif name.startswith("coverage@"):
            metric.update(lists[:, : int(name.split("@")[1])])
