"""Log-mel -> waveform with Griffin-Lim (torchaudio): no neural vocoder, nothing to download.

The mel filterbank is inverted by least squares (``InverseMelScale``), then Griffin-Lim iterates
phase estimates for that magnitude spectrogram. Quality is robotic but intelligible, and it runs on a
CPU in a fraction of real time; any mel spectrogram of :class:`~apps.speech.features.LogMel`'s
configuration can be vocoded.
"""
from __future__ import annotations

import torch
import torchaudio

from apps.speech.features import LOG_FLOOR, FeatureConfig


class GriffinLimVocoder(torch.nn.Module):
    def __init__(self, cfg: FeatureConfig | None = None, n_iter: int = 32):
        super().__init__()
        cfg = cfg or FeatureConfig()
        n_stft = cfg.n_fft // 2 + 1
        self.inverse_mel = torchaudio.transforms.InverseMelScale(
            n_stft=n_stft, n_mels=cfg.n_mels, sample_rate=cfg.sample_rate, f_min=cfg.f_min, f_max=cfg.f_max,
            driver="gelsd")  # SVD: with 80 bins over a 512-point FFT the lowest mel filters are empty (rank-deficient)
        self.griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=cfg.n_fft, win_length=cfg.win_length, hop_length=cfg.hop_length, power=2.0, n_iter=n_iter)

    @torch.no_grad()
    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """[T, n_mels] (or [B, T, n_mels]) natural-log power mel -> waveform [S] (or [B, S]) in [-1, 1]."""
        power_mel = (log_mel.exp() - LOG_FLOOR).clamp_min(0).transpose(-1, -2)
        audio = self.griffin_lim(self.inverse_mel(power_mel))
        return audio / audio.abs().amax(-1, keepdim=True).clamp_min(1.0)
