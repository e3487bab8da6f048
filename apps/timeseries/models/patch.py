"""Any core backbone as a forecaster: patches of one channel's history are the tokens (PatchTST,
Nie et al. 2023), with reversible instance normalisation and channel independence.

Channel independence: every channel is its own sequence through the same weights ([B, L, C] ->
[B * C, L, 1]), which is what lets PatchTST beat channel-mixing Transformers on long horizons
and makes one model serve any number of channels. The backbone is a config line, so
``backbone.mixer: mamba`` is a Mamba forecaster and ``mlstm`` an xLSTM one (the KARMA /
xLSTMTime set-ups).

Two ways to reach the horizon:

* ``direct`` (PatchTST): a bidirectional encoder over overlapping patches, then one linear head
  from all patch features to every future value at once.
* ``autoregressive``: a causal decoder over non-overlapping patches predicts the next patch; the
  horizon is written patch by patch, each prediction fed back as the next input, with the
  backbone's recurrent state (:func:`core.generation.generate_continuous`). Trained with teacher
  forcing on the true future patches.

Outputs are ``[B, horizon, C, head.size]`` in the units of the input (RevIN undone).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from apps.timeseries.models.config import ForecastConfig
from apps.timeseries.models.revin import RevIN
from core.generation import generate_continuous
from core.models import Decoder, Encoder
from core.nn import Dropout, PatchEmbed1d


class PatchForecaster(nn.Module):
    def __init__(self, cfg: ForecastConfig, head_size: int):
        super().__init__()
        self.cfg, self.head_size = cfg, head_size
        d, p = cfg.backbone.d_model, cfg.patch
        self.revin = RevIN(cfg.channels_in) if cfg.revin else None
        self.drop = Dropout(cfg.backbone.dropout)
        if cfg.decoding == "direct":
            self.embed = PatchEmbed1d(1, d, p, cfg.stride, pad_end=True)
            self.encoder = Encoder(cfg.backbone)
            n = self.embed.num_patches(cfg.lookback)
            self.head = nn.Sequential(nn.Flatten(1), Dropout(cfg.head_dropout), nn.Linear(n * d, cfg.horizon * head_size))
        else:
            self.embed = nn.Linear(p, d)
            self.decoder = Decoder(cfg.backbone)
            self.head = nn.Linear(d, p * head_size)

    # ------------------------------------------------------------------ shared

    def _channels(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, C] -> [B * C, T]: each channel its own series."""
        return x.permute(0, 2, 1).reshape(-1, x.shape[1])

    def _finish(self, out: torch.Tensor, batch: int, stats, head) -> torch.Tensor:
        """[B * C, H, size] -> [B, H, C, size] in input units."""
        out = out.reshape(batch, -1, *out.shape[1:]).permute(0, 2, 1, 3)
        if self.revin is not None:
            shift, scale = self.revin.scale(stats)
            out = head.rescale(out, shift, scale)  # [B, 1, C] each
        return out

    def forward(self, past: torch.Tensor, head, future: torch.Tensor | None = None, past_time=None,
                future_time=None) -> torch.Tensor:
        """``past`` [B, L, C] -> raw outputs [B, H, C, size]. ``future`` [B, H, C] (training an
        autoregressive model) is fed as teacher-forced inputs; without it the model writes its own."""
        stats = None
        if self.revin is not None:
            past, stats = self.revin.normalize(past)
            if future is not None:
                future = (future - stats[0]) / stats[1]
                if self.revin.weight is not None:
                    future = future * self.revin.weight + self.revin.bias
        batch = past.shape[0]
        if self.cfg.decoding == "direct":
            h = self.encoder(self.drop(self.embed(self._channels(past)[..., None])))
            out = self.head(h).reshape(h.shape[0], self.cfg.horizon, self.head_size)
        else:
            out = self._autoregressive(self._channels(past), None if future is None else self._channels(future), head)
        return self._finish(out, batch, stats, head)

    # ------------------------------------------------------------------ autoregressive

    def _autoregressive(self, past: torch.Tensor, future: torch.Tensor | None, head) -> torch.Tensor:
        """[N, L] (normalised) -> [N, H, size], patch by patch."""
        p, horizon = self.cfg.patch, self.cfg.horizon
        steps = math.ceil(horizon / p)
        usable = (past.shape[1] // p) * p  # the latest whole patches of the history
        history = past[:, past.shape[1] - usable:].reshape(past.shape[0], -1, p)
        if future is not None:  # teacher forcing: history patches, then the true future patches but the last
            known = future[:, : (steps - 1) * p].reshape(past.shape[0], -1, p)
            h, _ = self.decoder(self.drop(self.embed(torch.cat([history, known], 1))))
            out = self.head(h[:, history.shape[1] - 1:])  # the outputs that predict future patches
            return out.reshape(past.shape[0], steps * p, self.head_size)[:, :horizon]
        state = self.decoder.init_state(past.shape[0], past.device, past.dtype)
        h, state = self.decoder(self.embed(history[:, :-1]), state=state) if history.shape[1] > 1 else (None, state)

        def step(_, x, state):
            h, state = self.decoder(self.embed(x), state=state)
            return self.head(h).reshape(x.shape[0], 1, p, self.head_size), None, state

        def feedback(raw):  # the point forecast of a patch is the next input
            return head.point(raw).reshape(raw.shape[0], 1, p)

        run = generate_continuous(step, history[:, -1:], state, steps, stop_threshold=None, feedback=feedback)
        return run.outputs.reshape(past.shape[0], steps * p, self.head_size)[:, :horizon]
