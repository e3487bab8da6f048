"""The ASR LightningModule: any core backbone as the audio encoder, CTC and/or transducer heads,
WER/CER on validation and test.

Global CMVN statistics come from the training data: on the first ``fit`` the module runs the
feature front end over up to ``cmvn_batches`` training batches and stores per-bin mean and inverse
standard deviation as buffers, so checkpoints and exported models carry them.
"""
from __future__ import annotations

import torch
from torchmetrics.text import CharErrorRate, WordErrorRate

from apps.speech.asr import decoding
from apps.speech.asr.model import ASRConfig, ASRModel
from apps.speech.data import target_tokenizer
from apps.speech.features import GlobalCMVN, accumulate_stats
from core.data import lengths, pad
from core.errors import UserError
from core.nn.modes import evaluating
from core.training import BaseTask, OptimConfig, as_config

DECODERS = ("greedy", "beam")


class SpeechRecognizer(BaseTask):
    #: options that do not change the weights: on ``test/predict --ckpt_path`` the command line wins
    runtime_options = ("decoding", "beam", "head")

    def __init__(self, arch: ASRConfig = ASRConfig(), optim: OptimConfig | None = None,
                 decoding: str = "greedy", beam: int = 4, head: str | None = None, cmvn_batches: int = 100):
        """``arch.vocab_size`` is linked from the datamodule by the CLI. ``decoding``: greedy | beam
        (width ``beam``). ``head``: which head decodes when both exist (``loss: joint``): transducer
        (default) or ctc."""
        super().__init__(optim)
        self.cfg = as_config(ASRConfig, arch)
        if self.cfg.vocab_size <= 0:
            raise ValueError("arch.vocab_size must be set (the CLI links it from the data)")
        if decoding not in DECODERS:
            raise UserError(f"decoding={decoding!r}; expected one of {DECODERS}")
        loss = self.cfg.loss
        self.head = head or ("ctc" if loss == "ctc" else "transducer")
        heads = {"ctc": loss in ("ctc", "joint"), "transducer": loss in ("transducer", "joint")}
        if not heads.get(self.head, False):
            raise UserError(f"head={self.head!r}: loss={loss!r} trains {[h for h, on in heads.items() if on]}")
        self.decoding, self.beam, self.cmvn_batches = decoding, beam, cmvn_batches
        self.model = ASRModel(self.cfg)
        self.register_buffer("cmvn_fitted", torch.tensor(False))
        self.tokenizer = target_tokenizer()

    def configure_metrics(self):
        return {"wer": WordErrorRate(), "cer": CharErrorRate()}

    # ------------------------------------------------------------------ CMVN from training data

    def on_fit_start(self) -> None:
        if bool(self.cmvn_fitted):
            return
        stats = None
        with torch.no_grad():
            for i, batch in enumerate(self.trainer.datamodule.train_dataloader()):
                if i >= self.cmvn_batches:
                    break
                feats, lens = self.model.logmel(batch["audio"].to(self.device), batch["audio_lens"].to(self.device))
                stats = accumulate_stats(feats, lens, stats)
        fitted = GlobalCMVN.from_stats(*stats)
        self.model.cmvn.mean.copy_(fitted.mean)
        self.model.cmvn.inv_std.copy_(fitted.inv_std)
        self.cmvn_fitted.fill_(True)

    # ------------------------------------------------------------------ training and evaluation

    def losses(self, batch):
        return self.model(batch["audio"], batch["audio_lens"], batch["targets"], batch["target_lens"])

    def batch_size(self, batch) -> int:
        return len(batch["texts"])

    def update_metrics(self, metrics, batch, stage: str) -> bool:
        metrics.update(self.transcribe_batch(batch["audio"], batch["audio_lens"]), batch["texts"])
        return True

    def predict_step(self, batch, batch_idx):
        hyps = self.transcribe_batch(batch["audio"], batch["audio_lens"])
        return [{"audio": p, "text": h, "reference": r} for p, h, r in zip(batch["paths"], hyps, batch["texts"])]

    # ------------------------------------------------------------------ inference

    def transcribe_batch(self, audio: torch.Tensor, audio_lens: torch.Tensor) -> list[str]:
        with evaluating(self.model):
            h, lens = self.model.encode(audio, audio_lens)
            return [self.tokenizer.decode(labels) for labels in self.decode(h, lens)]

    def decode(self, h: torch.Tensor, lens: torch.Tensor) -> list[list[int]]:
        if self.head == "ctc":
            return (decoding.ctc_greedy(self.model, h, lens) if self.decoding == "greedy"
                    else decoding.ctc_beam(self.model, h, lens, self.beam))
        return (decoding.transducer_greedy(self.model, h, lens) if self.decoding == "greedy"
                else decoding.transducer_beam(self.model, h, lens, self.beam))

    def transcribe(self, audio: list[torch.Tensor]) -> list[str]:
        """Waveforms at the model's sample rate (1-D float tensors) -> transcripts."""
        return self.transcribe_batch(pad(audio, 0.0).to(self.device), lengths(audio).to(self.device))
