"""The TTS LightningModule: phonemes -> log-mel frames (the non-autoregressive FastSpeech 2-style
model, decoder-only over any core backbone, or the Transformer-TTS encoder-decoder baseline) ->
Griffin-Lim; losses from :mod:`apps.speech.tts.model` and :mod:`apps.speech.tts.fastspeech`,
free-running mel-cepstral distortion on validation.
"""
from __future__ import annotations

import dataclasses

import torch

from apps.speech.features import FeatureConfig, LogMel, frame_pitch
from apps.speech.metrics import mel_cepstral_distortion
from apps.speech.tts.fastspeech import FastSpeech
from apps.speech.tts.model import DecoderTTS, TransformerTTS, TTSConfig
from core.errors import DataError, UserError
from core.models import BackboneConfig
from core.training import BaseTask, OptimConfig, as_config


MODELS = {"fastspeech": FastSpeech, "decoder": DecoderTTS, "transformer": TransformerTTS}


class SpeechSynthesizer(BaseTask):
    """TTS: phonemes -> log-mel (non-autoregressive, decoder-only or encoder-decoder) -> Griffin-Lim.

    Validation synthesizes up to ``mcd_utterances`` utterances of each validation epoch free-running
    (no teacher forcing) and logs their mel-cepstral distortion against the recordings."""

    runtime_options = ("max_steps", "mcd_utterances")

    def __init__(self, arch: TTSConfig = TTSConfig(), architecture: str = "decoder",
                 features: FeatureConfig = FeatureConfig(), optim: OptimConfig | None = None,
                 max_steps: int = 1000, mcd_utterances: int = 2):
        """``architecture``: fastspeech (non-autoregressive: every frame in one pass from predicted
        durations, :mod:`apps.speech.tts.fastspeech`; ``arch.encoder`` is its phoneme encoder,
        ``arch.backbone`` its frame decoder, ``arch.variance`` its predictors and aligner), decoder
        (decoder-only over phonemes + frames; pick a recurrent or linear-attention
        ``arch.backbone.mixer`` for O(1) memory per frame) or transformer (encoder-decoder baseline
        with guided attention; ``arch.encoder`` configures its phoneme encoder).
        ``arch.vocab_size`` is linked from the datamodule by the CLI."""
        super().__init__(optim)
        cfg, features = as_config(TTSConfig, arch), as_config(FeatureConfig, features)
        if cfg.vocab_size <= 0:
            raise ValueError("arch.vocab_size must be set (the CLI links it from the data)")
        if architecture not in MODELS:
            raise UserError(f"architecture={architecture!r}; expected one of {', '.join(MODELS)}")
        if cfg.n_mels != features.n_mels:
            raise UserError(f"arch.n_mels={cfg.n_mels} but features.n_mels={features.n_mels}; they must agree")
        if architecture != "decoder" and cfg.encoder is None:
            cfg = dataclasses.replace(cfg, encoder=BackboneConfig())
        elif architecture == "decoder" and cfg.encoder is not None:
            raise UserError("arch.encoder is for architecture: transformer; the decoder-only model has none")
        self.cfg, self.features = cfg, features
        self.logmel = LogMel(features)
        self.model = MODELS[architecture](cfg)
        self.max_steps, self.mcd_utterances = max_steps, mcd_utterances
        self._mcd: list[float] = []

    @property
    def tokenizer(self):
        return self.tokenizers["phonemes"]

    def losses(self, batch):
        mel, mel_lens = self.logmel(batch["audio"], batch["audio_lens"])
        if isinstance(self.model, FastSpeech):
            short = [p for p, f, n in zip(batch["paths"], mel_lens.tolist(), batch["target_lens"].tolist()) if f < n]
            if short:  # the monotonic alignment gives every phoneme a frame
                raise DataError(f"{short[0]}: fewer spectrogram frames than phonemes ({len(short)} such recordings "
                                "in this batch); the non-autoregressive model needs a frame per phoneme")
            log_f0, voiced = frame_pitch(batch["audio"], batch["audio_lens"], self.features)
            losses, _ = self.model(batch["targets"], batch["target_lens"], mel, mel_lens, log_f0, voiced,
                                   step=self.global_step)
        else:
            losses, _ = self.model(batch["targets"], batch["target_lens"], mel, mel_lens)
        self._mel = (mel, mel_lens)  # the recordings' frames, reused by validation's MCD
        return {"loss": sum(losses.values()), **losses}

    def batch_size(self, batch) -> int:
        return len(batch["texts"])

    def validation_step(self, batch, batch_idx):
        super().validation_step(batch, batch_idx)
        mel, mel_lens = self._mel
        for i in range(min(self.batch_size(batch), self.mcd_utterances - len(self._mcd))):
            pred = self.model.synthesize(batch["targets"][i: i + 1, : batch["target_lens"][i]], self.max_steps)
            self._mcd.append(mel_cepstral_distortion(pred, mel[i, : mel_lens[i]]))

    def on_validation_epoch_end(self) -> None:
        if self._mcd:
            self.log("val/mcd", sum(self._mcd) / len(self._mcd), prog_bar=True)
        self._mcd = []

    # inference
    @torch.no_grad()
    def synthesize_mel(self, text: str) -> torch.Tensor:
        from apps.speech.phonemes import phonemize_one

        ids = self.tokenizer.encode(phonemize_one(text))
        return self.model.eval().synthesize(torch.tensor([ids], device=self.device), self.max_steps)

    @torch.no_grad()
    def synthesize(self, text: str) -> torch.Tensor:
        """Text -> waveform [S] at the feature sample rate (Griffin-Lim)."""
        from apps.speech.tts.vocoder import GriffinLimVocoder

        return GriffinLimVocoder(self.features)(self.synthesize_mel(text).cpu())
