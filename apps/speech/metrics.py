"""Speech metrics: WER/CER for recognition, mel cepstral distortion (MCD) for synthesis.

WER and CER are torchmetrics' corpus-level rates (total edits / total reference words or
characters). ``WordErrorRate`` and ``CharErrorRate`` are re-exported for LightningModules, whose
states are summed tensors and so synchronise across devices; ``wer``/``cer`` score lists at once.
Text normalisation (case, punctuation) is the caller's job: both sides must be normalised alike.

MCD compares a synthesised log-mel spectrogram with a reference one of a different length:

1. Mel cepstrum of every frame: orthonormal DCT-II over the mel bins of the log-mel frame. c0
   (overall log energy, mostly loudness) is dropped and c1..c13 are kept: the spectral envelope,
   as in MFCC front ends; finer coefficients mostly carry pitch harmonics, which MCD is not meant
   to judge.
2. Alignment: dynamic time warping over Euclidean distances between cepstral frames, so a
   prediction spoken faster or slower is compared with the matching reference frames.
3. MCD = mean over the aligned pairs of ``(10 / ln 10) * sqrt(2 * sum_d (c_d - c'_d)^2)`` dB.

Convention: the cepstra come from natural-log *power* mel spectra of this app's ``LogMel``, not
from SPTK mel-generalised cepstra of log amplitude, so values are comparable only between runs of
this same pipeline, never with MCD figures from papers.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.functional.text import char_error_rate, word_error_rate
from torchmetrics.text import CharErrorRate, WordErrorRate

__all__ = ["CharErrorRate", "WordErrorRate", "cer", "dtw_path", "mel_cepstral_distortion", "mel_cepstrum", "wer"]

MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)


def wer(preds: str | list[str], refs: str | list[str]) -> float:
    """Word error rate: word-level edits / reference words, over the whole list."""
    return float(word_error_rate(preds, refs))


def cer(preds: str | list[str], refs: str | list[str]) -> float:
    """Character error rate: character-level edits / reference characters, over the whole list."""
    return float(char_error_rate(preds, refs))


def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def mel_cepstrum(log_mel: torch.Tensor | np.ndarray, n_coeffs: int = 13) -> np.ndarray:
    """Cepstral coefficients c1..c_n_coeffs of log-mel frames [T, n_mels] -> [T, n_coeffs]."""
    log_mel = _numpy(log_mel)
    n_mels = log_mel.shape[1]
    k = np.arange(1, n_coeffs + 1)[:, None]  # c0 skipped
    m = np.arange(n_mels)[None, :]
    dct = math.sqrt(2.0 / n_mels) * np.cos(math.pi * k * (2 * m + 1) / (2 * n_mels))  # orthonormal rows, k >= 1
    return log_mel @ dct.T


def dtw_path(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Monotonic alignment [L, 2] of frames x [N, D] to y [M, D] with the least summed distance.

    Accumulated cost ``A[i, j] = d(i, j) + min(A[i-1, j-1], A[i-1, j], A[i, j-1])``. The left
    neighbour makes a row sequential, but unrolled it is a prefix minimum: with ``S`` the row's
    cumulative distances and ``up_j = min(A[i-1, j-1], A[i-1, j])``,
    ``A[i, j] = S_j + min_{k <= j} (up_k - S_{k-1})``, one ``np.minimum.accumulate`` per row. The
    path is then traced back from the last cell, preferring the diagonal on ties.
    """
    n, m = len(x), len(y)
    acc = np.empty((n, m))
    up = np.full(m, np.inf)
    up[0] = 0.0  # the path starts at (0, 0)
    for i in range(n):
        dist = np.sqrt(((y - x[i]) ** 2).sum(1))
        cum = np.cumsum(dist)
        acc[i] = cum + np.minimum.accumulate(up - (cum - dist))
        up = np.minimum(acc[i], np.concatenate(([np.inf], acc[i, :-1])))
    i, j = n - 1, m - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            step = np.argmin((acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]))
            i, j = ((i - 1, j - 1), (i - 1, j), (i, j - 1))[step]
        path.append((i, j))
    return np.array(path[::-1])


def mel_cepstral_distortion(pred_mel: torch.Tensor | np.ndarray, ref_mel: torch.Tensor | np.ndarray,
                            n_coeffs: int = 13) -> float:
    """MCD in dB between log-mel spectrograms [T1, n_mels] and [T2, n_mels], DTW-aligned."""
    pred, ref = mel_cepstrum(pred_mel, n_coeffs), mel_cepstrum(ref_mel, n_coeffs)
    if len(pred) == 0 or len(ref) == 0:
        raise ValueError("MCD needs at least one frame on each side")
    path = dtw_path(pred, ref)
    diff = pred[path[:, 0]] - ref[path[:, 1]]
    return float(MCD_SCALE * np.sqrt((diff**2).sum(1)).mean())
