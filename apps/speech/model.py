"""The ASR LightningModule: any core backbone as the audio encoder, CTC and/or transducer heads,
WER/CER on validation and test.

Global CMVN statistics come from the training data: on the first ``fit`` the module runs the
feature front end over up to ``cmvn_batches`` training batches and stores per-bin mean and inverse
standard deviation as buffers, so checkpoints and exported models carry them.
"""
from __future__ import annotations

from dataclasses import asdict

import torch
from torchmetrics.text import CharErrorRate, WordErrorRate

from apps.speech import decoding
from apps.speech.asr import ASRConfig, ASRModel, default_predictor
from apps.speech.data import target_tokenizer
from apps.speech.features import FeatureConfig, GlobalCMVN, LogMel, accumulate_stats
from apps.speech.metrics import mel_cepstral_distortion
from apps.speech.tts import DecoderTTS, TransformerTTS, TTSConfig
from core.models import BackboneConfig
from core.tokenizers import tokenizer_from_json
from core.training import OptimConfig, TrainingModule, as_config

DECODERS = ("greedy", "beam")


class SpeechRecognizer(TrainingModule):
    #: options that do not change the weights: on ``test/predict --ckpt_path`` the command line wins
    runtime_options = ("decoding", "beam", "head")

    def __init__(self, vocab_size: int = 0, encoder: BackboneConfig | None = None,
                 predictor: BackboneConfig | None = None, features: FeatureConfig | None = None,
                 loss: str = "transducer", ctc_weight: float = 0.3, joint_dim: int = 256, streaming: bool = False,
                 subsampling_channels: int = 256, specaugment: bool = True, prune_range: int = 0,
                 simple_weight: float = 0.5, optim: OptimConfig | None = None,
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
                             as_config(BackboneConfig, predictor) if predictor is not None else default_predictor(),
                             as_config(FeatureConfig, features), loss, ctc_weight, joint_dim, streaming,
                             subsampling_channels, specaugment, prune_range, simple_weight)
        self.head = head or ("ctc" if loss == "ctc" else "transducer")
        heads = {"ctc": loss in ("ctc", "joint"), "transducer": loss in ("transducer", "joint")}
        if not heads.get(self.head, False):
            raise ValueError(f"head={self.head!r}: loss={loss!r} trains {[h for h, on in heads.items() if on]}")
        self.decoding, self.beam, self.cmvn_batches = decoding, beam, cmvn_batches
        self.save_hyperparameters({
            "vocab_size": vocab_size, "encoder": asdict(self.cfg.encoder), "predictor": asdict(self.cfg.predictor),
            "features": asdict(self.cfg.features), "loss": loss, "ctc_weight": ctc_weight, "joint_dim": joint_dim,
            "streaming": streaming, "subsampling_channels": subsampling_channels, "specaugment": specaugment,
            "prune_range": prune_range, "simple_weight": simple_weight,
            "optim": asdict(self.optim), "decoding": decoding, "beam": beam, "head": head,
            "cmvn_batches": cmvn_batches,
        })
        self.model = ASRModel(self.cfg)
        self.register_buffer("cmvn_fitted", torch.tensor(False))
        self.tokenizer = target_tokenizer()
        self.val_wer, self.val_cer = WordErrorRate(), CharErrorRate()
        self.test_wer, self.test_cer = WordErrorRate(), CharErrorRate()

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


class SpeechSynthesizer(TrainingModule):
    """TTS: phonemes -> log-mel (decoder-only or encoder-decoder, :mod:`apps.speech.tts`) -> Griffin-Lim.

    Validation synthesizes up to ``mcd_utterances`` utterances of each validation epoch free-running
    (no teacher forcing) and logs their mel-cepstral distortion against the recordings."""

    runtime_options = ("max_steps", "mcd_utterances")

    def __init__(self, vocab_size: int = 0, architecture: str = "decoder", backbone: BackboneConfig | None = None,
                 encoder: BackboneConfig | None = None, features: FeatureConfig | None = None, reduction: int = 2,
                 prenet_dim: int = 256, postnet_channels: int = 256, guided_weight: float = 1.0,
                 optim: OptimConfig | None = None, max_steps: int = 1000, mcd_utterances: int = 2):
        """``architecture``: decoder (decoder-only over phonemes + frames; pick a recurrent or
        linear-attention ``backbone.mixer`` for O(1) memory per frame) or transformer (encoder-decoder
        baseline with guided attention; ``encoder`` configures its phoneme encoder)."""
        super().__init__(as_config(OptimConfig, optim))
        if vocab_size <= 0:
            raise ValueError("vocab_size must be set (the CLI links it from the data)")
        if architecture not in ("decoder", "transformer"):
            raise ValueError(f"architecture={architecture!r}; expected decoder or transformer")
        features = as_config(FeatureConfig, features)
        backbone = as_config(BackboneConfig, backbone)
        enc = as_config(BackboneConfig, encoder) if architecture == "transformer" else None
        self.cfg = TTSConfig(vocab_size, backbone, enc, features.n_mels, reduction, prenet_dim,
                             postnet_channels=postnet_channels, guided_weight=guided_weight)
        self.save_hyperparameters({
            "vocab_size": vocab_size, "architecture": architecture, "backbone": asdict(backbone),
            "encoder": None if enc is None else asdict(enc), "features": asdict(features), "reduction": reduction,
            "prenet_dim": prenet_dim, "postnet_channels": postnet_channels, "guided_weight": guided_weight,
            "optim": asdict(self.optim), "max_steps": max_steps, "mcd_utterances": mcd_utterances,
        })
        self.features = features
        self.logmel = LogMel(features)
        self.model = (TransformerTTS if architecture == "transformer" else DecoderTTS)(self.cfg)
        self.max_steps, self.mcd_utterances = max_steps, mcd_utterances
        self.tokenizer_json: str | None = None
        self._mcd: list[float] = []

    # tokenizer travels with the weights
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "phoneme_tokenizer"):
            self.set_tokenizer(dm.phoneme_tokenizer().to_json())

    def set_tokenizer(self, tokenizer_json: str) -> None:
        self.tokenizer_json = tokenizer_json
        self.tokenizer = tokenizer_from_json(tokenizer_json)

    def on_save_checkpoint(self, checkpoint) -> None:
        if self.tokenizer_json is not None:
            checkpoint["tokenizer"] = self.tokenizer_json

    def on_load_checkpoint(self, checkpoint) -> None:
        if "tokenizer" in checkpoint:
            self.set_tokenizer(checkpoint["tokenizer"])

    def _losses(self, batch):
        mel, mel_lens = self.logmel(batch["audio"], batch["audio_lens"])
        losses, _ = self.model(batch["targets"], batch["target_lens"], mel, mel_lens)
        return losses, mel, mel_lens

    def training_step(self, batch, batch_idx):
        losses, _, _ = self._losses(batch)
        loss = sum(losses.values())
        n = len(batch["texts"])
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        for name, value in losses.items():
            self.log(f"train/{name}", value, batch_size=n)
        return loss

    def validation_step(self, batch, batch_idx):
        losses, mel, mel_lens = self._losses(batch)
        n = len(batch["texts"])
        self.log("val/loss", sum(losses.values()), prog_bar=True, batch_size=n, sync_dist=True)
        for i in range(min(n, self.mcd_utterances - len(self._mcd))):
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
        from apps.speech.vocoder import GriffinLimVocoder

        return GriffinLimVocoder(self.features)(self.synthesize_mel(text).cpu())
