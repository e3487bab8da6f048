"""The ASR LightningModule: any core backbone as the audio encoder, CTC and/or transducer heads,
WER/CER on validation and test.

Global CMVN statistics come from the training data: on the first ``fit`` the module runs the
feature front end over up to ``cmvn_batches`` training batches and stores per-bin mean and inverse
standard deviation as buffers, so checkpoints and exported models carry them.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from torchmetrics.text import CharErrorRate, WordErrorRate

from apps.speech import decoding
from apps.speech.asr import ASRConfig, ASRModel
from apps.speech.data import target_tokenizer
from apps.speech.features import FeatureConfig, GlobalCMVN, accumulate_stats
from core.models import BackboneConfig
from core.training import OptimConfig, TrainingModule, as_config, load_checkpoint

DECODERS = ("greedy", "beam")


class SpeechRecognizer(TrainingModule):
    #: options that do not change the weights: on ``test/predict --ckpt_path`` the command line wins
    runtime_options = ("decoding", "beam", "head")

    def __init__(self, vocab_size: int = 0, encoder: BackboneConfig | None = None,
                 predictor: BackboneConfig | None = None, features: FeatureConfig | None = None,
                 loss: str = "transducer", ctc_weight: float = 0.3, joint_dim: int = 256, streaming: bool = False,
                 subsampling_channels: int = 128, specaugment: bool = True, optim: OptimConfig | None = None,
                 decoding: str = "greedy", beam: int = 4, head: str | None = None, cmvn_batches: int = 100):
        """``vocab_size`` is linked from the datamodule by the CLI. ``decoding``: greedy | beam (width
        ``beam``). ``head``: which head decodes when both exist (``loss: joint``): transducer (default)
        or ctc."""
        super().__init__(as_config(OptimConfig, optim))
        if vocab_size <= 0:
            raise ValueError("vocab_size must be set (the CLI links it from the data)")
        if decoding not in DECODERS:
            raise ValueError(f"decoding={decoding!r}; expected one of {DECODERS}")
        self.cfg = ASRConfig(vocab_size, as_config(BackboneConfig, encoder),
                             as_config(BackboneConfig, predictor) if predictor is not None else ASRConfig(1).predictor,
                             as_config(FeatureConfig, features), loss, ctc_weight, joint_dim, streaming,
                             subsampling_channels, specaugment)
        self.head = head or ("ctc" if loss == "ctc" else "transducer")
        heads = {"ctc": loss in ("ctc", "joint"), "transducer": loss in ("transducer", "joint")}
        if not heads.get(self.head, False):
            raise ValueError(f"head={self.head!r}: loss={loss!r} trains {[h for h, on in heads.items() if on]}")
        self.decoding, self.beam, self.cmvn_batches = decoding, beam, cmvn_batches
        self.save_hyperparameters({
            "vocab_size": vocab_size, "encoder": asdict(self.cfg.encoder), "predictor": asdict(self.cfg.predictor),
            "features": asdict(self.cfg.features), "loss": loss, "ctc_weight": ctc_weight, "joint_dim": joint_dim,
            "streaming": streaming, "subsampling_channels": subsampling_channels, "specaugment": specaugment,
            "optim": asdict(self.optim), "decoding": decoding, "beam": beam, "head": head,
            "cmvn_batches": cmvn_batches,
        })
        self.model = ASRModel(self.cfg)
        self.register_buffer("cmvn_fitted", torch.tensor(False))
        self.tokenizer = target_tokenizer()
        self.val_wer, self.val_cer = WordErrorRate(), CharErrorRate()
        self.test_wer, self.test_cer = WordErrorRate(), CharErrorRate()

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "SpeechRecognizer":
        """Rebuild from a checkpoint with ``weights_only=True`` loading (no pickled code runs)."""
        ckpt = load_checkpoint(path)
        model = cls(**ckpt["hyper_parameters"])
        model.load_state_dict(ckpt["state_dict"])
        return model.eval()

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

    def training_step(self, batch, batch_idx):
        out = self.model(batch["audio"], batch["audio_lens"], batch["targets"], batch["target_lens"])
        n = len(batch["texts"])
        for name, value in out.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=n)
        return out["loss"]

    def _eval_step(self, batch, prefix: str, wer, cer):
        out = self.model(batch["audio"], batch["audio_lens"], batch["targets"], batch["target_lens"])
        n = len(batch["texts"])
        for name, value in out.items():
            self.log(f"{prefix}/{name}", value, batch_size=n, sync_dist=True)
        hyps = self.transcribe_batch(batch["audio"], batch["audio_lens"])
        wer.update(hyps, batch["texts"])
        cer.update(hyps, batch["texts"])
        self.log(f"{prefix}/wer", wer, batch_size=n, prog_bar=True)
        self.log(f"{prefix}/cer", cer, batch_size=n)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val", self.val_wer, self.val_cer)

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test", self.test_wer, self.test_cer)

    def predict_step(self, batch, batch_idx):
        hyps = self.transcribe_batch(batch["audio"], batch["audio_lens"])
        return [{"audio": p, "text": h, "reference": r} for p, h, r in zip(batch["paths"], hyps, batch["texts"])]

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def transcribe_batch(self, audio: torch.Tensor, audio_lens: torch.Tensor) -> list[str]:
        was_training = self.model.training
        self.model.eval()
        try:
            h, lens = self.model.encode(audio, audio_lens)
            return [self.tokenizer.decode(labels) for labels in self.decode(h, lens)]
        finally:
            self.model.train(was_training)

    def decode(self, h: torch.Tensor, lens: torch.Tensor) -> list[list[int]]:
        if self.head == "ctc":
            return (decoding.ctc_greedy(self.model, h, lens) if self.decoding == "greedy"
                    else decoding.ctc_beam(self.model, h, lens, self.beam))
        return (decoding.transducer_greedy(self.model, h, lens) if self.decoding == "greedy"
                else decoding.transducer_beam(self.model, h, lens, self.beam))

    def transcribe(self, audio: list[torch.Tensor]) -> list[str]:
        """Waveforms at the model's sample rate (1-D float tensors) -> transcripts."""
        lens = torch.tensor([len(a) for a in audio])
        padded = torch.zeros(len(audio), int(lens.max()))
        for row, a in zip(padded, audio):
            row[: len(a)] = a
        return self.transcribe_batch(padded.to(self.device), lens.to(self.device))
