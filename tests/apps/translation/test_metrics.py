"""Metrics: hand-computed PER/WER, sacrebleu parity for BLEU/chrF, and DDP-style state merging."""

from __future__ import annotations

import pytest
import sacrebleu
import torch

from apps.translation.metrics import (
    CorpusBLEU,
    CorpusChrF,
    PhonemeErrorRate,
    WordErrorRateMultiRef,
)

HYPS = [
    "The cat sat on the mat.",
    "A quick brown fox jumps over the lazy dog!",
    "¿Dónde está la biblioteca?",
    "He gave his only Son, that whoever believes in him should not perish.",
    "Nothing matches here",
]
REFS_A = [
    "The cat sat on a mat.",
    "The quick brown fox jumped over the lazy dog.",
    "¿Dónde está la biblioteca?",
    "He gave his one and only Son, that whoever believes in him shall not perish.",
    "Completely different words",
]
REFS_B = [
    "A cat was sitting on the mat.",
    "A fast brown fox leaps over a lazy dog!",
    "¿Dónde queda la biblioteca?",
    "For God so loved the world, that he gave his only born Son.",
    "Nothing is here",
]


def test_phoneme_error_rate_uses_the_closest_reference():
    per = PhonemeErrorRate()
    per.update(
        ["R IY1 D", "AY1 DH ER0 Z", "K AE1 T"],
        [
            ["R EH1 D", "R IY1 D"],  # matches the 2nd reference exactly: 0 errors / 3
            ["IY1 DH ER0", "AY1 DH ER0"],  # closest is the 2nd: 1 insertion / 3
            ["K AA1 T S"],  # 1 substitution + 1 deletion / 4
        ],
    )
    assert per.compute().item() == pytest.approx((0 + 1 + 2) / (3 + 3 + 4))


def test_word_error_rate_accepts_any_reference():
    wer = WordErrorRateMultiRef()
    wer.update(
        ["R IY1 D", " AY1  DH ER0 ", "K AE1 T", "D AO1 G"],
        [["R EH1 D", "R IY1 D"], ["IY1 DH ER0", "AY1 DH ER0"], ["K AA1 T"], ["D AA1 G", "D AO1 G Z"]],
    )
    assert wer.compute().item() == pytest.approx(2 / 4)  # "K AE1 T" and "D AO1 G" match nothing


def test_per_and_wer_reject_malformed_input():
    with pytest.raises(ValueError, match="2 hypotheses but 1"):
        PhonemeErrorRate().update(["A", "B"], [["A"]])
    with pytest.raises(ValueError, match="list of reference strings"):
        WordErrorRateMultiRef().update(["A"], ["A"])


@pytest.mark.parametrize(
    "metric_cls, sacre_fn, kwargs",
    [
        (CorpusBLEU, sacrebleu.corpus_bleu, {}),
        (CorpusChrF, sacrebleu.corpus_chrf, {}),
        (CorpusChrF, sacrebleu.corpus_chrf, {"word_order": 2}),  # chrF++
    ],
)
@pytest.mark.parametrize("n_refs", [1, 2])
def test_corpus_scores_equal_sacrebleu(metric_cls, sacre_fn, kwargs, n_refs):
    streams = [REFS_A, REFS_B][:n_refs]
    expected = sacre_fn(HYPS, streams, **kwargs)

    metric = metric_cls(**kwargs)
    for start in range(0, len(HYPS), 2):  # several updates, like several batches
        metric.update(HYPS[start : start + 2], [list(refs) for refs in zip(*streams)][start : start + 2])
    assert metric.compute().item() == pytest.approx(expected.score, abs=1e-9)
    assert 0 < expected.score < 100
    signature = metric.signature()
    assert signature.startswith(f"nrefs:{n_refs}|") and f"version:{sacrebleu.__version__}" in signature


def test_variable_reference_counts_show_in_the_signature():
    bleu = CorpusBLEU()
    bleu.update(HYPS[:2], [[REFS_A[0], REFS_B[0]], [REFS_A[1]]])
    expected = sacrebleu.corpus_bleu(HYPS[:2], [REFS_A[:2], [REFS_B[0], None]])
    assert bleu.compute().item() == pytest.approx(expected.score)
    assert bleu.signature().startswith("nrefs:var|")


@pytest.mark.parametrize("metric_cls", [CorpusBLEU, CorpusChrF, PhonemeErrorRate, WordErrorRateMultiRef])
def test_merging_two_ranks_equals_one_pass(metric_cls):
    """DDP sums the tensor states of every rank; ``merge_state`` applies the same reductions."""
    refs = [[a, b] for a, b in zip(REFS_A, REFS_B)]
    single = metric_cls()
    single.update(HYPS, refs)

    rank0, rank1 = metric_cls(), metric_cls()
    rank0.update(HYPS[:3], refs[:3])
    rank1.update(HYPS[3:], refs[3:])
    rank0.merge_state(rank1)
    assert torch.equal(rank0.compute(), single.compute())
    for name in single._defaults:  # every state is a tensor: one all-reduce under DDP
        assert isinstance(getattr(single, name), torch.Tensor)


def test_reset_clears_the_corpus():
    bleu = CorpusBLEU()
    bleu.update(HYPS[:1], [[REFS_A[0]]])
    bleu.reset()
    bleu.update(HYPS, [[r] for r in REFS_A])
    assert bleu.compute().item() == pytest.approx(sacrebleu.corpus_bleu(HYPS, [REFS_A]).score)
