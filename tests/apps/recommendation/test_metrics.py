"""Ranking metrics recomputed by hand on tiny examples (one relevant item per user)."""
import math

import numpy as np
import pytest
import torch

from apps.recommendation.interactions import LeaveOneOut
from apps.recommendation.metrics import NOT_LISTED, ranking_metrics, ranks_from_lists, ranks_from_scores, update_ranking_metrics
from apps.recommendation.task import popularity_scores, top_k_of_scores


def test_ranks_recall_and_ndcg_by_hand():
    ninf = float("-inf")
    scores = torch.tensor([[ninf, 0.9, 0.1, 0.5, 0.3, 0.2, 0.0],   # target 3: one better item -> rank 1
                           [ninf, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4],   # target 6: rank 5
                           [ninf, 0.5, 0.5, 0.1, 0.0, 0.0, 0.0]])  # target 2: tie with item 1 -> rank 1
    target = torch.tensor([3, 6, 2])
    ranks = ranks_from_scores(scores, target)
    assert ranks.tolist() == [1, 5, 1]
    lists = top_k_of_scores(scores, 3)
    assert lists[2].tolist()[:2] == [1, 2]  # the list agrees with the rank on ties
    metrics = ranking_metrics(n_items=6, ks=(2, 5))
    update_ranking_metrics(metrics, ranks, top_k_of_scores(scores, 5))
    got = {name: float(m.compute()) for name, m in metrics.items()}
    assert got["recall@2"] == pytest.approx(2 / 3, abs=1e-6)
    assert got["recall@5"] == pytest.approx(2 / 3, abs=1e-6)  # rank 5 is the sixth item
    assert got["ndcg@2"] == pytest.approx((2 / math.log2(3)) / 3, abs=1e-6)
    assert got["ndcg@5"] == pytest.approx((2 / math.log2(3)) / 3, abs=1e-6)
    # top-5 lists: {1,3,4,5,2} | {1,2,3,4,5} | {1,2,3,4,5}: items 1..5 of 6
    assert got["coverage@5"] == pytest.approx(5 / 6, abs=1e-6)


def test_ranks_from_generated_lists():
    lists = torch.tensor([[4, 2, 7], [1, 5, -1], [3, 3, 3]])
    ranks = ranks_from_lists(lists, torch.tensor([7, 2, 3]))
    assert ranks.tolist() == [2, NOT_LISTED, 0]
    metrics = ranking_metrics(n_items=8, ks=(1, 3))
    update_ranking_metrics(metrics, ranks, lists)
    assert float(metrics["recall@1"].compute()) == pytest.approx(1 / 3, abs=1e-6)
    assert float(metrics["ndcg@3"].compute()) == pytest.approx((1 / math.log2(4) + 1) / 3, abs=1e-6)
    assert float(metrics["coverage@3"].compute()) == pytest.approx(6 / 8, abs=1e-6)  # 1, 2, 3, 4, 5, 7 (-1: none)


def test_popularity_counts_what_precedes_the_targets():
    split = LeaveOneOut(users=["a", "b"], train=[np.array([1, 2, 2]), np.array([2, 3])],
                        valid=np.array([3, 1]), test=np.array([4, 4]))
    valid = popularity_scores(split, n_items=4, stage="valid")
    test = popularity_scores(split, n_items=4, stage="test")
    assert valid[1:].tolist() == [1, 3, 1, 0] and test[1:].tolist() == [2, 3, 2, 0]
    assert valid[0] == float("-inf")
