"""Semantic IDs: each item's embedding as a short tuple of codes (TIGER's second stage).

A sequence model cannot predict one of thousands of items as a token each without a huge, sparse
output layer, and learns nothing from one item about a similar one. TIGER (Rajput et al. 2023,
"Recommender Systems with Generative Retrieval") names every item by a few coarse-to-fine codes
instead, found by *residual quantisation* of its content embedding: level 1 picks the nearest of
``codes`` centres, level 2 quantises what level 1 left over (the residual), and so on. Similar
items share their first codes, so predicting the next item's ID a code at a time shares what was
learnt across them.

Two ways to find the codes, both ``levels`` codebooks of ``codes`` entries (3 x 256 by default):

* :func:`residual_kmeans` (RQ-KMeans): k-means on the embeddings, then on the residuals, level
  by level; no training, deterministic for a seed. A strong, simple baseline.
* :class:`RQVAE`: TIGER's way. An MLP encoder maps the embedding to a small latent (384 -> 512 ->
  256 -> 128 -> 32), a :class:`ResidualQuantizer` quantises the latent, an MLP decoder maps the
  quantised latent back, and all three train together (:func:`train_rqvae`). The codes then come
  from a latent shaped to be reconstructable, not from the raw embedding's geometry.

Either gives codes [items, levels]; :class:`SemanticIds` turns them into IDs. Two items can share
all their codes (a collision), so every ID gets one more position, a disambiguation token
``d = 0, 1, 2 ...`` numbering the items of a shared tuple in item order, which makes every ID
unique. The table also gives the flat token vocabulary a sequence model predicts over, the valid
next tokens after every prefix (for constrained beam search) and the quality figures of the
quantisation (collision rate, codebook usage and perplexity per level).
"""
from __future__ import annotations

import itertools
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.errors import DataError, UserError
from core.io import atomic_write

# --------------------------------------------------------------------------- k-means


