"""core.metrics: Levenshtein distance and corpus-level error rates."""
import pytest

from core.metrics import ErrorRate, edit_distance


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["A", "B"]) == 2
    assert edit_distance(["R", "EH1", "D"], ["R", "IY1", "D"]) == 1
    assert edit_distance(["AY1", "DH", "ER0"], ["AY1", "DH", "ER0"]) == 0


def test_error_rate_is_corpus_level():
    """Edits summed over the corpus / reference units summed: not a mean of per-line rates."""
    cer = ErrorRate(list)
    cer.update(["abc", "x"], ["abd", "xyzw"])  # 1 edit / 3 chars, 3 edits / 4 chars
    assert cer.compute().item() == pytest.approx(100 * 4 / 7)
    lines = ErrorRate(lambda text: text.split("\n"), scale=1.0)
    lines.update(["a\nb\nc"], ["a\nB\nc"])
    assert lines.compute().item() == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="hypotheses"):
        cer.update(["a"], [])
