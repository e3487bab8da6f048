"""Phoneme-to-frame alignment for the non-autoregressive TTS model, learnt with the model itself.

A non-autoregressive model needs each phoneme's duration in frames. Rather than an external aligner
(Montreal Forced Aligner, a teacher TTS), the model learns one (Badlani et al. 2021, "One TTS
Alignment To Rule Them All", as used by FastPitch and NeMo):

* a soft alignment: for every frame, a softmax over the phonemes of the negative distance between
  a frame query and a phoneme key, multiplied by a beta-binomial prior that favours the diagonal
  (:func:`beta_binomial_prior`) so that training finds the alignment in a few hundred steps;
* the forward-sum loss (:func:`forward_sum_loss`): the probability of all monotonic paths through
  the soft alignment, which is CTC's loss with phoneme ``i`` as the ``i``-th label;
* a hard alignment (:func:`monotonic_alignment`): the most likely monotonic path, each phoneme at
  least one frame (Glow-TTS's monotonic alignment search), whose frame counts are the durations
  that train the duration predictor and expand the phonemes (:func:`regulate`).

Every function takes padded batches with lengths; padding never changes a real row's result.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from core.nn import padding_mask

#: stands for log(0): -inf would make CTC's and log_softmax's gradients NaN
NEG = -1e9


def beta_binomial_prior(text_lens: torch.Tensor, frame_lens: torch.Tensor, n: int, t: int,
                        scale: float = 1.0) -> torch.Tensor:
    """log P(phoneme k | frame j) [B, t, n] under BetaBinomial(N - 1, scale * j, scale * (T - j + 1)),
    j = 1..T: frame j of T expects phoneme ~ (N - 1) j / T. Padding rows and columns hold 0."""
    k = torch.arange(n, device=text_lens.device, dtype=torch.float32)[None, None, :]
    j = torch.arange(1, t + 1, device=text_lens.device, dtype=torch.float32)[None, :, None]
    big_n = (text_lens.float() - 1).clamp(min=0)[:, None, None]
    big_t = frame_lens.float()[:, None, None]
    a, b = scale * j, scale * (big_t - j + 1).clamp(min=1e-3)
    lbeta = lambda x, y: torch.lgamma(x) + torch.lgamma(y) - torch.lgamma(x + y)  # noqa: E731
    n_minus_k = (big_n - k).clamp(min=0)
    log_p = (torch.lgamma(big_n + 1) - torch.lgamma(k + 1) - torch.lgamma(n_minus_k + 1)
             + lbeta(k + a, n_minus_k + b) - lbeta(a, b))
    real = padding_mask(frame_lens, t)[:, :, None] & padding_mask(text_lens, n)[:, None, :]
    return log_p.masked_fill(~real, 0.0)


def forward_sum_loss(log_p: torch.Tensor, text_lens: torch.Tensor, frame_lens: torch.Tensor,
                     blank_log_p: float = -1.0) -> torch.Tensor:
    """-log P(all monotonic paths) per phoneme, batch mean, for alignment scores ``log_p`` [B, T, N]
    (padding phonemes masked). CTC with labels 1..N over frames, plus a blank of fixed score that
    lets a frame belong to no phoneme (NeMo's choice, -1): it keeps the loss finite early on."""
    b, _, n = log_p.shape
    log_p = F.pad(log_p, (1, 0), value=blank_log_p)
    real = F.pad(padding_mask(text_lens, n), (1, 0), value=True)
    log_p = log_p.masked_fill(~real[:, None, :], NEG).log_softmax(-1)
    labels = torch.arange(1, n + 1, device=log_p.device)[None].expand(b, n)
    return F.ctc_loss(log_p.transpose(0, 1), labels, frame_lens, text_lens, blank=0, reduction="mean",
                      zero_infinity=True)


@torch.no_grad()
def monotonic_alignment(log_p: torch.Tensor, text_lens: torch.Tensor, frame_lens: torch.Tensor) -> torch.Tensor:
    """The most likely monotonic path through ``log_p`` [B, T, N] that starts at (frame 0, phoneme
    0), ends at (T_b - 1, N_b - 1) and moves on by at most one phoneme per frame -> durations [B, N]
    (frames per phoneme; sums to ``frame_lens``; every real phoneme >= 1 frame where T_b >= N_b).
    Viterbi over frames, vectorised over the batch and the phonemes; ties keep the phoneme."""
    b, t_max, n_max = log_p.shape
    log_p = log_p.float().masked_fill(~padding_mask(text_lens, n_max)[:, None, :], NEG)
    score = torch.full((b, n_max), NEG, device=log_p.device)
    score[:, 0] = log_p[:, 0, 0]
    advanced = torch.zeros(b, t_max, n_max, dtype=torch.bool, device=log_p.device)
    for t in range(1, t_max):
        previous = F.pad(score[:, :-1], (1, 0), value=NEG)  # the score of phoneme n - 1 at t - 1
        advanced[:, t] = previous > score
        score = torch.maximum(score, previous) + log_p[:, t]
    rows = torch.arange(b, device=log_p.device)
    phoneme = (text_lens - 1).clamp(min=0)
    durations = torch.zeros(b, n_max, dtype=torch.long, device=log_p.device)
    for t in range(t_max - 1, -1, -1):
        active = t < frame_lens
        durations[rows, phoneme] += active.long()
        phoneme = (phoneme - (advanced[rows, t, phoneme] & active).long()).clamp(min=0)
    return durations


def frame_phonemes(durations: torch.Tensor, t: int) -> torch.Tensor:
    """The phoneme each of ``t`` frames belongs to [B, t] (frames past the last phoneme: the last
    index). A comparison, not ``repeat_interleave``, so it batches and exports to ONNX."""
    ends = durations.cumsum(1)  # [B, N]
    index = (torch.arange(t, device=durations.device)[None, :, None] >= ends[:, None, :]).sum(-1)
    return index.clamp(max=durations.shape[1] - 1)


def regulate(x: torch.Tensor, durations: torch.Tensor, t: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """FastSpeech's length regulator: phoneme states [B, N, D] repeated ``durations`` [B, N] times
    -> frame states [B, T, D] (zero past each row's total) and the totals [B]."""
    frame_lens = durations.sum(1)
    t = int(frame_lens.max()) if t is None else t
    index = frame_phonemes(durations, t)
    y = x.gather(1, index[..., None].expand(-1, -1, x.shape[2]))
    return y * padding_mask(frame_lens, t)[..., None].to(y.dtype), frame_lens


def phoneme_average(values: torch.Tensor, durations: torch.Tensor, frame_lens: torch.Tensor) -> torch.Tensor:
    """Mean of per-frame ``values`` [B, T] over each phoneme's frames -> [B, N] (0 for none)."""
    b, t = values.shape
    index = frame_phonemes(durations, t)
    real = padding_mask(frame_lens, t).to(values.dtype)
    sums = values.new_zeros(b, durations.shape[1]).scatter_add(1, index, values * real)
    return sums / durations.clamp(min=1).to(values.dtype)


def standardize(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-row z-scores of [B, N] over the entries where ``mask`` [B, N] is True (the others -> 0):
    pitch and energy become contours relative to the utterance, one scale for every speaker and
    recording level."""
    real = mask.to(values.dtype)
    count = real.sum(1, keepdim=True).clamp(min=1)
    mean = (values * real).sum(1, keepdim=True) / count
    std = (((values - mean) ** 2 * real).sum(1, keepdim=True) / count).sqrt().clamp(min=1e-3)
    return (values - mean) / std * real
