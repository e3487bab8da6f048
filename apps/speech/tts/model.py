"""Autoregressive text-to-speech acoustic models: phonemes -> log-mel frames (+ a stop flag), over
core backbones (the non-autoregressive one is :mod:`apps.speech.tts.fastspeech`).

Two models, both predicting ``r`` frames per step (the reduction factor: fewer, easier steps):

* :class:`DecoderTTS` — decoder-only, in the spirit of Small-E: ONE causal stack reads the phonemes
  and then the frames generated so far, ``[p_1 .. p_n, <audio>, f_1 .. f_m]``, with a segment
  embedding telling text from audio. With a linear-attention or recurrent mixer (``mixer: gla``,
  ``mamba`` ...) the state after the text is fixed-size, so synthesis costs O(1) per frame however
  long the sentence; with attention it is a plain decoder-only Transformer.
* :class:`TransformerTTS` — the encoder-decoder baseline (Li et al. 2019): a phoneme encoder, a
  causal frame decoder with cross-attention. Its cross-attention weights of the first decoder layer
  are trained towards the diagonal by the guided-attention loss (Tachibana et al. 2018), which makes
  the alignment learnable from little data.

Frames enter through a pre-net (two ReLU layers with dropout that stays on at inference, as in
Tacotron 2: it keeps the decoder from copying its input) and leave through a linear layer plus a
convolutional post-net that refines the whole spectrogram. Losses: L1 on the frames before and after
the post-net, binary cross-entropy on the stop flag (weighted: one positive per utterance).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from core.generation import generate_continuous
from core.models import BackboneConfig, Decoder, Encoder
from core.nn import TokenEmbedding, padding_mask


@dataclass
class VarianceConfig:
    """The non-autoregressive model's (:mod:`apps.speech.tts.fastspeech`) own parts: duration, pitch
    and energy predictors and the alignment learnt with the model."""
    predictor_channels: int = 256
    predictor_kernel: int = 3
    predictor_dropout: float = 0.5
    #: width of the aligner's phoneme keys and frame queries
    aligner_channels: int = 80
    #: sharpness of the beta-binomial diagonal prior on the alignment (0: no prior)
    prior_scale: float = 1.0
    duration_weight: float = 0.1
    pitch_weight: float = 0.1
    energy_weight: float = 0.1
    align_weight: float = 1.0
    #: the binarisation loss (soft alignment towards the hard path) ramps from 0 to this weight ...
    bin_weight: float = 1.0
    #: ... over this many optimiser steps (the soft alignment must settle first)
    bin_warmup: int = 2000


@dataclass
class TTSConfig:
    #: phoneme vocabulary (linked from the datamodule by the CLI)
    vocab_size: int = 0
    #: the frame decoder (causal for the autoregressive models, bidirectional for fastspeech)
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(d_model=256, n_layers=6, max_len=2048))
    #: the phoneme encoder of the encoder-decoder baseline and of fastspeech (None: decoder-only model)
    encoder: BackboneConfig | None = None
    n_mels: int = 80
    #: frames predicted per step (autoregressive models; every model caps synthesis at max_steps x reduction frames)
    reduction: int = 2
    prenet_dim: int = 256
    prenet_dropout: float = 0.5
    postnet_channels: int = 256
    stop_weight: float = 5.0
    guided_sigma: float = 0.2
    guided_weight: float = 1.0
    #: the non-autoregressive model's predictors and aligner (unused by the autoregressive models)
    variance: VarianceConfig = field(default_factory=VarianceConfig)


class PreNet(nn.Module):
    def __init__(self, d_in: int, hidden: int, d_out: int, dropout: float):
        super().__init__()
        self.fc1, self.fc2, self.out, self.p = nn.Linear(d_in, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, d_out), dropout

    def forward(self, x, mask: torch.Tensor | None = None):
        """``mask`` [..., 2, hidden] (0 or 1 / (1 - p)) replaces the random dropout of both layers:
        an exported graph takes it as an input, and a parity check feeds both sides the same one."""
        if mask is None:  # dropout always on, see the module docstring
            x = F.dropout(F.relu(self.fc1(x)), self.p, training=True)
            x = F.dropout(F.relu(self.fc2(x)), self.p, training=True)
        else:
            x = F.relu(self.fc1(x)) * mask[..., 0, :]
            x = F.relu(self.fc2(x)) * mask[..., 1, :]
        return self.out(x)

    def sample_masks(self, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Dropout masks [steps, 2, hidden] for :meth:`forward`'s ``mask``, one pair per decoding step."""
        keep = torch.rand(steps, 2, self.fc1.out_features, generator=generator) >= self.p
        return keep / (1 - self.p)


