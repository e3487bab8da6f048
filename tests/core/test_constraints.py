"""Batched prefix constraints: the token trie's tensor ops, and searches under it agree with the
per-row Python callable and never leave the trie."""
import random

import pytest
import torch

from core.generation import CallableConstraint, GenerationConfig, TokenTrie, generate
from core.models import BackboneConfig, EncoderDecoder, Seq2SeqConfig

EOS = 2


def allowed_set(trie, prefix, vocab=12):
    state = trie.start(torch.zeros(1))
    for tok in prefix:
        state = trie.advance(state, torch.tensor([tok]))
    return set(trie.mask(state, vocab, EOS)[0].nonzero().flatten().tolist())


def test_trie_masks_children_and_eos_where_a_sequence_ends():
    trie = TokenTrie([[5, 6], [5, 7, 8], [9], [3], [3, 4]])
    assert allowed_set(trie, []) == {3, 5, 9}
    assert allowed_set(trie, [5]) == {6, 7}
    assert allowed_set(trie, [5, 6]) == {EOS}
    assert allowed_set(trie, [3]) == {4, EOS}  # a sequence that is a prefix of another
    assert allowed_set(trie, [5, 9]) == set()  # left the trie: nothing is allowed any more
    assert allowed_set(trie, [11]) == set()  # a token beyond every edge's token does not alias another node
    assert trie.contains([5, 7, 8]) and not trie.contains([5, 7])


def test_trie_state_is_batched():
    trie = TokenTrie([[5, 6], [7, 8]])
    state = trie.advance(trie.start(torch.zeros(4)), torch.tensor([5, 7, 6, 5]))
    mask = trie.mask(state, 12, EOS)  # (rows 0 and 3 share a state: computed once)
    assert [set(r.nonzero().flatten().tolist()) for r in mask] == [{6}, {8}, set(), {6}]


def tiny_seq2seq(vocab=12, seed=0):
    torch.manual_seed(seed)
    b = BackboneConfig(d_model=32, n_layers=2, n_heads=4, dropout=0.0)
    return EncoderDecoder(Seq2SeqConfig(vocab, vocab, b, b)).eval()


def python_trie(sequences):
    """The same trie as a per-row callable (the old form): a prefix -> allowed tokens dict."""
    table: dict[tuple, set] = {}
    for seq in sequences:
        for i in range(len(seq)):
            table.setdefault(tuple(seq[:i]), set()).add(seq[i])
        table.setdefault(tuple(seq), set()).add(EOS)
    return lambda row, prefix: sorted(table.get(tuple(prefix), ()))


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
def test_constrained_search_stays_in_trie_and_equals_the_python_loop(strategy):
    rng = random.Random(0)
    sequences = [[rng.randrange(3, 12) for _ in range(3)] for _ in range(30)] + [[4]]
    model = tiny_seq2seq()
    src = torch.tensor([[5, 6, 7, 8, EOS], [9, 4, EOS, 0, 0], [4, 4, 4, EOS, 0]])
    cfg = GenerationConfig(strategy=strategy, beam_size=4, n_best=3 if strategy != "greedy" else 1, max_len=6)
    trie = TokenTrie(sequences)
    fast = generate(model, model.start(src), cfg, trie, generator=torch.Generator().manual_seed(0))
    slow = generate(model, model.start(src), cfg, python_trie(sequences), generator=torch.Generator().manual_seed(0))
    assert [[h.tokens for h in row] for row in fast] == [[h.tokens for h in row] for row in slow]
    for a, b in zip(fast, slow):
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
    assert all(h.tokens in sequences for row in fast for h in row)
    assert all(len(row) == cfg.n_best for row in fast)


def test_callable_constraint_sees_rows_and_prefixes():
    seen = []

    def allowed(row, prefix):
        seen.append((row, tuple(prefix)))
        return None

    c = CallableConstraint(allowed)
    state = c.start(torch.tensor([0, 1]))
    assert c.mask(state, 5, EOS) is None
    state = c.advance(state[torch.tensor([1, 1])], torch.tensor([3, 4]))
    c.mask(state, 5, EOS)
    assert seen == [(0, ()), (1, ()), (1, (3,)), (1, (4,))]
