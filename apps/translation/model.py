"""The translation LightningModule: any core encoder-decoder, label-smoothed CE, decoding metrics.

Tokenizers travel inside the checkpoint (as JSON), so a checkpoint alone is enough to translate.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torchmetrics import MetricCollection

from apps.translation.metrics import CorpusBLEU, CorpusChrF, PhonemeErrorRate, WordErrorRateMultiRef
from core.io import atomic_write_text
from core.generation import GenerationConfig, Hypothesis, generate
from core.models import BackboneConfig, EncoderDecoder, Seq2SeqConfig
from core.models.hf import HFEncoderDecoder
from core.tokenizers import BOS_ID, EOS_ID, PAD_ID, tokenizer_from_json
from core.training import OptimConfig, TrainingModule, as_config, token_loss

METRICS = {"per": PhonemeErrorRate, "wer": WordErrorRateMultiRef, "bleu": CorpusBLEU, "chrf": CorpusChrF}


class TranslationModel(TrainingModule):
    #: options that do not change the weights: on ``test/predict --ckpt_path`` the command line wins
    runtime_options = ("decoding", "metrics", "val_decode")

    def __init__(
        self,
        src_vocab_size: int = 0,
        tgt_vocab_size: int = 0,
        encoder: BackboneConfig | None = None,
        decoder: BackboneConfig | None = None,
        tie_output: bool = True,
        share_embeddings: bool = False,
        label_smoothing: float = 0.1,
        optim: OptimConfig | None = None,
        decoding: GenerationConfig | None = None,
        metrics: list[str] | None = None,
        val_decode: bool = True,
        hf_model_dir: str | None = None,
    ):
        """``src_vocab_size``/``tgt_vocab_size`` are linked from the datamodule by the CLI.
        ``decoding`` is used by validation/test/predict (greedy by default; beam for final scores).
        ``metrics``: names from per, wer, chrf, bleu (default: per, wer, chrf for G2P).
        ``hf_model_dir``: fine-tune a local Hugging Face seq2seq checkpoint (Marian, BART, T5 ...)
        instead of the core backbone; pair it with ``data.src_tokenizer/tgt_tokenizer: hf:<dir>``."""
        super().__init__(as_config(OptimConfig, optim))
        if src_vocab_size <= 0 or tgt_vocab_size <= 0:
            raise ValueError("src_vocab_size and tgt_vocab_size must be set (the CLI links them from the data)")
        self.encoder_cfg, self.decoder_cfg = as_config(BackboneConfig, encoder), as_config(BackboneConfig, decoder)
        self.decoding = as_config(GenerationConfig, decoding)
        self.label_smoothing, self.val_decode = label_smoothing, val_decode
        metrics = list(metrics or ["per", "wer", "chrf"])
        unknown = set(metrics) - set(METRICS)
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {sorted(METRICS)}")
        self.save_hyperparameters({
            "src_vocab_size": src_vocab_size, "tgt_vocab_size": tgt_vocab_size,
            "encoder": asdict(self.encoder_cfg), "decoder": asdict(self.decoder_cfg),
            "tie_output": tie_output, "share_embeddings": share_embeddings, "label_smoothing": label_smoothing,
            "optim": asdict(self.optim), "decoding": asdict(self.decoding), "metrics": metrics, "val_decode": val_decode,
            "hf_model_dir": hf_model_dir,
        })
        if hf_model_dir:
            self.model = HFEncoderDecoder(hf_model_dir)
            self.pad_id, self.bos_id, self.eos_id = self.model.pad_id, self.model.bos_id, self.model.eos_id
        else:
            self.model = EncoderDecoder(Seq2SeqConfig(src_vocab_size, tgt_vocab_size, self.encoder_cfg, self.decoder_cfg,
                                                      tie_output, share_embeddings), pad_id=PAD_ID)
            self.pad_id, self.bos_id, self.eos_id = PAD_ID, BOS_ID, EOS_ID
        self.val_metrics = MetricCollection({m: METRICS[m]() for m in metrics}, prefix="val/")
        self.test_metrics = self.val_metrics.clone(prefix="test/")
        self.tokenizers_json: dict[str, str] | None = None

    # --- tokenizers travel with the weights -------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None and hasattr(dm, "tokenizers_json"):
            self.set_tokenizers(dm.tokenizers_json())

    def set_tokenizers(self, tokenizers: dict[str, str]) -> None:
        self.tokenizers_json = dict(tokenizers)
        self.src_tokenizer = tokenizer_from_json(tokenizers["src"])
        self.tgt_tokenizer = tokenizer_from_json(tokenizers["tgt"])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.tokenizers_json is not None:
            checkpoint["tokenizers"] = self.tokenizers_json

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "tokenizers" in checkpoint:
            self.set_tokenizers(checkpoint["tokenizers"])

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "TranslationModel":
        model = super().from_checkpoint(path)
        if model.tokenizers_json is None:
            raise ValueError(f"{path} holds no tokenizers; was it written by apps.translation.train?")
        return model

    # --- training ---------------------------------------------------------------------------
    def _loss(self, batch):
        tgt = batch["tgt_ids"]
        hidden = self.model.features(batch["src_ids"], tgt[:, :-1])
        return token_loss(hidden, self.model.head, tgt[:, 1:], self.pad_id, self.label_smoothing)

    def training_step(self, batch, batch_idx):
        loss, nll, n = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/nll", nll, batch_size=n)
        return loss

    def _eval_step(self, batch, prefix: str, metrics: MetricCollection):
        loss, nll, n = self._loss(batch)
        self.log(f"{prefix}/loss", loss, batch_size=n, sync_dist=True)
        self.log(f"{prefix}/nll", nll, batch_size=n, sync_dist=True, prog_bar=True)
        if self.val_decode or prefix == "test":
            hyps = [h[0] for h in self.translate_ids(batch["src_ids"])]
            metrics.update([self.tgt_tokenizer.decode(h.tokens) for h in hyps], batch["refs"])
            self.log_dict(metrics, batch_size=len(hyps), prog_bar=True)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val", self.val_metrics)

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test", self.test_metrics)

    def on_test_epoch_end(self) -> None:
        for name, metric in self.test_metrics.items():
            if hasattr(metric, "signature") and self.trainer.is_global_zero:
                print(f"{name} signature: {metric.signature()}")

    def predict_step(self, batch, batch_idx):
        nbest = self.translate_ids(batch["src_ids"])
        return [{"index": int(i), "source": s, "hypotheses": [(self.tgt_tokenizer.decode(h.tokens), h.score) for h in hyps]}
                for i, s, hyps in zip(batch["index"], batch["src_text"], nbest)]

    # --- inference --------------------------------------------------------------------------
    @torch.no_grad()
    def translate_ids(self, src_ids: torch.Tensor, cfg: GenerationConfig | None = None) -> list[list[Hypothesis]]:
        cfg = cfg or self.decoding
        cfg = GenerationConfig(**{**asdict(cfg), "bos_id": self.bos_id, "eos_id": self.eos_id})
        was_training = self.model.training
        self.model.eval()
        try:
            return generate(self.model, self.model.start(src_ids), cfg)
        finally:
            self.model.train(was_training)

    def translate(self, sources: list[str], cfg: GenerationConfig | None = None) -> list[list[tuple[str, float]]]:
        """Plain strings in, n-best (text, score) lists out."""
        if not sources:
            return []
        tok = self.src_tokenizer
        ids = [tok.encode(s) + [tok.eos_id] for s in sources]
        width = max(len(x) for x in ids)
        src = torch.tensor([x + [tok.pad_id] * (width - len(x)) for x in ids], device=self.device)
        return [[(self.tgt_tokenizer.decode(h.tokens), h.score) for h in hyps] for hyps in self.translate_ids(src, cfg)]


class WriteTranslations(BasePredictionWriter):
    """``predict`` output: one line per input in input order, ``source<TAB>hypothesis`` (n-best as
    extra columns), to ``path`` or stdout."""

    def __init__(self, path: str | None = None):
        super().__init__(write_interval="epoch")
        self.path = path

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        rows = sorted((r for batch in predictions for r in batch), key=lambda r: r["index"])
        lines = ["\t".join([r["source"]] + [h for h, _ in r["hypotheses"]]) for r in rows]
        text = "\n".join(lines) + "\n"
        if self.path is None:
            print(text, end="")
        else:
            atomic_write_text(self.path, text)
