"""The recommendation models as :class:`~core.training.BaseTask` s, all scored the same way
(:mod:`apps.recommendation.metrics`: full ranking, Recall/NDCG@5/10, coverage@10):

* :class:`RQVAETask`: TIGER's first stage, an RQ-VAE on the item text embeddings (codebooks set by
  k-means on the first batch, dead codes restarted after every step); at the end of ``fit`` it
  writes the semantic-ID table (``semantic_ids.pt``) beside the checkpoints for the second stage;
* :class:`TigerTask`: TIGER (Rajput et al. 2023), a core encoder-decoder from the history's
  semantic-ID tokens to the next item's; recommendations come from beam search constrained by a
  trie of the real IDs (core's :class:`~core.generation.TokenTrie`), so every output is an item and
  the K beams are K distinct items; evaluation also decodes unconstrained and reports the share of
  outputs that are real items (``valid_share``);
* :class:`SASRecTask`: SASRec (Kang & McAuley 2018), a core causal decoder over item ids whose tied
  output layer scores every item (cross-entropy over all items, at every position);
* :func:`popularity_scores` / :func:`evaluate_popularity`: the most-popular baseline.

The sequence models' backbones are :class:`~core.models.BackboneConfig` s, so
``--model.init_args.backbone.mixer mamba`` (SASRec) or ``--model.init_args.encoder.mixer mamba``
(TIGER) swaps the token mixer in one line.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torchmetrics import MeanMetric

from apps.recommendation.data import RecDataModule
from apps.recommendation.interactions import LeaveOneOut
from apps.recommendation.metrics import (KS, ranking_metrics, ranks_from_lists, ranks_from_scores,
                                         update_ranking_metrics)
from apps.recommendation.semantic_ids import RQVAE, RQVAEConfig, SemanticIds
from core.errors import UserError
from core.generation import GenerationConfig, TokenTrie, generate
from core.models import BackboneConfig, DecoderLM, EncoderDecoder, LMConfig, Seq2SeqConfig
from core.tokenizers.base import BOS_ID, EOS_ID, PAD_ID
from core.training import BaseTask, OptimConfig, as_config, token_loss

#: the file :class:`RQVAETask` writes and TIGER's ``data.semantic_ids`` reads
IDS_FILE = "semantic_ids.pt"


def _datamodule(task: BaseTask, kind: str) -> RecDataModule | None:
    """The trainer's data module, checked to emit the batches ``task`` reads."""
    dm = task.trainer.datamodule if task._trainer is not None else None
    if dm is not None and getattr(dm, "kind", kind) != kind:
        raise UserError(f"{type(task).__name__} reads data.kind {kind}, but the data module emits {dm.kind}")
    return dm


