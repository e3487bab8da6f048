"""The synthetic recall tasks of benchmarks/recall.py: the answers are where the task says, and a
tiny attention model learns a small instance (the benchmark's full table runs every mixer)."""
import torch

from benchmarks.recall import induction, mqar, selective_copy, train_and_score


def test_mqar_targets_are_the_values_paired_with_each_query_key():
    b = mqar(8, n_pairs=4, n_keys=16, n_values=16, generator=torch.Generator().manual_seed(0))
    assert b.ids.shape == (8, 16)
    for ids, tgt in zip(b.ids.tolist(), b.targets.tolist()):
        pairs = dict(zip(ids[0:8:2], ids[1:8:2]))
        assert len(pairs) == 4  # distinct keys
        asked = [(i, t) for i, t in enumerate(tgt) if t != -100]
        assert [i for i, _ in asked] == [8, 10, 12, 14]
        assert all(pairs[ids[i]] == t for i, t in asked)


def test_selective_copy_targets_are_the_data_tokens_in_order():
    b = selective_copy(4, n_data=3, length=10, n_values=5, generator=torch.Generator().manual_seed(0))
    for ids, tgt in zip(b.ids.tolist(), b.targets.tolist()):
        data = [t for t in ids[:10] if t < 5]
        assert ids[10] == 6 and ids[11:] == data
        assert [t for t in tgt if t != -100] == data


def test_induction_target_follows_the_earlier_trigger_at_a_varying_position():
    b = induction(64, length=12, n_values=7, generator=torch.Generator().manual_seed(0))
    positions = set()
    for ids, tgt in zip(b.ids.tolist(), b.targets.tolist()):
        assert ids[-1] == 7 and ids[:-1].count(7) == 1  # one trigger inside, one at the end
        pos = ids.index(7)
        positions.add(pos)
        assert tgt[:-1] == [-100] * 11 and tgt[-1] == ids[pos + 1] < 7
    assert len(positions) > 4  # no fixed lag a convolution could learn


def test_tiny_attention_model_learns_induction():
    r = train_and_score("attention", "induction", steps=150, d_model=32, batch=32, lr=1e-2,
                        task_kwargs={"length": 16, "n_values": 8}, eval_samples=256)
    assert r["accuracy"] > 0.9, r  # chance is 1/8
