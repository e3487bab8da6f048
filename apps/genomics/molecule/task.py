"""The Regression Transformer (Born & Manica 2023) on a core encoder: one bidirectional model that
both predicts a molecule's properties and writes molecules with properties asked of it.

Training alternates two fill-in-the-blanks objectives step by step: **property prediction** masks
every digit of the property prefix and scores them; **conditional generation** masks a random
10-50 % of the SMILES tokens, keeps the true properties in the prefix, and scores the masked
atoms. (RT's XLNet permutation LM becomes a masked LM here, so any core mixer serves.)

Decoding is constrained by position: a digit slot only takes the digits of its decimal place (and
a sign slot only a sign), so every predicted number is well formed; a SMILES slot only takes
SMILES tokens, and never a ``)`` that closes a branch nobody opened (the one grammar check that
is cheap when positions are filled left to right). RDKit judges the rest (validity).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric
from torchmetrics.regression import MeanSquaredError, PearsonCorrCoef, SpearmanCorrCoef

from apps.genomics.molecule.data import prefix_tokens
from apps.genomics.molecule.numbers import FORMATS, MASK, SEPARATOR
from apps.genomics.molecules import PROPERTIES
from core.errors import UserError
from core.models import BackboneConfig, Encoder
from core.nn import TokenEmbedding
from core.tokenizers.base import SPECIAL_TOKENS
from core.training import BaseTask, OptimConfig, as_config


@dataclass
class MoleculeConfig:
    #: linked from the datamodule's tokenizer
    vocab_size: int = 0
    encoder: BackboneConfig = field(default_factory=lambda: BackboneConfig(max_len=160))


class MaskedLM(nn.Module):
    """Token embeddings -> bidirectional core encoder -> logits over the vocabulary (tied)."""

    def __init__(self, cfg: MoleculeConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = TokenEmbedding(cfg.vocab_size, cfg.encoder.d_model)
        self.encoder = Encoder(cfg.encoder)
        self.head = nn.Linear(cfg.encoder.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(ids), mask=mask))


class RegressionTransformerTask(BaseTask):
    """``properties``: which RDKit values the prefix holds (linked from the data).
    ``mask_fraction``: the range the share of masked SMILES tokens is drawn from, per molecule."""

    def __init__(self, arch: MoleculeConfig = MoleculeConfig(), properties: list[str] | None = None,
                 mask_fraction: tuple[float, float] = (0.1, 0.5), optim: OptimConfig | None = None):
        self.properties = list(properties or ["qed"])
        if any(p not in PROPERTIES for p in self.properties):
            raise UserError(f"properties must be names from {', '.join(PROPERTIES)}, got {self.properties}")
        if not 0 < mask_fraction[0] <= mask_fraction[1] <= 1:
            raise UserError(f"mask_fraction must be 0 < low <= high <= 1, got {list(mask_fraction)}")
        self.arch = as_config(MoleculeConfig, arch)
        super().__init__(optim)
        self.mask_fraction = (float(mask_fraction[0]), float(mask_fraction[1]))
        self.model = MaskedLM(self.arch)
        self._tables: dict[str, torch.Tensor] | None = None

    def configure_metrics(self) -> dict[str, Metric]:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*save all targets.*")
            out: dict[str, Metric] = {}
            for p in self.properties:
                out |= {f"{p}_rmse": MeanSquaredError(squared=False), f"{p}_pearson": PearsonCorrCoef(),
                        f"{p}_spearman": SpearmanCorrCoef()}
        return out

    # ------------------------------------------------------------------ the layout, as token ids

    def tables(self) -> dict[str, torch.Tensor]:
        """``slots`` [P, V]: the tokens each prefix position may hold (name tokens and the separator
        are fixed); ``digits`` [P]: the positions property prediction masks; ``smiles`` [V]: the
        tokens a SMILES position may hold; ``open``/``close``: the branch tokens; ``mask``: its id."""
        if self._tables is None:
            tok = self.tokenizers["molecule"]
            vocab = tok.vocab_size
            rows: list[list[str]] = []
            for name in self.properties:
                rows += [[f"<{name}>"], *FORMATS[name].slots()]
            rows.append([SEPARATOR])
            slots = torch.zeros(len(rows), vocab, dtype=torch.bool)
            for i, allowed in enumerate(rows):
                slots[i, [tok.token_to_id(t) for t in allowed]] = True
            digits = torch.tensor([len(r) > 1 for r in rows])
            prefix = {t for name in self.properties for t in FORMATS[name].vocabulary()} | {SEPARATOR, MASK,
                                                                                              *SPECIAL_TOKENS}
            smiles = torch.tensor([tok.id_to_token(i) not in prefix for i in range(vocab)])
            self._tables = {"slots": slots, "digits": digits, "smiles": smiles,
                            "open": torch.tensor(tok.token_to_id("(") or -1),
                            "close": torch.tensor(tok.token_to_id(")") or -1), "mask": torch.tensor(tok.token_to_id(MASK))}
        return {k: v.to(self.device) for k, v in self._tables.items()}

    # ------------------------------------------------------------------ the two objectives

    def property_view(self, batch):
        t = self.tables()
        ids = batch["ids"].clone()
        where = torch.zeros_like(ids, dtype=torch.bool)
        where[:, :len(t["digits"])] = t["digits"]
        ids[where] = t["mask"]
        return ids, where

    def molecule_view(self, batch, generator: torch.Generator | None = None):
        low, high = self.mask_fraction
        share = low + (high - low) * torch.rand(len(batch["ids"]), 1, generator=generator).to(self.device)
        draw = torch.rand(batch["ids"].shape, generator=generator).to(self.device)
        where = batch["is_smiles"] & (draw < share)
        ids = batch["ids"].masked_fill(where, int(self.tables()["mask"]))
        return ids, where

    def _loss(self, ids, where, batch) -> torch.Tensor:
        logits = self.model(ids, batch["mask"])
        return F.cross_entropy(logits[where].float(), batch["ids"][where])

    def losses(self, batch):
        if self.training:  # one objective per step, alternating (RT's schedule)
            view = self.property_view(batch) if self.global_step % 2 == 0 else self.molecule_view(batch)
            return {"loss": self._loss(*view, batch)}
        prop = self._loss(*self.property_view(batch), batch)
        mol = self._loss(*self.molecule_view(batch, torch.Generator().manual_seed(0)), batch)
        return {"loss": (prop + mol) / 2, "property_loss": prop, "molecule_loss": mol}

    def batch_size(self, batch) -> int:
        return len(batch["ids"])

    # ------------------------------------------------------------------ decoding

    @torch.no_grad()
    def predict_properties(self, batch) -> dict[str, torch.Tensor]:
        """Every property of every molecule, its digits filled in one pass under the slot constraints."""
        t = self.tables()
        ids, _ = self.property_view(batch)
        logits = self.model(ids, batch["mask"])[:, :len(t["digits"])].float()
        return self.read_prefix(logits.masked_fill(~t["slots"], float("-inf")).argmax(-1))

    def predict_step(self, batch, batch_idx) -> dict[str, torch.Tensor]:
        """The predicted properties of each molecule of the batch (``apps.genomics.predict`` reads files)."""
        return self.predict_properties(batch)

    def update_metrics(self, metrics, batch, stage: str) -> bool:
        predicted, truth = self.predict_properties(batch), self.read_prefix(batch["ids"])
        for p in self.properties:
            for kind in ("rmse", "pearson", "spearman"):
                metrics[f"{p}_{kind}"].update(predicted[p].to(self.device), truth[p].to(self.device))
        return True

    def read_prefix(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """The property values written in the prefixes of ``ids`` [B, >= P]."""
        tok = self.tokenizers["molecule"]
        out: dict[str, list[float]] = {p: [] for p in self.properties}
        for row in ids[:, :len(self.tables()["digits"])].tolist():
            tokens = [tok.id_to_token(i) for i in row]
            at = 0
            for name in self.properties:
                n = 1 + len(FORMATS[name].slots())
                out[name].append(FORMATS[name].value(tokens[at + 1:at + n]))
                at += n
        return {p: torch.tensor(v) for p, v in out.items()}

    def _primed(self, batch, where: torch.Tensor, primed: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """The ids decoding starts from: the prefix set to ``primed`` values, ``where`` masked."""
        tok = self.tokenizers["molecule"]
        ids = batch["ids"].clone()
        if primed is not None:
            for r in range(len(ids)):
                prefix = prefix_tokens(self.properties, {p: float(primed[p][r]) for p in self.properties})
                ids[r, :len(prefix)] = torch.tensor(tok.encode(" ".join(prefix)))
        return ids.masked_fill(where, int(self.tables()["mask"]))

    def _allowed(self, ids: torch.Tensor, col: int) -> torch.Tensor:
        """[rows, V]: the tokens position ``col`` may take given what stands left of it."""
        t = self.tables()
        allowed = t["smiles"].expand(len(ids), -1).clone()
        if int(t["close"]) >= 0:
            depth = (ids[:, :col] == t["open"]).sum(1) - (ids[:, :col] == t["close"]).sum(1)
            allowed[depth <= 0, int(t["close"])] = False  # nothing to close
        return allowed

    @torch.no_grad()
    def infill(self, batch, where: torch.Tensor, primed: dict[str, torch.Tensor] | None = None,
               temperature: float = 1.0, top_k: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Rewrite the SMILES positions ``where`` [B, L] left to right, one model call per position,
        with the prefix set to ``primed`` values (default: each molecule's own). Sampling at
        ``temperature`` from the ``top_k`` likeliest allowed tokens; ``top_k`` 1 is greedy."""
        ids = self._primed(batch, where, primed)
        for col in range(ids.shape[1]):
            rows = where[:, col]
            if not rows.any():
                continue
            logits = self.model(ids, batch["mask"])[:, col].float() / temperature
            logits = logits.masked_fill(~self._allowed(ids, col), float("-inf"))
            if top_k > 0:
                kth = logits.topk(min(top_k, logits.shape[-1]), -1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            choice = torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]
            ids[rows, col] = choice[rows]
        return ids

    @torch.no_grad()
    def infill_beam(self, batch, where: torch.Tensor, primed: dict[str, torch.Tensor] | None = None,
                    beam: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``beam`` likeliest fillings of ``where`` under the same constraints as :meth:`infill`,
        positions filled left to right and each prefix of the fill scored by the sum of its tokens'
        log-probabilities (read with the positions right of it still masked). Returns ids
        [B, beam, L] best first and their scores [B, beam] (``-inf`` where fewer fills exist)."""
        start = self._primed(batch, where, primed)
        n, width = start.shape
        ids = start.repeat_interleave(beam, 0)  # [B * beam, L], row r * beam + k is beam k of molecule r
        mask = batch["mask"].repeat_interleave(beam, 0)
        score = torch.full((n, beam), float("-inf"), device=ids.device)
        score[:, 0] = 0.0  # one live beam to begin with
        keep = torch.arange(beam, device=ids.device).expand(n, -1)
        for col in range(width):
            rows = where[:, col]
            if not rows.any():
                continue
            logp = self.model(ids, mask)[:, col].float().log_softmax(-1)
            logp = logp.masked_fill(~self._allowed(ids, col), float("-inf"))
            vocab = logp.shape[-1]
            total = (score.reshape(-1, 1) + logp).reshape(n, beam * vocab)
            best, pick = total.topk(beam, -1)
            parent = torch.where(rows[:, None], pick // vocab, keep)
            token = pick % vocab
            ids = ids.reshape(n, beam, width).gather(1, parent[..., None].expand(-1, -1, width))
            ids[rows, :, col] = token[rows]
            ids = ids.reshape(n * beam, width)
            score = torch.where(rows[:, None], best, score)
        return ids.reshape(n, beam, width), score

    def smiles_of(self, ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
        tok, prefix = self.tokenizers["molecule"], len(self.tables()["digits"])
        return [tok.decode(row[prefix:][m[prefix:]].tolist()).replace(" ", "") for row, m in zip(ids, mask)]
