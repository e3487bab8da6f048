"""Streaming transcription: audio in chunks, a partial transcript after each, and at the end the
same transcript as offline decoding of the whole recording.

That equality holds because every stage of a ``streaming: true`` model is causal or local:

* log-mel frame i covers samples [i*hop, i*hop + n_fft) (no centring), so a frame is computed once
  its samples have arrived, and never changes afterwards;
* global CMVN is per frame;
* the conv subsampling's output j reads frames [4j, 4j + 6]: it is computed once frame 4j + 6 exists,
  from a window that starts on a multiple of 4 (the stride), so it equals the offline output;
* the encoder is a causal core stack: new frames continue its per-layer state (a KV cache for
  attention, a fixed-size state for recurrent mixers);
* greedy decoding (CTC or transducer) only ever looks at frames it has.

Latency is one chunk plus the front end's look-ahead: n_fft samples and 6 feature frames (~90 ms).
"""
from __future__ import annotations

import torch

from apps.speech.asr.model import BLANK
from apps.speech.asr.decoding import ctc_collapse, transducer_greedy_frames
from apps.speech.features import ConvSubsampling
from apps.speech.asr.task import SpeechRecognizer
from core.errors import UserError


class StreamingTranscriber:
    """Feed chunks of a waveform (1-D float tensors at the model's rate) with :meth:`feed`; each call
    returns the transcript so far. Only greedy decoding streams (a beam would revise its past)."""

    def __init__(self, recognizer: SpeechRecognizer):
        model = recognizer.model
        if not model.cfg.streaming:
            raise UserError("this model's encoder is bidirectional: train it with model.streaming: true to stream")
        self.recognizer, self.model = recognizer.eval(), model
        self.hop, self.n_fft = model.logmel.config.hop_length, model.logmel.config.n_fft
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.samples = torch.zeros(0, device=self.device)
        self.frames = torch.zeros(0, model.cfg.features.n_mels, device=self.device)  # normalised log-mel
        self.n_out = 0  # subsampled frames already encoded
        self.encoder_state = model.encoder.init_state(1, self.device, self.dtype)
        self.labels: list[int] = []
        if recognizer.head == "transducer":
            self.g, self.pred_state = model.start(1)
        else:
            self.prev = BLANK

    @torch.no_grad()
    def feed(self, chunk: torch.Tensor) -> str:
        self.samples = torch.cat([self.samples, chunk.to(self.device).float()])
        self._new_features()
        self._new_outputs()
        return self.recognizer.tokenizer.decode(self.labels)

    def _new_features(self) -> None:
        """Log-mel frames whose samples have all arrived; the samples no later frame needs are dropped."""
        total = len(self.samples)
        if total < self.n_fft:
            return
        n = 1 + (total - self.n_fft) // self.hop
        feats, _ = self.model.logmel(self.samples[None], torch.tensor([total], device=self.device))
        self.frames = torch.cat([self.frames, self.model.cmvn(feats[0, :n])])
        self.samples = self.samples[n * self.hop:]

    def _new_outputs(self) -> None:
        """Subsampled frames whose 7-frame windows are complete, through the encoder and the decoder.
        ``self.frames`` starts at feature frame 4 * n_out, the first one a new output reads."""
        available = int(ConvSubsampling.output_length(torch.tensor(4 * self.n_out + len(self.frames))))
        k = available - self.n_out
        if k <= 0:
            return
        window = self.frames[: 4 * k + 3]  # exactly k outputs (see ConvSubsampling.output_length)
        x, _ = self.model.subsampling(window[None], torch.tensor([len(window)], device=self.device))
        h, self.encoder_state = self.model.encoder(x, state=self.encoder_state)
        self.frames, self.n_out = self.frames[4 * k:], available
        if self.recognizer.head == "ctc":
            self.prev = ctc_collapse(self.model.ctc_head(h[0]).argmax(-1).tolist(), self.labels, self.prev)
        else:
            self.g, self.pred_state = transducer_greedy_frames(self.model, self.model.joint_enc(h[0]), self.g,
                                                               self.pred_state, self.labels)