def squared_distances(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """[N, K] squared Euclidean distances, as one matmul (``cdist`` would keep the square root)."""
    d = (x * x).sum(1, keepdim=True) - 2 * x @ centres.T + (centres * centres).sum(1)
    return d.clamp_(min=0)  # rounding can make a zero distance slightly negative


def nearest(x: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each point's nearest centre (lowest index on ties) and the squared distance to it."""
    distances, index = squared_distances(x, centres).min(1)
    return index, distances


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ initial centres (Arthur & Vassilvitskii 2007): the first a random point, each next
    one a point drawn with probability proportional to its squared distance to the nearest centre
    so far. Spread-out starts make Lloyd's iterations converge to far better clusterings than k
    random points. When every point already coincides with a centre (duplicates), a uniform draw."""
    centres = x.new_empty(k, x.shape[1])
    centres[0] = x[torch.randint(len(x), (1,), generator=generator, device=x.device)]
    closest = squared_distances(x, centres[:1]).squeeze(1)
    for i in range(1, k):
        weights = closest if closest.sum() > 0 else torch.ones_like(closest)
        centres[i] = x[torch.multinomial(weights, 1, generator=generator)]
        closest = torch.minimum(closest, squared_distances(x, centres[i:i + 1]).squeeze(1))
    return centres


def farthest_points(distances: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the ``n`` points worst served by their centre: the points a new centre helps most."""
    return torch.argsort(distances, descending=True, stable=True)[:n]


def kmeans(x: torch.Tensor, k: int, iters: int = 50, generator: torch.Generator | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means from k-means++ starts: (centres [k, D], each point's centre [N]).

    A centre left with no points would be wasted (a code no item ever gets), so it is moved onto
    one of the points farthest from their own centre, a different point for each empty cluster.
    Stops when no point changes cluster, or after ``iters`` rounds."""
    if len(x) < k:
        raise UserError(f"k-means into {k} clusters needs at least {k} points, got {len(x)}")
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(0)
    centres = kmeans_plus_plus(x, k, generator)
    assign, distances = nearest(x, centres)
    for _ in range(iters):
        centres = _cluster_means(x, assign, distances, k)
        new_assign, distances = nearest(x, centres)
        if torch.equal(new_assign, assign):
            break
        assign = new_assign
    return centres, assign


def _cluster_means(x: torch.Tensor, assign: torch.Tensor, distances: torch.Tensor, k: int) -> torch.Tensor:
    """The mean of each cluster's points; empty clusters re-seeded (see :func:`kmeans`)."""
    counts = torch.bincount(assign, minlength=k)
    sums = x.new_zeros(k, x.shape[1]).index_add_(0, assign, x)
    centres = sums / counts.clamp(min=1).unsqueeze(1).to(x.dtype)
    empty = torch.nonzero(counts == 0).flatten()
    if len(empty):
        centres[empty] = x[farthest_points(distances, len(empty))]
    return centres


# --------------------------------------------------------------------------- RQ-KMeans


@dataclass
class ResidualCodes:
    """A residual quantisation: ``codes[i, l]`` indexes ``codebooks[l]``; item i is approximated by
    the sum over levels of its codewords."""

    codebooks: torch.Tensor  # float [L, K, D]
    codes: torch.Tensor  # int64 [N, L]

    def reconstruct(self, levels: int | None = None) -> torch.Tensor:
        """[N, D]: the sum of the first ``levels`` (default all) codewords of each item."""
        return reconstruct(self.codebooks, self.codes, levels)


def reconstruct(codebooks: torch.Tensor, codes: torch.Tensor, levels: int | None = None) -> torch.Tensor:
    levels = codebooks.shape[0] if levels is None else levels
    out = codebooks.new_zeros(codes.shape[0], codebooks.shape[2])
    for level in range(levels):
        out = out + codebooks[level][codes[:, level]]
    return out


def residual_kmeans(x: np.ndarray | torch.Tensor, levels: int = 3, codes: int = 256, iters: int = 50,
                    seed: int = 0) -> ResidualCodes:
    """RQ-KMeans: k-means with ``codes`` clusters on ``x`` [N, D], then on what each point's centre
    leaves over, ``levels`` times. Each level can only lower the error of the one before (its
    k-means++ start already does better than the zero vector), so the first codes say most."""
    residual = torch.as_tensor(x, dtype=torch.float32).clone()
    generator = torch.Generator(device=residual.device).manual_seed(seed)
    codebooks, assigned = [], []
    for _ in range(levels):
        centres, assign = kmeans(residual, codes, iters, generator)
        codebooks.append(centres)
        assigned.append(assign)
        residual = residual - centres[assign]
    return ResidualCodes(codebooks=torch.stack(codebooks), codes=torch.stack(assigned, dim=1))


# --------------------------------------------------------------------------- RQ-VAE


@dataclass
class RQVAEConfig:
    """TIGER's RQ-VAE: input -> hidden dims -> latent, ``levels`` codebooks of ``codes`` entries."""

    input_dim: int = 384
    hidden_dims: tuple[int, ...] = (512, 256, 128)
    latent_dim: int = 32
    levels: int = 3
    codes: int = 256
    beta: float = 0.25  # weight of the commitment loss (van den Oord et al. 2017)
    dead_window: int = 100  # training steps a code may go unchosen before restart_dead_codes re-seeds it
    kmeans_iters: int = 50  # Lloyd rounds of the codebooks' k-means initialisation


def mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last: latents and outputs are signed)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass
class Quantized:
    """What :class:`ResidualQuantizer` makes of a batch of latents."""

    straight_through: torch.Tensor  # [B, d]: the quantised latent forward, the identity backward
    quantized: torch.Tensor  # [B, d]: sum of the chosen codewords
    codes: torch.Tensor  # int64 [B, L]
    codebook_loss: torch.Tensor  # scalar: moves codewords towards the residuals they quantise
    commitment_loss: torch.Tensor  # scalar: keeps the encoder's residuals near their codewords


class ResidualQuantizer(nn.Module):
    """``levels`` codebooks of ``codes`` vectors; level l quantises the residual of levels < l.

    Training is the VQ-VAE recipe, per level: the codebook loss ``|sg(r_l) - e_l|^2`` moves the
    chosen codeword e_l towards the residual r_l it quantises, the commitment loss
    ``|r_l - sg(e_l)|^2`` keeps the encoder from drifting away from its codewords, and the
    quantised latent passes gradients straight through to the encoder (argmin has none). The next
    residual subtracts the codeword *without* gradient, ``r_{l+1} = r_l - sg(e_l)``, so each
    codebook learns only from the residuals of its own level. Squared errors are summed over the
    latent's features, averaged over the batch, summed over levels.

    Codebooks are set once by k-means on a batch's residuals (:meth:`init_from`), since random
    codewords far from every latent are never chosen. Codes still fall out of use as the encoder
    moves; :meth:`restart_dead` re-seeds those unused for ``dead_window`` training steps."""

    def __init__(self, dim: int, levels: int, codes: int, dead_window: int = 100):
        super().__init__()
        self.dead_window = dead_window
        self.codebooks = nn.Parameter(torch.randn(levels, codes, dim) / math.sqrt(dim))
        self.register_buffer("initialised", torch.tensor(False))
        self.register_buffer("step", torch.tensor(0))  # training forward passes so far
        self.register_buffer("last_used", torch.zeros(levels, codes, dtype=torch.long))  # step each code was last chosen

    @property
    def levels(self) -> int:
        return self.codebooks.shape[0]

    @property
    def codes(self) -> int:
        return self.codebooks.shape[1]

    def forward(self, z: torch.Tensor) -> Quantized:
        residual, quantized = z, torch.zeros_like(z)
        codes, codebook_loss, commitment_loss = [], z.new_zeros(()), z.new_zeros(())
        for level in range(self.levels):
            index, _ = nearest(residual.detach(), self.codebooks[level].detach())
            chosen = self.codebooks[level][index]
            codebook_loss = codebook_loss + _squared_error(chosen, residual.detach())
            commitment_loss = commitment_loss + _squared_error(residual, chosen.detach())
            quantized = quantized + chosen
            residual = residual - chosen.detach()
            codes.append(index)
        codes = torch.stack(codes, dim=1)
        if self.training:
            self._record_use(codes)
        return Quantized(straight_through=z + (quantized - z).detach(), quantized=quantized, codes=codes,
                         codebook_loss=codebook_loss, commitment_loss=commitment_loss)

    def _record_use(self, codes: torch.Tensor) -> None:
        self.step += 1
        for level in range(self.levels):
            self.last_used[level, codes[:, level]] = self.step

    @torch.no_grad()
    def init_from(self, z: torch.Tensor, iters: int = 50, seed: int = 0) -> None:
        """Every codebook from k-means on its level's residuals of the latents ``z`` [B, d]
        (RQ-KMeans on the batch); all codes then count as just used."""
        found = residual_kmeans(z.detach().float(), self.levels, self.codes, iters, seed)
        self.codebooks.copy_(found.codebooks.to(self.codebooks))
        self.last_used.fill_(int(self.step))
        self.initialised.fill_(True)

    def dead_codes(self) -> torch.Tensor:
        """bool [L, K]: codes no training step chose in the last ``dead_window`` steps."""
        return self.step - self.last_used >= self.dead_window

    @torch.no_grad()
    def restart_dead(self, z: torch.Tensor) -> int:
        """Move each dead code onto one of the residuals of ``z`` [B, d] that its level quantises
        worst (as :func:`kmeans` re-seeds an empty cluster): that is where a codeword helps most, and
        the batch is what the encoder makes now. Levels go in order, so a later level sees residuals
        of the re-seeded codebooks before it. Returns how many codes were restarted. (The optimiser's
        running moments for a restarted codeword are not reset: they belong to the optimiser.)"""
        dead = self.dead_codes()
        if not dead.any():
            return 0
        residual, restarted = z.detach(), 0
        for level in range(self.levels):
            _, distances = nearest(residual, self.codebooks[level])
            take = farthest_points(distances, int(dead[level].sum()))  # all of them, if the batch is smaller
            index = torch.nonzero(dead[level]).flatten()[:len(take)]
            self.codebooks[level, index] = residual[take].to(self.codebooks)
            self.last_used[level, index] = self.step
            restarted += len(index)
            chosen, _ = nearest(residual, self.codebooks[level])
            residual = residual - self.codebooks[level][chosen]
        return restarted


def _squared_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distance per row, averaged over rows."""
    return (a - b).pow(2).sum(-1).mean()


@dataclass
class RQVAEOutput:
    reconstruction: torch.Tensor  # [B, input_dim]
    codes: torch.Tensor  # int64 [B, L]
    losses: dict[str, torch.Tensor]  # loss (the total), reconstruction, codebook, commitment


class RQVAE(nn.Module):
    """Encoder, :class:`ResidualQuantizer`, decoder; the loss is

        loss = reconstruction + codebook + beta * commitment

    with ``reconstruction`` the squared error between the input and its reconstruction, summed over
    features and averaged over the batch (the quantiser's terms are described there). Call
    :meth:`init_codebooks` once on the first batch before training, and :meth:`restart_dead_codes`
    after each optimiser step."""

    def __init__(self, config: RQVAEConfig | None = None):
        super().__init__()
        self.config = config = config or RQVAEConfig()
        dims = [config.input_dim, *config.hidden_dims, config.latent_dim]
        self.encoder = mlp(dims)
        self.quantizer = ResidualQuantizer(config.latent_dim, config.levels, config.codes, config.dead_window)
        self.decoder = mlp(dims[::-1])

    def forward(self, x: torch.Tensor) -> RQVAEOutput:
        q = self.quantizer(self.encoder(x))
        reconstruction = self.decoder(q.straight_through)
        terms = {"reconstruction": _squared_error(reconstruction, x), "codebook": q.codebook_loss,
                 "commitment": q.commitment_loss}
        total = terms["reconstruction"] + terms["codebook"] + self.config.beta * terms["commitment"]
        return RQVAEOutput(reconstruction=reconstruction, codes=q.codes, losses={"loss": total, **terms})

    @property
    def needs_init(self) -> bool:
        return not bool(self.quantizer.initialised)

    def init_codebooks(self, x: torch.Tensor, seed: int = 0) -> None:
        """k-means initialisation of every codebook from this batch's latents (at least ``codes``
        items)."""
        with torch.no_grad():
            self.quantizer.init_from(self.encoder(x), self.config.kmeans_iters, seed)

    def restart_dead_codes(self, x: torch.Tensor) -> int:
        """Re-seed codes unused for ``dead_window`` training steps from this batch (the number restarted)."""
        if not self.quantizer.dead_codes().any():  # the usual case: no encoder pass needed
            return 0
        with torch.no_grad():
            return self.quantizer.restart_dead(self.encoder(x))

    @torch.no_grad()
    def semantic_codes(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """int64 [N, L]: the codes of every row of ``x``, in eval mode (no use is recorded)."""
        x = torch.as_tensor(x, dtype=torch.float32)
        was_training = self.training
        self.eval()
        try:
            return torch.cat([self.quantizer(self.encoder(part)).codes for part in x.split(batch_size)])
        finally:
            self.train(was_training)


@dataclass
class RQVAETraining:
    """A plain training run (the RQ-VAE trains once, before the sequence model, on item vectors)."""

    steps: int = 3000
    batch_size: int = 1024
    lr: float = 1e-3
    seed: int = 0


@dataclass
class TrainingLog:
    losses: list[dict[str, float]] = field(default_factory=list)  # per step
    restarted: int = 0  # dead codes re-seeded in all


def train_rqvae(x: np.ndarray | torch.Tensor, config: RQVAEConfig | None = None,
                training: RQVAETraining | None = None) -> tuple[RQVAE, TrainingLog]:
    """Train an :class:`RQVAE` on item vectors ``x`` [N, input_dim] with Adam on shuffled batches:
    codebooks initialised by k-means on the first batch, dead codes restarted after every step."""
    training = training or RQVAETraining()
    x = torch.as_tensor(x, dtype=torch.float32)
    config = config or RQVAEConfig(input_dim=x.shape[1])
    if len(x) < config.codes:
        raise UserError(f"an RQ-VAE with {config.codes} codes per level needs at least {config.codes} items to "
                        f"initialise its codebooks, got {len(x)}")
    torch.manual_seed(training.seed)
    model = RQVAE(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=training.lr)
    generator = torch.Generator().manual_seed(training.seed)
    log = TrainingLog()
    batch_size = max(min(training.batch_size, len(x)), config.codes)
    order = torch.randperm(len(x), generator=generator)
    start = 0
    for _ in range(training.steps):
        if start + batch_size > len(x):
            order, start = torch.randperm(len(x), generator=generator), 0
        batch = x[order[start:start + batch_size]]
        start += batch_size
        if model.needs_init:
            model.init_codebooks(batch, seed=training.seed)
        losses = model(batch).losses
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        log.restarted += model.restart_dead_codes(batch)
        log.losses.append({name: value.item() for name, value in losses.items()})
    return model.eval(), log


# --------------------------------------------------------------------------- the ID table

#: what :meth:`SemanticIds.save` writes, so a file of something else is refused by name
FILE_FORMAT = "seqlab.semantic_ids"
FILE_VERSION = 1


@dataclass(frozen=True)
class SemanticIds:
    """Item i's semantic ID is ``ids[i]`` = (c_1, ..., c_L, d): its codes, then the disambiguation
    token (0 for the first item with these codes, 1 for the second ...). Items are the rows of the
    embedding matrix the codes came from, in that order."""

    ids: torch.Tensor  # int64 [N, L + 1]
    codes_per_level: int  # K: c_l is in 0..K-1

    def __post_init__(self) -> None:
        ids = self.ids
        if ids.ndim != 2 or ids.shape[1] < 2 or ids.dtype != torch.int64:
            raise UserError(f"semantic IDs must be int64 [items, levels + 1], got {ids.dtype} {tuple(ids.shape)}")
        codes = ids[:, :-1]
        if len(ids) and (codes.min() < 0 or codes.max() >= self.codes_per_level or ids[:, -1].min() < 0):
            raise UserError(f"codes must lie in 0..{self.codes_per_level - 1} and disambiguation tokens be >= 0")
        if len(torch.unique(ids, dim=0)) != len(ids):
            raise UserError("two items have the same semantic ID")

    @classmethod
    def from_codes(cls, codes: torch.Tensor, codes_per_level: int) -> SemanticIds:
        """IDs from codes [N, L]: items that share all L codes get d = 0, 1, 2 ... in item order,
        so the numbering is the same whenever the same codes are given."""
        codes = torch.as_tensor(codes, dtype=torch.int64)
        _, group = np.unique(codes.numpy(), axis=0, return_inverse=True)
        group = group.reshape(-1)
        order = np.argsort(group, kind="stable")  # items of a group together, in item order
        starts = np.searchsorted(group[order], group[order], side="left")
        d = np.empty(len(codes), dtype=np.int64)
        d[order] = np.arange(len(codes)) - starts
        return cls(torch.cat([codes, torch.from_numpy(d)[:, None]], dim=1), codes_per_level)

    # ----------------------------------------------------------------- shape of the vocabulary

    @property
    def n_items(self) -> int:
        return self.ids.shape[0]

    @property
    def levels(self) -> int:
        """Code levels L (the ID has L + 1 tokens)."""
        return self.ids.shape[1] - 1

    @property
    def disambiguation_size(self) -> int:
        """How many d tokens are needed: the most items that share one code tuple."""
        return int(self.ids[:, -1].max()) + 1 if self.n_items else 1

    @property
    def sizes(self) -> tuple[int, ...]:
        """Tokens per ID position: K for each code level, then :attr:`disambiguation_size`."""
        return (*[self.codes_per_level] * self.levels, self.disambiguation_size)

    @property
    def offsets(self) -> tuple[int, ...]:
        """First token of each position in the flat vocabulary (positions never share a token, so
        a model always knows which level a token belongs to)."""
        return tuple(int(x) for x in np.cumsum([0, *self.sizes[:-1]]))

    @property
    def vocab_size(self) -> int:
        return sum(self.sizes)

    # ----------------------------------------------------------------- tokens

    def to_tokens(self, offset: int = 0) -> torch.Tensor:
        """int64 [N, L + 1]: ID position p with value v is token ``offset + offsets[p] + v``;
        ``offset`` leaves room for the sequence model's own tokens (padding, BOS ...) below."""
        return self.ids + torch.tensor(self.offsets) + offset

    def from_tokens(self, tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """The IDs (c_1, ..., c_L, d) of tokens [..., L + 1], the inverse of :meth:`to_tokens`; a token
        outside its position's range (a model that decoded freely) is a :class:`UserError`."""
        tokens = torch.as_tensor(tokens, dtype=torch.int64)
        values = tokens - torch.tensor(self.offsets) - offset
        outside = (values < 0) | (values >= torch.tensor(self.sizes))
        if outside.any():
            position = int(torch.nonzero(outside)[0, -1])
            raise UserError(f"token {int(tokens[outside][0])} is not a valid token for ID position {position} "
                            f"(expected {offset + self.offsets[position]}..{offset + self.offsets[position] + self.sizes[position] - 1})")
        return values

    def item_of(self, offset: int = 0) -> dict[tuple[int, ...], int]:
        """Token tuple of a full ID -> item index: turns a decoded ID back into an item."""
        return {tuple(row): item for item, row in enumerate(self.to_tokens(offset).tolist())}

    def valid_next(self, offset: int = 0) -> dict[tuple[int, ...], tuple[int, ...]]:
        """The trie of all IDs as a table: every proper prefix of an item's tokens (from ``()``) ->
        the tokens that continue it towards some item, sorted. Constrained beam search looks the
        prefix up and masks every other token, so it can only ever produce existing items."""
        table: dict[tuple[int, ...], set[int]] = {}
        for row in self.to_tokens(offset).tolist():
            for length in range(len(row)):
                table.setdefault(tuple(row[:length]), set()).add(row[length])
        return {prefix: tuple(sorted(nexts)) for prefix, nexts in table.items()}

    # ----------------------------------------------------------------- quality of the quantisation

    @property
    def collision_rate(self) -> float:
        """Share of items whose codes an earlier item already has (those with d > 0), i.e.
        1 - distinct code tuples / items: 0 when the codes alone name every item."""
        return float((self.ids[:, -1] > 0).float().mean()) if self.n_items else 0.0

    def usage(self) -> list[float]:
        """Per code level, the share of the K codes that some item gets."""
        return [len(torch.unique(self.ids[:, level])) / self.codes_per_level for level in range(self.levels)]

    def perplexity(self) -> list[float]:
        """Per code level, exp(entropy) of how the items spread over the codes: the number of
        equally used codes that would spread them as evenly (K at best, 1 when all share one code)."""
        out = []
        for level in range(self.levels):
            p = torch.bincount(self.ids[:, level], minlength=self.codes_per_level).double() / self.n_items
            p = p[p > 0]
            out.append(float(torch.exp(-(p * p.log()).sum())))
        return out

    # ----------------------------------------------------------------- file

    def save(self, path: str | Path) -> None:
        """A plain tensor file (``torch.load(path, weights_only=True)`` reads it), written atomically."""
        data = {"format": FILE_FORMAT, "version": FILE_VERSION, "ids": self.ids.clone(),
                "codes_per_level": self.codes_per_level}
        atomic_write(path, lambda tmp: torch.save(data, tmp))

    @classmethod
    def load(cls, path: str | Path) -> SemanticIds:
        """A table :meth:`save` wrote; anything else is a :class:`DataError` naming the file."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such semantic ID file")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError, OSError) as err:  # foreign, truncated
            reason = (str(err).strip().split(". ")[0].splitlines() or [type(err).__name__])[0]  # not torch's advice
            raise DataError(f"{path}: not a semantic ID file ({reason})") from None
        if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
            raise DataError(f"{path}: not a semantic ID file (no {FILE_FORMAT!r} format tag)")
        if data.get("version") != FILE_VERSION:
            raise DataError(f"{path}: semantic ID file version {data.get('version')}; this code reads {FILE_VERSION}")
        try:
            return cls(data["ids"], int(data["codes_per_level"]))
        except (KeyError, TypeError, UserError) as err:
            raise DataError(f"{path}: invalid semantic ID table ({err})") from None