class PostNet(nn.Module):
    """Five 1-D convolutions over the whole predicted spectrogram, added as a residual."""

    def __init__(self, n_mels: int, channels: int, kernel: int = 5, layers: int = 5):
        super().__init__()
        dims = [n_mels] + [channels] * (layers - 1) + [n_mels]
        self.convs = nn.ModuleList(nn.Conv1d(a, b, kernel, padding=kernel // 2) for a, b in zip(dims, dims[1:]))

    def forward(self, mel, mask: torch.Tensor | None = None):  # [B, T, n_mels], [B, T] True for real frames
        """With ``mask``, padding frames are zeroed before every convolution (tanh of a bias is not
        0), so that a padded row gets what it gets alone."""
        keep = None if mask is None else mask[:, None, :].to(mel.dtype)
        x = mel.transpose(1, 2)
        for i, conv in enumerate(self.convs):
            x = conv(x if keep is None else x * keep)
            if i < len(self.convs) - 1:
                x = torch.tanh(x)
        out = mel + x.transpose(1, 2)
        return out if keep is None else out * keep.transpose(1, 2)


def reduce_frames(mel: torch.Tensor, r: int) -> torch.Tensor:
    """[B, T, M] -> [B, ceil(T / r), r * M] (padded with zeros)."""
    b, t, m = mel.shape
    mel = F.pad(mel, (0, 0, 0, (-t) % r))
    return mel.reshape(b, -1, r * m)


def masked_l1(pred: torch.Tensor, mel: torch.Tensor, mel_lens: torch.Tensor) -> torch.Tensor:
    """Mean |pred - mel| over the real frames of targets mel [B, T, M] (``pred`` may run longer)."""
    t = mel.shape[1]
    real = padding_mask(mel_lens, t)[..., None]
    return ((pred[:, :t] - mel).abs() * real).sum() / (real.sum() * mel.shape[2])


def tts_losses(mel_pre, mel_post, stop_logits, mel, mel_lens, r: int, stop_weight: float) -> dict[str, torch.Tensor]:
    """Masked L1 on both spectrograms and the stop flag's BCE, for targets mel [B, T, M] with lengths."""
    steps = stop_logits.shape[1]
    last = (mel_lens - 1).div(r, rounding_mode="floor")  # the step that holds the last real frame
    step_real = torch.arange(steps, device=mel.device)[None] <= last[:, None]
    stop_target = (torch.arange(steps, device=mel.device)[None] == last[:, None]).float()
    bce = F.binary_cross_entropy_with_logits(stop_logits, stop_target, pos_weight=torch.tensor(stop_weight),
                                             reduction="none")
    stop = (bce * step_real).sum() / step_real.sum()
    return {"mel": masked_l1(mel_pre, mel, mel_lens), "postnet": masked_l1(mel_post, mel, mel_lens), "stop": stop}


class _FrameHeads(nn.Module):
    """Shared by both models: pre-net in, frame and stop heads out, post-net."""

    def __init__(self, cfg: TTSConfig, d: int):
        super().__init__()
        r, m = cfg.reduction, cfg.n_mels
        self.prenet = PreNet(r * m, cfg.prenet_dim, d, cfg.prenet_dropout)
        self.frames = nn.Linear(d, r * m)
        self.stop = nn.Linear(d, 1)
        self.postnet = PostNet(m, cfg.postnet_channels)

    def inputs(self, mel: torch.Tensor, r: int) -> torch.Tensor:
        """Decoder inputs for teacher forcing: a zero "go" step, then every step but the last."""
        steps = reduce_frames(mel, r)
        return torch.cat([torch.zeros_like(steps[:, :1]), steps[:, :-1]], 1)

    def outputs(self, h: torch.Tensor, m: int):
        pre = self.frames(h).reshape(h.shape[0], -1, m)  # [B, steps * r, M]
        return pre, self.stop(h).squeeze(-1)

    def generate(self, decoder, state, audio_bias, m: int, max_steps: int,
                 prenet_masks: torch.Tensor | None = None) -> "Synthesis":
        """Free-running synthesis from a decoder ``state`` (text already read): each step feeds the
        previous step's frames through the pre-net until the stop flag fires.
        ``prenet_masks`` [max_steps, 2, prenet_dim] fixes the pre-net's dropout (default: random)."""
        start = torch.zeros(1, 1, self.frames.out_features, device=self.frames.weight.device)

        def step(i, step_in, state):
            mask = None if prenet_masks is None else prenet_masks[i].to(step_in)
            h, state = decoder(self.prenet(step_in, mask) + audio_bias, state=state)
            pre, stop = self.outputs(h, m)
            return pre, stop[:, -1], state

        out = generate_continuous(step, start, state, max_steps,
                                  feedback=lambda pre: pre.reshape(pre.shape[0], 1, -1))
        pre = out.outputs
        return Synthesis(self.postnet(pre)[0], pre[0], out.stop_logits[0])


@dataclass
class Synthesis:
    """One synthesized utterance: the log-mel after the post-net [T, M], the decoder's frames
    before it [T, M], and the stop logit of every step [T / r]."""
    mel: torch.Tensor
    frames: torch.Tensor
    stop_logits: torch.Tensor


class _Synthesizer:
    def synthesize(self, phonemes: torch.Tensor, max_steps: int = 1000,
                   prenet_masks: torch.Tensor | None = None) -> torch.Tensor:
        """One phoneme sequence [1, n] -> log-mel [T, n_mels] (see :meth:`generate`)."""
        return self.generate(phonemes, max_steps, prenet_masks).mel


class DecoderTTS(_Synthesizer, nn.Module):
    def __init__(self, cfg: TTSConfig):
        super().__init__()
        self.cfg, d = cfg, cfg.backbone.d_model
        self.embed = TokenEmbedding(cfg.vocab_size, d)
        self.segment = nn.Embedding(2, d)  # 0: text, 1: audio
        self.decoder = Decoder(cfg.backbone)
        self.heads = _FrameHeads(cfg, d)

    def forward(self, phonemes, phoneme_lens, mel, mel_lens) -> dict[str, torch.Tensor]:
        """Teacher-forced losses. Texts are right-padded; each row's audio starts right after its own
        text, so rows are packed as [text, audio, padding] (the causal stack never sees padding first)."""
        cfg = self.cfg
        text = self.embed(phonemes) + self.segment.weight[0]
        audio = self.heads.prenet(self.heads.inputs(mel, cfg.reduction)) + self.segment.weight[1]
        x, audio_at = _pack(text, phoneme_lens, audio)
        h, _ = self.decoder(x)
        h_audio = h.gather(1, audio_at[..., None].expand(-1, -1, h.shape[2]))
        pre, stop = self.heads.outputs(h_audio, cfg.n_mels)
        post = self.heads.postnet(pre)
        return tts_losses(pre, post, stop, mel, mel_lens, cfg.reduction, cfg.stop_weight), post

    @torch.no_grad()
    def generate(self, phonemes: torch.Tensor, max_steps: int = 1000,
                 prenet_masks: torch.Tensor | None = None) -> Synthesis:
        """One phoneme sequence [1, n]: prefill the text, then one step per ``reduction`` frames
        with the decoder's state, until the stop flag fires."""
        cfg, p = self.cfg, self.heads.frames.weight
        state = self.decoder.init_state(1, p.device, p.dtype)
        _, state = self.decoder(self.embed(phonemes) + self.segment.weight[0], state=state)
        return self.heads.generate(self.decoder, state, self.segment.weight[1], cfg.n_mels, max_steps, prenet_masks)


def _pack(text: torch.Tensor, text_lens: torch.Tensor, audio: torch.Tensor):
    """Rows [text_i (len n_i), audio_i, padding]: returns the packed [B, N + S, D] sequence and, per
    row, the positions of its audio steps [B, S]."""
    b, n, d = text.shape
    s = audio.shape[1]
    x = text.new_zeros(b, n + s, d)
    x[:, :n] = text * padding_mask(text_lens, n)[..., None]
    audio_at = text_lens[:, None] + torch.arange(s, device=text.device)[None]  # [B, S]
    x = x.scatter(1, audio_at[..., None].expand(-1, -1, d), audio)
    return x, audio_at


class TransformerTTS(_Synthesizer, nn.Module):
    def __init__(self, cfg: TTSConfig):
        super().__init__()
        if cfg.encoder is None:
            raise ValueError("TransformerTTS needs an encoder config")
        self.cfg, d = cfg, cfg.backbone.d_model
        self.embed = TokenEmbedding(cfg.vocab_size, d)
        self.encoder = Encoder(cfg.encoder)
        self.decoder = Decoder(cfg.backbone, cross_attention=True)
        self.heads = _FrameHeads(cfg, d)

    def encode(self, phonemes, phoneme_lens):
        mask = padding_mask(phoneme_lens, phonemes.shape[1])
        memory = self.encoder(self.embed(phonemes), mask=mask)
        return self.decoder.memory_states(memory, mask), mask

    def forward(self, phonemes, phoneme_lens, mel, mel_lens) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        memory, text_mask = self.encode(phonemes, phoneme_lens)
        x = self.heads.prenet(self.heads.inputs(mel, cfg.reduction))
        with self.decoder.stack.layers[0].cross.recording() as captured:
            h, _ = self.decoder(x, memory=memory)
        pre, stop = self.heads.outputs(h, cfg.n_mels)
        post = self.heads.postnet(pre)
        losses = tts_losses(pre, post, stop, mel, mel_lens, cfg.reduction, cfg.stop_weight)
        steps = -(-mel_lens).div(cfg.reduction, rounding_mode="floor")  # ceil
        losses["guided"] = cfg.guided_weight * guided_attention_loss(captured[0], phoneme_lens, steps, cfg.guided_sigma)
        return losses, post

    @torch.no_grad()
    def generate(self, phonemes: torch.Tensor, max_steps: int = 1000,
                 prenet_masks: torch.Tensor | None = None) -> Synthesis:
        cfg, p = self.cfg, self.heads.frames.weight
        memory, _ = self.encode(phonemes, torch.tensor([phonemes.shape[1]], device=p.device))
        state = self.decoder.init_state(1, p.device, p.dtype, memory)
        return self.heads.generate(self.decoder, state, 0.0, cfg.n_mels, max_steps, prenet_masks)


def guided_attention_loss(weights, text_lens, steps, sigma: float) -> torch.Tensor:
    """Tachibana et al. 2018: attention far from the diagonal n/N ~ t/T is penalised by
    1 - exp(-(n/N - t/T)^2 / (2 sigma^2)), averaged over the real (step, phoneme) pairs."""
    b, _, t, n = weights.shape
    tt = torch.arange(t, device=weights.device)[None, :, None] / steps[:, None, None]
    nn_ = torch.arange(n, device=weights.device)[None, None, :] / text_lens[:, None, None]
    penalty = 1 - torch.exp(-((nn_ - tt) ** 2) / (2 * sigma**2))  # [B, T, N]
    real = padding_mask(steps, t)[:, :, None] & padding_mask(text_lens, n)[:, None, :]
    return (weights * (penalty * real)[:, None]).sum() / (real.sum() * weights.shape[1])
