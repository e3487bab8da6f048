import time

import numpy as np
import pytest
import torch

from apps.speech.metrics import (CharErrorRate, WordErrorRate, cer, dtw_path, mel_cepstral_distortion, mel_cepstrum,
                                 wer)
from apps.speech.plot import plot_spectrograms


def test_wer_and_cer_on_known_strings():
    assert wer(["the cat sat down"], ["the cat sat up"]) == pytest.approx(0.25)
    assert wer("a b c", "a b c") == pytest.approx(0.0)
    # Corpus level: (1 deletion + 1 insertion) / (2 + 3) reference words.
    assert wer(["hello", "a b c d"], ["hello world", "a b c"]) == pytest.approx(2 / 5)
    assert cer(["abcd"], ["abce"]) == pytest.approx(0.25)
    metric = WordErrorRate()  # the streaming objects agree with the functions
    metric.update(["the cat sat down"], ["the cat sat up"])
    metric.update(["x"], ["x"])
    assert metric.compute().item() == pytest.approx(1 / 5)
    char_metric = CharErrorRate()
    char_metric.update(["abcd"], ["abce"])
    assert char_metric.compute().item() == pytest.approx(0.25)


def test_mel_cepstrum_is_orthonormal_dct_without_c0():
    rng = np.random.default_rng(0)
    log_mel = rng.normal(size=(5, 20))
    ceps = mel_cepstrum(log_mel, n_coeffs=19)
    assert ceps.shape == (5, 19)
    # The full orthonormal DCT preserves energy: c0 = sum / sqrt(n) carries the rest.
    c0 = log_mel.sum(1) / np.sqrt(20)
    np.testing.assert_allclose((ceps**2).sum(1) + c0**2, (log_mel**2).sum(1))
    np.testing.assert_allclose(mel_cepstrum(log_mel + 3.0, 19), ceps, atol=1e-12)  # a gain only moves c0


def naive_dtw_cost(x: np.ndarray, y: np.ndarray) -> float:
    n, m = len(x), len(y)
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d = np.linalg.norm(x[i - 1] - y[j - 1])
            acc[i, j] = d + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    return acc[n, m]


@pytest.mark.parametrize("n,m", [(1, 6), (7, 7), (9, 4), (13, 21)])
def test_dtw_path_is_optimal_and_monotonic(n, m):
    rng = np.random.default_rng(n * m)
    x, y = rng.normal(size=(n, 3)), rng.normal(size=(m, 3))
    path = dtw_path(x, y)
    assert path[0].tolist() == [0, 0] and path[-1].tolist() == [n - 1, m - 1]
    steps = np.diff(path, axis=0)
    assert ((steps >= 0) & (steps <= 1)).all() and (steps.sum(1) >= 1).all()
    cost = np.linalg.norm(x[path[:, 0]] - y[path[:, 1]], axis=1).sum()
    assert cost == pytest.approx(naive_dtw_cost(x, y))


def test_mcd_zero_for_identical_and_time_stretched_inputs():
    torch.manual_seed(0)
    ref = torch.randn(50, 80)
    # zero up to rounding: the DCT's float sums round differently on AVX-512/AMX and AVX2 CPUs
    assert mel_cepstral_distortion(ref, ref) == pytest.approx(0.0, abs=1e-6)
    stretched = ref.repeat_interleave(2, dim=0)  # the same speech, twice as slow
    assert mel_cepstral_distortion(stretched, ref) == pytest.approx(0.0, abs=1e-6)
    assert mel_cepstral_distortion(ref, stretched) == pytest.approx(0.0, abs=1e-6)


def test_mcd_grows_with_noise_and_matches_formula():
    torch.manual_seed(0)
    ref = torch.randn(40, 80)
    scores = [mel_cepstral_distortion(ref + s * torch.randn(40, 80), ref) for s in (0.1, 0.5, 2.0)]
    assert 0 < scores[0] < scores[1] < scores[2]
    # One frame each: MCD is exactly (10 / ln 10) * sqrt(2 * sum of squared cepstral differences).
    a, b = torch.randn(1, 80), torch.randn(1, 80)
    diff = mel_cepstrum(a) - mel_cepstrum(b)
    expected = 10 / np.log(10) * np.sqrt(2 * (diff**2).sum())
    assert mel_cepstral_distortion(a, b) == pytest.approx(expected)


def test_mcd_is_fast_on_long_utterances():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(1000, 80)), rng.normal(size=(900, 80))
    start = time.perf_counter()
    assert mel_cepstral_distortion(a, b) > 0
    assert time.perf_counter() - start < 1.0


def test_plot_spectrograms_writes_png(tmp_path):
    torch.manual_seed(0)
    path = plot_spectrograms(torch.randn(60, 80), torch.randn(75, 80), tmp_path / "sub" / "mel.png", title="utt 1")
    data = path.read_bytes()
    assert path == tmp_path / "sub" / "mel.png" and len(data) > 1000
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert [p.name for p in path.parent.iterdir()] == ["mel.png"]  # no temp file left behind
