"""Cost-bucketed batches (budget, size limit, every record once, seeded), the resumable batch order
against an uninterrupted epoch, and padding."""
import random

import pytest
import torch

from core.data import BatchDataset, BatchOrder, ResumableLoader, batch_loader, cost_batches, lengths, pad
from core.errors import UserError


def padded_cost(batch, sizes):
    parts = [s if isinstance(s, tuple) else (s,) for s in sizes]
    return len(batch) * sum(max(parts[i][p] for i in batch) for p in range(len(parts[0])))


@pytest.mark.parametrize("two_parts", [False, True])
def test_cost_batches_fit_the_budget_and_cover_every_record_once(two_parts):
    rng = random.Random(0)
    sizes = [(rng.randint(2, 50), rng.randint(2, 50)) if two_parts else rng.uniform(0.2, 15.0) for _ in range(400)]
    for max_size in (None, 7):
        batches = cost_batches(sizes, 300, max_size=max_size, seed=1)
        assert sorted(i for b in batches for i in b) == list(range(400))
        assert all(padded_cost(b, sizes) <= 300 for b in batches)
        assert max_size is None or max(map(len, batches)) == max_size
        assert len(batches) < 400 / 3  # similar lengths share batches
        # shortest first, and a batch is only cut when the next record would break a limit
        for a, b in zip(batches, batches[1:]):
            assert max(sizes[i] for i in a) <= min(sizes[i] for i in b)
            assert len(a) == max_size or padded_cost(a + b[:1], sizes) > 300


def test_cost_batches_are_deterministic_per_seed():
    sizes = [random.Random(0).randint(1, 5) for _ in range(200)]  # many ties for the seed to mix
    assert cost_batches(sizes, 40, seed=3) == cost_batches(sizes, 40, seed=3)
    assert cost_batches(sizes, 40, seed=3) != cost_batches(sizes, 40, seed=4)
    assert cost_batches(sizes, 40) == cost_batches(sizes, 40)
    unseeded = cost_batches(sizes, 40)
    assert [i for b in unseeded for i in b] == sorted(range(200), key=lambda i: sizes[i])  # stable sort
    with pytest.raises(UserError, match=r"record 1 needs 20 alone, over batch_seconds=15"):
        cost_batches([1.0, 20.0], 15, option="batch_seconds")


def items(loader):
    return [int(batch[0]) for batch in loader]


def test_batch_order_is_seeded_per_epoch():
    dataset = BatchDataset(list(range(30)), [[i] for i in range(30)])
    order = BatchOrder(dataset, seed=5)
    order.set_epoch(0)
    first = list(order)
    assert sorted(first) == list(range(30)) and first != list(range(30))
    order.set_epoch(1)
    second = list(order)
    assert sorted(second) == list(range(30)) and second != first
    again = BatchOrder(dataset, seed=5)
    again.set_epoch(1)
    assert list(again) == second and list(BatchOrder(dataset, shuffle=False)) == list(range(30))


@pytest.mark.parametrize("num_workers", [0, 1])
def test_resumed_loader_continues_with_the_same_batches(num_workers):
    """State saved after k batches (what Lightning checkpoints) resumes at batch k + 1, even though
    workers have already drawn batches ahead; a new epoch after the resumed one starts afresh."""
    dataset = BatchDataset(list(range(40)), [[i] for i in range(40)], collate=torch.tensor)
    full = batch_loader(dataset, shuffle=True, seed=7, num_workers=num_workers)
    assert isinstance(full, ResumableLoader)
    full.sampler.set_epoch(2)
    uninterrupted = items(full)

    partial = batch_loader(dataset, shuffle=True, seed=7, num_workers=num_workers)
    partial.sampler.set_epoch(2)
    it = iter(partial)
    seen = [int(next(it)[0]) for _ in range(13)]
    state = partial.state_dict()
    assert state == {"epoch": 2, "consumed": 13}
    del it

    resumed = batch_loader(dataset, shuffle=True, seed=7, num_workers=num_workers)
    resumed.load_state_dict(state)
    rest = items(resumed)
    assert seen + rest == uninterrupted
    assert resumed.state_dict() == {"epoch": 3, "consumed": 0}  # at an epoch's end: the next one's start
    resumed.sampler.set_epoch(3)
    full.sampler.set_epoch(3)
    assert items(resumed) == items(full)  # the skip applied to the resumed epoch only


def test_state_saved_at_an_epoch_end_starts_the_next_epoch_whole():
    dataset = BatchDataset(list(range(10)), [[i] for i in range(10)], collate=torch.tensor)
    loader = batch_loader(dataset, shuffle=True, seed=0)
    loader.load_state_dict({"epoch": 0, "consumed": 10})  # a state written before the epoch-end rule
    loader.sampler.set_epoch(1)  # Lightning moves on to the next epoch
    assert sorted(items(loader)) == list(range(10))
    loader.sampler.set_epoch(4)
    epoch_4 = items(loader)
    loader.load_state_dict(loader.state_dict())  # {"epoch": 5, "consumed": 0}
    assert loader.sampler.epoch == 5 and sorted(items(loader)) == list(range(10)) and items(loader) != epoch_4
    evaluation = batch_loader(dataset, shuffle=False)
    assert not isinstance(evaluation, ResumableLoader) and items(evaluation) == list(range(10))


def test_pad_ids_and_waveforms():
    ids = [[5, 6, 7], [8], []]
    out = pad(ids, value=-1)
    assert out.dtype == torch.long
    assert out.tolist() == [[5, 6, 7], [8, -1, -1], [-1, -1, -1]]
    assert lengths(ids).tolist() == [3, 1, 0]
    assert pad([[], []], min_len=1).tolist() == [[0], [0]]
    waves = [torch.randn(4), torch.randn(2)]
    padded = pad(waves)
    assert padded.dtype == torch.float32 and padded.shape == (2, 4)
    torch.testing.assert_close(padded[1, :2], waves[1])
    assert (padded[1, 2:] == 0).all()
