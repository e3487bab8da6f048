"""FastSpeech 2-style non-autoregressive TTS: every frame of an utterance in one pass.

An autoregressive model decides when to stop, one step at a time, and an undertrained one may never
stop; here the length is decided up front, from predicted durations, so synthesis always ends and
costs one forward pass (Ren et al. 2021, FastSpeech 2; Łańcucki 2021, FastPitch):

    phonemes -> embedding -> phoneme encoder (``arch.encoder``: any core mixer, bidirectional)
             -> + pitch and energy embeddings (one value per phoneme, predicted at inference)
             -> length regulator (each phoneme's state repeated for its duration in frames)
             -> frame decoder (``arch.backbone``: any core mixer, bidirectional) -> linear -> post-net

The durations that train the duration predictor and drive the length regulator come from an
alignment learnt with the model (:mod:`apps.speech.tts.alignment`); pitch and energy targets are
measured on the recording (:func:`apps.speech.features.frame_pitch`, the log-mel's energy) and
averaged over each phoneme's frames, as in FastPitch, then standardised per utterance.
Losses: L1 on the frames before and after the post-net (as the autoregressive models), MSE of the
log durations, pitch and energy, the alignment's forward-sum and binarisation losses.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from apps.speech.tts.alignment import (
    NEG, beta_binomial_prior, forward_sum_loss, frame_phonemes, monotonic_alignment, phoneme_average, regulate,
    standardize,
)
from apps.speech.tts.model import PostNet, Synthesis, TTSConfig, VarianceConfig, masked_l1
from core.models import Encoder
from core.nn import TokenEmbedding, padding_mask


class VariancePredictor(nn.Module):
    """Two 1-D convolutions (ReLU, LayerNorm, dropout) and a linear layer: one value per phoneme."""

    def __init__(self, d: int, cfg: VarianceConfig):
        super().__init__()
        c, k = cfg.predictor_channels, cfg.predictor_kernel
        self.convs = nn.ModuleList([nn.Conv1d(d, c, k, padding=k // 2), nn.Conv1d(c, c, k, padding=k // 2)])
        self.norms = nn.ModuleList([nn.LayerNorm(c), nn.LayerNorm(c)])
        self.out, self.p = nn.Linear(c, 1), cfg.predictor_dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # [B, N, D], [B, N] -> [B, N]
        real = mask[..., None].to(x.dtype)
        for conv, norm in zip(self.convs, self.norms):  # padding is zeroed so no conv reads it
            x = F.dropout(norm(F.relu(conv((x * real).transpose(1, 2)).transpose(1, 2))), self.p, self.training)
        return self.out(x).squeeze(-1) * real[..., 0]


class Aligner(nn.Module):
    """Soft alignment of frames to phonemes: log P(phoneme | frame) [B, T, N] from the squared
    distance between a frame query (3 layers over each log-mel frame) and a phoneme key (2
    convolutions over the phoneme embeddings, width 3), times the beta-binomial prior (Badlani et
    al. 2021). Unlike theirs, the query sees one frame only: with a 3-frame context the aligner can
    learn where boundaries are without learning which phoneme sounds how, and satisfies its loss
    with wrong durations (on a planted alignment, tests/apps/speech/test_fastspeech.py: 54 % of the
    durations recovered, against 94 % frame by frame)."""

    temperature = 0.0005  # (Badlani et al.'s: the squared distances are large)

    def __init__(self, d: int, n_mels: int, c: int):
        super().__init__()
        self.keys = nn.Sequential(nn.Conv1d(d, 2 * c, 3, padding=1), nn.ReLU(), nn.Conv1d(2 * c, c, 1))
        self.queries = nn.Sequential(nn.Conv1d(n_mels, 2 * c, 1), nn.ReLU(), nn.Conv1d(2 * c, c, 1),
                                     nn.ReLU(), nn.Conv1d(c, c, 1))

    def forward(self, text, text_lens, mel, mel_lens, prior_scale: float) -> torch.Tensor:
        n, t = text.shape[1], mel.shape[1]
        keys = self.keys(text.transpose(1, 2)).transpose(1, 2)  # [B, N, C]
        queries = self.queries(mel.transpose(1, 2)).transpose(1, 2)  # [B, T, C]
        # |q - k|^2 = |q|^2 + |k|^2 - 2 q.k: a matmul, not a [B, T, N, C] difference tensor (1 GB
        # for a batch of 32 ten-second utterances)
        distance = (queries.pow(2).sum(-1)[:, :, None] + keys.pow(2).sum(-1)[:, None, :]
                    - 2 * queries @ keys.transpose(1, 2)).clamp(min=0)  # [B, T, N]
        log_p = (-self.temperature * distance).masked_fill(~padding_mask(text_lens, n)[:, None], NEG)
        log_p = log_p.log_softmax(-1)
        if prior_scale > 0:
            log_p = log_p + beta_binomial_prior(text_lens, mel_lens, n, t, prior_scale)
        return log_p


class FastSpeech(nn.Module):
    def __init__(self, cfg: TTSConfig):
        super().__init__()
        if cfg.encoder is None:
            raise ValueError("FastSpeech needs an encoder config (the phoneme encoder)")
        if cfg.encoder.d_model != cfg.backbone.d_model:
            raise ValueError(f"encoder d_model {cfg.encoder.d_model} != decoder d_model {cfg.backbone.d_model}")
        self.cfg, d, v = cfg, cfg.backbone.d_model, cfg.variance
        self.embed = TokenEmbedding(cfg.vocab_size, d)
        self.encoder = Encoder(cfg.encoder)
        self.durations = VariancePredictor(d, v)
        self.pitch, self.energy = VariancePredictor(d, v), VariancePredictor(d, v)
        self.pitch_embed, self.energy_embed = nn.Conv1d(1, d, 3, padding=1), nn.Conv1d(1, d, 3, padding=1)
        self.aligner = Aligner(d, cfg.n_mels, v.aligner_channels)
        self.decoder = Encoder(cfg.backbone)
        self.frames = nn.Linear(d, cfg.n_mels)
        self.postnet = PostNet(cfg.n_mels, cfg.postnet_channels)

    def encode(self, phonemes: torch.Tensor, phoneme_lens: torch.Tensor):
        mask = padding_mask(phoneme_lens, phonemes.shape[1])
        x = self.embed(phonemes)
        return x, self.encoder(x, mask=mask), mask

    def add_variance(self, h, pitch, energy):
        """Phoneme states + embeddings of the (target or predicted) pitch and energy [B, N]."""
        embed = lambda conv, v: conv(v[:, None]).transpose(1, 2)  # noqa: E731
        return h + embed(self.pitch_embed, pitch) + embed(self.energy_embed, energy)

    def decode(self, h, durations, t: int | None = None):
        """Phoneme states [B, N, D] and durations [B, N] -> (log-mel before and after the post-net
        [B, T, M], frame lengths [B])."""
        frames, frame_lens = regulate(h, durations, t)
        mask = padding_mask(frame_lens, frames.shape[1])
        pre = self.frames(self.decoder(frames, mask=mask)) * mask[..., None].to(frames.dtype)
        return pre, self.postnet(pre, mask), frame_lens

    def forward(self, phonemes, phoneme_lens, mel, mel_lens, log_f0, voiced, step: int = 0):
        """Teacher-forced losses for recordings ``mel`` [B, T, M] with their per-frame ``log_f0`` and
        ``voiced`` flags [B, T] (:func:`apps.speech.features.frame_pitch`); ``step`` ramps in the
        binarisation loss. Rows need at least as many frames as phonemes (the task refuses a
        batch with one that has fewer, naming its file)."""
        v = self.cfg.variance
        t = mel.shape[1]
        x, h, text_mask = self.encode(phonemes, phoneme_lens)
        log_p = self.aligner(x, phoneme_lens, mel, mel_lens, v.prior_scale)
        durations = monotonic_alignment(log_p, phoneme_lens, mel_lens)
        frame_mask = padding_mask(mel_lens, t)
        on_path = log_p.log_softmax(-1).gather(2, frame_phonemes(durations, t)[..., None]).squeeze(-1)
        binarize = -on_path.masked_fill(~frame_mask, 0.0).sum() / frame_mask.sum()

        voiced_share = phoneme_average(voiced.to(mel.dtype), durations, mel_lens)
        pitch = phoneme_average(log_f0 * voiced, durations, mel_lens) / voiced_share.clamp(min=1e-3)
        pitch = standardize(pitch, text_mask & (voiced_share > 0))  # unvoiced phonemes: 0, the mean
        energy = standardize(phoneme_average(torch.logsumexp(mel, -1), durations, mel_lens), text_mask)

        real = text_mask.to(mel.dtype)
        mse = lambda pred, target: (((pred - target) ** 2) * real).sum() / real.sum()  # noqa: E731
        pre, post, _ = self.decode(self.add_variance(h, pitch, energy), durations, t)
        ramp = min(1.0, step / v.bin_warmup) if v.bin_warmup > 0 else 1.0
        losses = {
            "mel": masked_l1(pre, mel, mel_lens), "postnet": masked_l1(post, mel, mel_lens),
            "duration": v.duration_weight * mse(self.durations(h, text_mask), torch.log1p(durations.to(mel.dtype))),
            "pitch": v.pitch_weight * mse(self.pitch(h, text_mask), pitch),
            "energy": v.energy_weight * mse(self.energy(h, text_mask), energy),
            "align": v.align_weight * forward_sum_loss(log_p, phoneme_lens, mel_lens),
            "binarize": v.bin_weight * ramp * binarize,
        }
        return losses, post

    def plan(self, phonemes: torch.Tensor, phoneme_lens: torch.Tensor, pace: float | torch.Tensor = 1.0):
        """Phonemes [B, N] -> (phoneme states with the predicted pitch and energy added [B, N, D],
        durations [B, N]: at least one frame per real phoneme, 0 for padding; ``pace`` > 1 speaks
        faster). What runs before the length regulator (the ONNX ``encoder`` graph)."""
        _, h, mask = self.encode(phonemes, phoneme_lens)
        frames = torch.expm1(self.durations(h, mask)).clamp(min=0) / pace
        durations = frames.round().clamp(min=1).long() * mask.long()
        return self.add_variance(h, self.pitch(h, mask), self.energy(h, mask)), durations

    def predict(self, phonemes: torch.Tensor, phoneme_lens: torch.Tensor, pace: float = 1.0,
                max_frames: int | None = None):
        """Phonemes [B, N] -> (log-mel [B, T, M], before the post-net [B, T, M], frame lengths [B],
        durations [B, N]); ``max_frames`` caps every utterance's length."""
        h, durations = self.plan(phonemes, phoneme_lens, pace)
        if max_frames is not None:
            durations = cap_durations(durations, max_frames)
        pre, post, frame_lens = self.decode(h, durations)
        return post, pre, frame_lens, durations

    @torch.no_grad()
    def generate(self, phonemes: torch.Tensor, max_steps: int = 1000, prenet_masks=None) -> Synthesis:
        """One phoneme sequence [1, n] -> :class:`Synthesis`, the autoregressive models' interface:
        ``max_steps * reduction`` frames at most, the length cap they share; no stop logits."""
        lens = torch.tensor([phonemes.shape[1]], device=phonemes.device)
        post, pre, frame_lens, _ = self.predict(phonemes, lens, max_frames=max_steps * self.cfg.reduction)
        n = int(frame_lens[0])
        return Synthesis(post[0, :n], pre[0, :n], post.new_zeros(0))

    def synthesize(self, phonemes: torch.Tensor, max_steps: int = 1000, prenet_masks=None) -> torch.Tensor:
        return self.generate(phonemes, max_steps).mel


def cap_durations(durations: torch.Tensor, max_frames: int) -> torch.Tensor:
    """Durations [B, N] trimmed from the end so that no row exceeds ``max_frames`` in all."""
    ends = durations.cumsum(1).clamp(max=max_frames)
    return torch.diff(ends, dim=1, prepend=torch.zeros_like(ends[:, :1]))
