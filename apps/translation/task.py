"""The translation LightningModule: any core encoder-decoder, label-smoothed CE, decoding metrics.

Tokenizers travel inside the checkpoint (as JSON), so a checkpoint alone is enough to translate.
"""
from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from apps.translation.metrics import CorpusBLEU, CorpusChrF, PhonemeErrorRate, WordErrorRateMultiRef
from core.io import atomic_write_text
from core.generation import GenerationConfig, Hypothesis, generate
from core.data import pad
from core.errors import CheckpointError, UserError
from core.models import EncoderDecoder, Seq2SeqConfig
from core.models.hf import HFEncoderDecoder
from core.nn.modes import evaluating
from core.tokenizers import PAD_ID
from core.training import BaseTask, OptimConfig, as_config, token_loss

METRICS = {"per": PhonemeErrorRate, "wer": WordErrorRateMultiRef, "bleu": CorpusBLEU, "chrf": CorpusChrF}


class TranslationModel(BaseTask):
    #: options that do not change the weights: on ``test/predict --ckpt_path`` the command line wins
    runtime_options = ("decoding", "metrics", "val_decode")
    prog_bar_losses = ("nll",)

    def __init__(
        self,
        arch: Seq2SeqConfig = Seq2SeqConfig(),
        label_smoothing: float = 0.1,
        optim: OptimConfig | None = None,
        decoding: GenerationConfig | None = None,
        metrics: list[str] | None = None,
        val_decode: bool = True,
        hf_model_dir: str | None = None,
    ):
        """``arch``: the core encoder-decoder (its vocabulary sizes are linked from the datamodule by
        the CLI). ``decoding`` is used by validation/test/predict (greedy by default; beam for final
        scores). ``metrics``: names from per, wer, chrf, bleu (default: per, wer, chrf for G2P).
        ``hf_model_dir``: fine-tune a local Hugging Face seq2seq checkpoint (Marian, BART, T5 ...)
        instead of the core backbone; pair it with ``data.src_tokenizer/tgt_tokenizer: hf:<dir>``."""
        self.metric_names = list(metrics or ["per", "wer", "chrf"])
        unknown = set(self.metric_names) - set(METRICS)
        if unknown:
            raise UserError(f"unknown metrics {sorted(unknown)}; choose from {sorted(METRICS)}")
        super().__init__(optim)
        self.arch = as_config(Seq2SeqConfig, arch)
        if self.arch.src_vocab_size <= 0 or self.arch.tgt_vocab_size <= 0:
            raise ValueError("arch.src_vocab_size and arch.tgt_vocab_size must be set (the CLI links them from the data)")
        self.decoding = as_config(GenerationConfig, decoding)
        self.metrics, self.label_smoothing, self.val_decode = self.metric_names, label_smoothing, val_decode
        self.model = HFEncoderDecoder(hf_model_dir) if hf_model_dir else EncoderDecoder(self.arch, pad_id=PAD_ID)

    def configure_metrics(self):
        return {m: METRICS[m]() for m in self.metric_names}

    @property
    def src_tokenizer(self):
        return self.tokenizers["src"]

    @property
    def tgt_tokenizer(self):
        return self.tokenizers["tgt"]

    @classmethod
    def from_checkpoint(cls, path: str | Path, **overrides) -> "TranslationModel":
        model = super().from_checkpoint(path, **overrides)
        if set(model.tokenizers) != {"src", "tgt"}:
            raise CheckpointError(f"{path} holds no tokenizers; was it written by apps.translation.train?")
        return model

    # --- training ---------------------------------------------------------------------------
    def losses(self, batch):
        tgt = batch["tgt_ids"]
        hidden = self.model.features(batch["src_ids"], tgt[:, :-1])
        loss, nll, _ = token_loss(hidden, self.model.head, tgt[:, 1:], self.model.pad_id, self.label_smoothing)
        return {"loss": loss, "nll": nll}

    def batch_size(self, batch) -> int:
        """Loss terms are means over target tokens: Lightning averages them weighted by this."""
        return int((batch["tgt_ids"][:, 1:] != self.model.pad_id).sum())

    def update_metrics(self, metrics, batch, stage: str) -> bool:
        if not (self.val_decode or stage == "test"):
            return False
        hyps = [h[0] for h in self.translate_ids(batch["src_ids"])]
        metrics.update([self.tgt_tokenizer.decode(h.tokens) for h in hyps], batch["refs"])
        return True

    def on_test_epoch_end(self) -> None:
        """Prints the sacreBLEU signatures and keeps them in ``self.signatures``: they describe
        the references seen (``nrefs``), which the metrics forget when Lightning resets them."""
        self.signatures = {name: m.signature() for name, m in self.test_metrics.items() if hasattr(m, "signature")}
        if self.trainer.is_global_zero:
            for name, signature in self.signatures.items():
                print(f"{name} signature: {signature}")

    def predict_step(self, batch, batch_idx):
        nbest = self.translate_ids(batch["src_ids"])
        return [{"index": int(i), "source": s, "hypotheses": [(self.tgt_tokenizer.decode(h.tokens), h.score) for h in hyps]}
                for i, s, hyps in zip(batch["index"], batch["src_text"], nbest)]

    # --- inference --------------------------------------------------------------------------
    @torch.no_grad()
    def translate_ids(self, src_ids: torch.Tensor, cfg: GenerationConfig | None = None) -> list[list[Hypothesis]]:
        with evaluating(self.model):  # the model knows its BOS/EOS: generate() asks it
            return generate(self.model, self.model.start(src_ids), cfg or self.decoding)

    def translate(self, sources: list[str], cfg: GenerationConfig | None = None) -> list[list[tuple[str, float]]]:
        """Plain strings in, n-best (text, score) lists out."""
        if not sources:
            return []
        tok = self.src_tokenizer
        ids = [tok.encode(s) + [tok.eos_id] for s in sources]
        src = pad(ids, tok.pad_id).to(self.device)
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
