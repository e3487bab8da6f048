"""Translation metrics as torchmetrics objects whose states are summable tensors.

Every state here is a tensor reduced with "sum" (or "min"/"max"), never a list
of strings, so DDP synchronisation is one all-reduce and ``merge_state`` works.
That is possible because each metric is a ratio of corpus-wide sums:

* PER: phoneme edits against the closest reference / that reference's length.
* WER (multi-reference): words not matching any reference / words.
* BLEU and chrF: sacrebleu's per-sentence sufficient statistics (n-gram
  matches and totals, lengths) add up over the corpus; the corpus score is
  computed from their sum exactly as ``sacrebleu.corpus_bleu``/``corpus_chrf``
  do. Scores are on sacrebleu's 0-100 scale, on detokenized text.

``update(hyps, refs)`` takes hypotheses ``list[str]`` and, per hypothesis, a
list of its reference strings (``list[list[str]]``), which is exactly the
``refs`` field of a batch from :mod:`apps.translation.data`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.metrics.base import Metric as SacreMetric
from torchmetrics import Metric

from core.metrics import edit_distance


def _check(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"got {len(hyps)} hypotheses but {len(refs)} reference lists")
    if any(isinstance(r, str) or len(r) == 0 for r in refs):
        raise ValueError("each hypothesis needs a non-empty list of reference strings")


class PhonemeErrorRate(Metric):
    """Edit distance over space-separated phonemes, against each word's closest reference.

    For every word the reference with the fewest edits counts (the first one
    on ties), with its length as the denominator; the result is total edits
    over total reference phonemes, so long words weigh more than short ones.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("errors", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> None:
        _check(hyps, refs)
        errors = total = 0
        for hyp, candidates in zip(hyps, refs):
            hyp_phones = hyp.split()
            distance, length = min(
                ((edit_distance(hyp_phones, ref.split()), len(ref.split())) for ref in candidates),
                key=lambda pair: pair[0],
            )
            errors += distance
            total += length
        self.errors = self.errors + errors
        self.total = self.total + total

    def compute(self) -> torch.Tensor:
        return self.errors.double() / self.total.clamp(min=1)


class WordErrorRateMultiRef(Metric):
    """Share of words whose hypothesis equals none of its references (whitespace-normalised)."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("wrong", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> None:
        _check(hyps, refs)
        wrong = 0
        for hyp, candidates in zip(hyps, refs):
            hyp = " ".join(hyp.split())
            wrong += all(hyp != " ".join(ref.split()) for ref in candidates)
        self.wrong = self.wrong + wrong
        self.total = self.total + len(hyps)

    def compute(self) -> torch.Tensor:
        return self.wrong.double() / self.total.clamp(min=1)


class _SacreBLEUMetric(Metric):
    """Sums a sacrebleu metric's per-sentence statistics; the score is computed from the sum.

    Uses sacrebleu's ``_extract_corpus_statistics`` / ``_compute_score_from_stats``,
    the same two steps its ``corpus_score`` runs, so results match it exactly.
    The smallest and largest reference counts seen are kept too, for the
    ``nrefs`` field of the signature ("var" when they differ).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, scorer: SacreMetric, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scorer = scorer
        n_stats = len(scorer._extract_corpus_statistics(["a"], [["a"]])[0])
        self.add_state("stats", default=torch.zeros(n_stats, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("min_refs", default=torch.tensor(torch.iinfo(torch.long).max), dist_reduce_fx="min")
        self.add_state("max_refs", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="max")

    def update(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> None:
        _check(hyps, refs)
        if not hyps:
            return
        n_refs = [len(r) for r in refs]
        # sacrebleu wants reference *streams* (stream k = every sentence's k-th reference);
        # None marks "this sentence has fewer references".
        streams = [[r[k] if k < len(r) else None for r in refs] for k in range(max(n_refs))]
        per_sentence = self.scorer._extract_corpus_statistics(list(hyps), streams)
        device = self.stats.device
        self.stats = self.stats + torch.tensor(per_sentence, dtype=torch.long, device=device).sum(dim=0)
        self.min_refs = torch.minimum(self.min_refs, torch.tensor(min(n_refs), device=device))
        self.max_refs = torch.maximum(self.max_refs, torch.tensor(max(n_refs), device=device))

    def score(self) -> Any:
        """The sacrebleu score object (``.score``, and BLEU's precisions, brevity penalty...)."""
        return self.scorer._compute_score_from_stats([int(x) for x in self.stats.tolist()])

    def compute(self) -> torch.Tensor:
        return torch.tensor(self.score().score, dtype=torch.double)

    def signature(self) -> str:
        """sacrebleu's reproducibility signature, e.g. ``nrefs:1|case:mixed|eff:no|tok:13a|...``."""
        lo, hi = int(self.min_refs), int(self.max_refs)
        self.scorer.num_refs = lo if lo == hi else -1
        return str(self.scorer.get_signature())


class CorpusBLEU(_SacreBLEUMetric):
    """Corpus BLEU as ``sacrebleu.corpus_bleu``; keyword options (``tokenize``, ``lowercase``...) go to ``BLEU``."""

    def __init__(self, lowercase: bool = False, tokenize: str | None = None, **kwargs: Any) -> None:
        super().__init__(BLEU(lowercase=lowercase, tokenize=tokenize), **kwargs)


class CorpusChrF(_SacreBLEUMetric):
    """Corpus chrF as ``sacrebleu.corpus_chrf`` (``word_order=2`` gives chrF++)."""

    def __init__(self, word_order: int = 0, lowercase: bool = False, **kwargs: Any) -> None:
        super().__init__(CHRF(word_order=word_order, lowercase=lowercase), **kwargs)