def top_k_of_scores(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The k best items of scores [B, N + 1], ties in item order (the order ranks_from_scores uses)."""
    return scores.sort(dim=1, descending=True, stable=True).indices[:, :k]


# --------------------------------------------------------------------------- SASRec


class SASRecTask(BaseTask):
    """Item i (1..N) is token i, 0 is padding; the tied output layer scores every item. Training
    predicts, at every position of a (right-padded) history, the item that follows it: the next
    history item, and after the last one the example's target."""

    def __init__(self, n_items: int = 0, max_history: int = 20, backbone: BackboneConfig | None = None,
                 optim: OptimConfig | None = None):
        if n_items < 1:
            raise UserError("model.n_items must be at least 1 (train.py links it from the data)")
        self.n_items, self.max_history = n_items, max_history
        self.backbone = as_config(BackboneConfig, backbone, "model.backbone")
        if self.backbone.max_len < max_history:
            raise UserError(f"model.backbone.max_len {self.backbone.max_len} is shorter than data.max_history "
                            f"{max_history}")
        super().__init__(optim)
        self.model = DecoderLM(LMConfig(vocab_size=n_items + 1, decoder=self.backbone, tie_output=True))

    def configure_metrics(self):
        return ranking_metrics(self.n_items)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        _datamodule(self, "items")

    def hidden(self, history: torch.Tensor) -> torch.Tensor:
        """[B, T, D]: right padding needs no mask under causal mixing (it only follows real items)."""
        return self.model.decoder(self.model.embed(history), real=history != PAD_ID)[0]

    def _item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.model.head(hidden).float()
        logits[..., PAD_ID] = float("-inf")  # padding is not an item
        return logits

    def losses(self, batch):
        history, length = batch["history"], batch["length"]
        labels = torch.cat([history[:, 1:], torch.zeros_like(history[:, :1])], dim=1)
        labels[torch.arange(len(history)), length - 1] = batch["target"]
        keep = labels != PAD_ID
        logits = self._item_logits(self.hidden(history)[keep])
        return {"loss": F.cross_entropy(logits, labels[keep])}

    def batch_size(self, batch) -> int:
        return len(batch["target"])

    @torch.no_grad()
    def scores(self, batch) -> torch.Tensor:
        """[B, N + 1]: every item's score as the next item after each history (column 0: -inf)."""
        last = self.hidden(batch["history"])[torch.arange(len(batch["history"])), batch["length"] - 1]
        return self._item_logits(last)

    def top_k(self, batch, k: int = 10, exclude: set[int] | None = None) -> torch.Tensor:
        """int64 [B, k]: the k best items per row; none of ``exclude`` (e.g. what the user has seen)."""
        scores = self.scores(batch)
        if exclude:
            scores[:, sorted(exclude)] = float("-inf")
        return top_k_of_scores(scores, k)

    def update_metrics(self, metrics, batch, stage: str) -> bool:
        scores = self.scores(batch)
        update_ranking_metrics(metrics, ranks_from_scores(scores, batch["target"]), top_k_of_scores(scores, max(KS)))
        return True


# --------------------------------------------------------------------------- TIGER


def beam_config(beam_size: int, k: int, id_length: int) -> GenerationConfig:
    """TIGER's search: the ``k`` best of ``max(k, beam_size)`` beams, each exactly one ID long (no
    length penalty: every real ID has the same length), shared by PyTorch and the ONNX runner."""
    return GenerationConfig(strategy="beam", beam_size=max(k, beam_size), n_best=k, max_len=id_length + 1,
                            length_penalty=0.0)


def item_lists(generated: list[list[list[int]]], items: dict[tuple[int, ...], int], k: int) -> torch.Tensor:
    """int64 [B, k]: the item index of each decoded ID, best first; -1 pads a row with fewer than
    k real items (a catalogue smaller than k, or an unconstrained ID that is no item)."""
    lists = torch.full((len(generated), k), -1, dtype=torch.int64)
    for i, row in enumerate(generated):
        found = [items[t] for t in map(tuple, row) if t in items][:k]
        lists[i, :len(found)] = torch.tensor(found, dtype=torch.int64)
    return lists


@dataclass
class TigerDecoding:
    #: beams of the constrained search (at least the K of the list asked for)
    beam_size: int = 20
    #: also decode without the trie in evaluation, to report the share of real items (valid_share)
    check_unconstrained: bool = True


class TigerTask(BaseTask):
    """Source: [user token] + the history's ID tokens; target: the next item's L + 1 ID tokens, then
    EOS. The item table (``item_tokens``, row i = item i's tokens) is a buffer, filled from the
    data module at ``setup`` and saved with the weights, so a checkpoint alone recommends."""

    runtime_options = ("decoding",)

    def __init__(self, vocab_size: int = 0, n_items: int = 0, id_length: int = 0, token_offset: int = 0,
                 encoder: BackboneConfig | None = None, decoder: BackboneConfig | None = None,
                 decoding: TigerDecoding | None = None, optim: OptimConfig | None = None):
        if vocab_size < 1 or n_items < 1 or id_length < 2:
            raise UserError("model.vocab_size, n_items and id_length come from data.kind semantic_ids (train.py "
                            f"links them); got {vocab_size}, {n_items}, {id_length}")
        self.n_items, self.id_length, self.token_offset = n_items, id_length, token_offset
        self.decoding = as_config(TigerDecoding, decoding, "model.decoding")
        if self.decoding.beam_size < max(KS):
            raise UserError(f"model.decoding.beam_size must be at least {max(KS)} (the longest list scored)")
        encoder = as_config(BackboneConfig, encoder, "model.encoder")
        decoder = as_config(BackboneConfig, decoder, "model.decoder")
        super().__init__(optim)
        arch = as_config(Seq2SeqConfig, {"src_vocab_size": vocab_size, "tgt_vocab_size": vocab_size, "encoder": encoder,
                                       "decoder": decoder, "share_embeddings": True}, "model")
        self.model = EncoderDecoder(arch)
        self.register_buffer("item_tokens", torch.zeros(n_items + 1, id_length, dtype=torch.int64))
        self._trie: TokenTrie | None = None
        self._items: dict[tuple[int, ...], int] | None = None

    def configure_metrics(self):
        return {**ranking_metrics(self.n_items), "valid_share": MeanMetric()}

    def setup(self, stage: str) -> None:
        super().setup(stage)
        dm = _datamodule(self, "semantic_ids")
        if dm is not None:
            self.set_item_tokens(dm.item_tokens())

    def set_item_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.shape != self.item_tokens.shape:
            raise UserError(f"the semantic-ID table has shape {tuple(tokens.shape)}, the model was built for "
                            f"{tuple(self.item_tokens.shape)} (items + 1, ID length)")
        self.item_tokens.copy_(tokens)
        self._trie = self._items = None

    def load_state_dict(self, state_dict, *args, **kwargs):
        self._trie = self._items = None
        return super().load_state_dict(state_dict, *args, **kwargs)

    def trie(self) -> TokenTrie:
        """Every real item's tokens (built once from the buffer)."""
        if self._trie is None:
            if not bool((self.item_tokens[1:] > 0).all()):
                raise UserError("TigerTask has no semantic-ID table (train with data.kind semantic_ids)")
            self._trie = TokenTrie(self.item_tokens[1:].tolist())
        return self._trie

    def item_of(self) -> dict[tuple[int, ...], int]:
        if self._items is None:
            self._items = {tuple(row): i for i, row in enumerate(self.item_tokens.tolist()) if i}
        return self._items

    def losses(self, batch):
        tgt = batch["tgt"]
        bos = torch.full_like(tgt[:, :1], BOS_ID)
        tgt_in, labels = torch.cat([bos, tgt], 1), torch.cat([tgt, torch.full_like(bos, EOS_ID)], 1)
        loss, nll, _ = token_loss(self.model.features(batch["src"], tgt_in), self.model.head, labels, PAD_ID)
        return {"loss": loss, "nll": nll}

    def batch_size(self, batch) -> int:
        return len(batch["target"])

    def beam_config(self, k: int) -> GenerationConfig:
        return beam_config(self.decoding.beam_size, k, self.id_length)

    def generated(self, batch, k: int, constrained: bool = True, trie: TokenTrie | None = None) -> list[list[list[int]]]:
        """Per row, the k best token sequences of beam search (without BOS/EOS), constrained by
        ``trie`` (default: every item's)."""
        allowed = (trie or self.trie()) if constrained else None
        hyps = generate(self.model, self.model.start(batch["src"]), self.beam_config(k), allowed_tokens=allowed)
        return [[h.tokens for h in row] for row in hyps]

    def top_k(self, batch, k: int = 10, exclude: set[int] | None = None) -> torch.Tensor:
        """int64 [B, k]: k distinct real items per row, best first, none of ``exclude`` (the search
        runs in a trie without them); -1 only where fewer than k items are left."""
        trie = None
        if exclude:
            trie = TokenTrie([row for i, row in enumerate(self.item_tokens.tolist()) if i and i not in exclude])
        return item_lists(self.generated(batch, k, trie=trie), self.item_of(), k)

    def update_metrics(self, metrics, batch, stage: str) -> bool:
        lists = self.top_k(batch, max(KS))
        update_ranking_metrics(metrics, ranks_from_lists(lists, batch["target"].cpu()), lists)
        if self.decoding.check_unconstrained:
            items = self.item_of()
            free = [tuple(t) in items for row in self.generated(batch, max(KS), constrained=False) for t in row]
            metrics[f"{stage}/valid_share"].update(torch.tensor(free, dtype=torch.float32))
        return True


# --------------------------------------------------------------------------- RQ-VAE


class RQVAETask(BaseTask):
    """Trains :class:`~apps.recommendation.semantic_ids.RQVAE` on item embedding rows; validation
    reports the losses on every item and the ID table's quality (collision rate, per-level code
    usage and perplexity); the end of ``fit`` writes the table (``ids_out``, default
    ``semantic_ids.pt`` beside the checkpoints)."""

    def __init__(self, input_dim: int = 0, config: RQVAEConfig | None = None, ids_out: str | None = None,
                 seed: int = 0, optim: OptimConfig | None = None):
        """``input_dim``: the embeddings' width (train.py links it from the data); it replaces
        ``config.input_dim``, so the config says only what is chosen, not what is measured."""
        config = as_config(RQVAEConfig, config, "model.config")
        if input_dim < 1:
            raise UserError("model.input_dim must be at least 1 (train.py links it from the embeddings)")
        self.config = dataclasses.replace(config, input_dim=input_dim)
        self.ids_out, self.seed = ids_out, seed
        super().__init__(optim)
        self.model = RQVAE(self.config)
        self.model.quantizer.codebooks._no_weight_decay = True  # decay would pull codewords to zero
        self.restarted = 0

    def setup(self, stage: str) -> None:
        super().setup(stage)
        _datamodule(self, "embeddings")

    def losses(self, batch):
        if self.training and self.model.needs_init:
            if len(batch) < self.config.codes:
                raise UserError(f"data.batch_size {len(batch)} is below model.config.codes {self.config.codes}: "
                                "the first batch initialises every codebook by k-means")
            self.model.init_codebooks(batch, seed=self.seed)
        return self.model(batch).losses

    def batch_size(self, batch) -> int:
        return len(batch)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.restarted += self.model.restart_dead_codes(batch)
        self.log("train/restarted", float(self.restarted))

    def semantic_ids(self, x: torch.Tensor) -> SemanticIds:
        return SemanticIds.from_codes(self.model.semantic_codes(torch.as_tensor(x).to(self.device)).cpu(),
                                      self.config.codes)

    def quality(self, ids: SemanticIds) -> dict[str, float]:
        out = {"collision_rate": ids.collision_rate, "max_collisions": float(ids.disambiguation_size)}
        for level, (usage, perplexity) in enumerate(zip(ids.usage(), ids.perplexity())):
            out[f"usage_{level}"], out[f"perplexity_{level}"] = usage, perplexity
        return out

    def _all_items(self) -> torch.Tensor | None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        return torch.from_numpy(dm.embeddings) if dm is not None else None

    def on_validation_epoch_end(self) -> None:
        x = self._all_items()
        if x is not None and not self.trainer.sanity_checking:
            for name, value in self.quality(self.semantic_ids(x)).items():
                self.log(f"val/{name}", value)

    def ids_path(self) -> Path:
        if self.ids_out:
            return Path(self.ids_out)
        callback = self.trainer.checkpoint_callback
        folder = callback.dirpath if callback is not None and callback.dirpath else self.trainer.default_root_dir
        return Path(folder) / IDS_FILE

    def on_fit_end(self) -> None:
        x = self._all_items()
        if x is None:
            return
        ids = self.semantic_ids(x)
        if self.trainer.is_global_zero:
            path = self.ids_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            ids.save(path)
            figures = self.quality(ids)
            rank_zero_info(f"semantic IDs of {ids.n_items} items -> {path} "
                           + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
            for logger in self.loggers:
                logger.log_metrics({f"ids/{k}": v for k, v in figures.items()}, step=self.global_step)


# --------------------------------------------------------------------------- most popular


def popularity_scores(split: LeaveOneOut, n_items: int, stage: str = "test") -> torch.Tensor:
    """float [N + 1]: how often each item occurs in what precedes ``stage``'s targets (training
    items; for test also the validation items); column 0 (padding) is -inf."""
    items = torch.cat([torch.as_tensor(t, dtype=torch.int64) for t in split.train]
                      + ([torch.as_tensor(split.valid, dtype=torch.int64)] if stage == "test" else []))
    counts = torch.bincount(items, minlength=n_items + 1).double()
    counts[PAD_ID] = float("-inf")
    return counts


def evaluate_popularity(dm: RecDataModule, stage: str = "test") -> dict[str, float]:
    """The most-popular list for every user, scored like the models (full ranking)."""
    if stage not in ("valid", "test"):
        raise UserError(f"stage must be valid or test, got {stage!r}")
    scores = popularity_scores(dm.split, dm.n_items, stage)
    target = torch.as_tensor(dm.split.test if stage == "test" else dm.split.valid)
    scores = scores.expand(len(target), -1)
    metrics = ranking_metrics(dm.n_items)
    update_ranking_metrics(metrics, ranks_from_scores(scores, target), top_k_of_scores(scores, max(KS)))
    return {name: float(metric.compute()) for name, metric in metrics.items()}
