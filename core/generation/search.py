"""Greedy, beam and sampling search over any model with the decoding protocol

    state = model.start(...)                      # a DecoderState (KV caches / recurrent states)
    logits, state = model.step(ids [B, T], state)  # logits [B, T, V]
    model.bos_id, model.eos_id                     # the first input and the end token

BOS/EOS belong to the model (``GenerationConfig.bos_id``/``eos_id`` only override them, e.g. to
continue a prompt from its last token). Constraints (:mod:`core.generation.constraints`) mask the
log-probs of every live hypothesis at once and follow the hypotheses through reordering.

All searches are batched and incremental: each step feeds only the newest token. Rows that have
finished are dropped from the batch (and from every cache), so a batch costs what its longest
*unfinished* rows cost, not what its longest row costs.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Protocol

import torch
import torch.nn.functional as F

from core.generation.constraints import AllowedTokens, PrefixConstraint, as_constraint
from core.models.state import DecoderState
from core.nn.packed import packed_linears
from core.tokenizers.base import BOS_ID, EOS_ID

#: a per-row callable (loops in Python: grammars) or a batched PrefixConstraint (tensor ops: tries)
Constraint = AllowedTokens | PrefixConstraint
#: (step, original batch row of each live hypothesis [n], log-probs [n, V]) -> edited log-probs.
#: Vectorised, unlike AllowedTokens: for penalties, forced tokens, per-row length limits.
LogitsProcessor = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


class Decodable(Protocol):
    """Anything decodable; it also says which token starts a sequence and which ends it
    (``bos_id``/``eos_id`` attributes), so callers need not pass them."""

    bos_id: int
    eos_id: int

    def step(self, ids: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]: ...


@dataclass
class GenerationConfig:
    strategy: str = "greedy"  # greedy | beam | sample
    max_len: int = 128
    #: EOS is forbidden before this many tokens
    min_len: int = 0
    beam_size: int = 5
    #: hypotheses returned per input (beam: best n of the beam; sample: n independent samples)
    n_best: int = 1
    #: beam scores are divided by length**length_penalty (fairseq convention; 0 = raw log-prob)
    length_penalty: float = 1.0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    #: explicit overrides of the model's own ``bos_id``/``eos_id`` (None: the model's), e.g. to
    #: continue a prompt by feeding its last token first
    bos_id: int | None = None
    eos_id: int | None = None

    def resolve(self, model) -> "GenerationConfig":
        """This config with BOS/EOS filled in where not overridden: from ``model``'s ``bos_id`` /
        ``eos_id``, else core's tokenizer specials (what models without the attributes always used)."""
        ids = {}
        for name, default in (("bos_id", BOS_ID), ("eos_id", EOS_ID)):
            value = getattr(self, name)
            if value is None:
                value = getattr(model, name, None)
            ids[name] = default if value is None else int(value)
        return replace(self, **ids)


@dataclass
class Hypothesis:
    tokens: list[int]  # without BOS/EOS
    score: float  # length-normalised log-probability (== logprob for greedy/sampling)
    logprob: float


def generate(model: Decodable, state: DecoderState, cfg: GenerationConfig,
             allowed_tokens: Constraint | None = None,
             generator: torch.Generator | None = None,
             processor: LogitsProcessor | None = None) -> list[list[Hypothesis]]:
    """One list of hypotheses (best first) per batch row of ``state``. BOS/EOS are the model's
    (``model.bos_id``/``model.eos_id``) unless ``cfg`` overrides them."""
    cfg = cfg.resolve(model)
    with packed_linears(model):  # (decoding batches are small: see core.nn.packed)
        if cfg.strategy == "greedy":
            return _left_to_right(model, state, cfg, allowed_tokens, None, 1, processor)
        if cfg.strategy == "sample":
            return _left_to_right(model, state, cfg, allowed_tokens, generator, cfg.n_best, processor)
        if cfg.strategy == "beam":
            return beam_search(model, state, cfg, allowed_tokens, processor)
    raise ValueError(f"unknown strategy {cfg.strategy!r}; expected greedy, beam or sample")


def _constrain(logp: torch.Tensor, constraint: PrefixConstraint | None, cstate, eos_id: int) -> torch.Tensor:
    if constraint is None:
        return logp
    allowed = constraint.mask(cstate, logp.shape[-1], eos_id)
    return logp if allowed is None else logp.masked_fill(~allowed, float("-inf"))


def _filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    if top_k > 0:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token when the tokens before it already cover top_p (the first always stays)
        drop = probs.cumsum(-1) - probs > top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


@torch.inference_mode()
def _left_to_right(model, state, cfg, allowed, generator, n: int, processor=None) -> list[list[Hypothesis]]:
    """Greedy (generator None) or ancestral sampling, ``n`` samples per row."""
    batch = state.batch_size
    rows = torch.arange(batch).repeat_interleave(n)
    if n > 1:
        state = state.index_select(rows.to(_device(state)))
    rows = rows.tolist()
    active = list(range(len(rows)))  # positions in the output list still decoding
    tokens: list[list[int]] = [[] for _ in rows]
    logprob = [0.0] * len(rows)
    ids = torch.full((len(rows), 1), cfg.bos_id, dtype=torch.long, device=_device(state))
    live_rows = torch.as_tensor(rows, device=ids.device)  # original batch row of each live hypothesis
    constraint = as_constraint(allowed)
    cstate = None if constraint is None else constraint.start(live_rows)
    for t in range(cfg.max_len):
        logits, state = model.step(ids, state)
        logits = logits[:, -1].float()
        if generator is not None:
            logits = logits / cfg.temperature
        logp = _constrain(F.log_softmax(logits, -1), constraint, cstate, cfg.eos_id)
        if processor is not None:
            logp = processor(t, live_rows, logp)
        if t < cfg.min_len:
            logp[:, cfg.eos_id] = float("-inf")
        if generator is None and t < cfg.max_len - 1:
            picked, choice = logp.max(-1)  # (values with indices: 2x faster than argmax + gather on CPU)
        else:
            if t == cfg.max_len - 1:  # out of room: end every sequence here
                choice = torch.full((len(active),), cfg.eos_id, device=logp.device)
            else:
                probs = _filter_logits(logp, cfg.top_k, cfg.top_p).softmax(-1)
                choice = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            picked = logp.gather(1, choice[:, None]).squeeze(1)
        picked = picked.tolist()
        if constraint is not None:
            cstate = constraint.advance(cstate, choice)
        keep = []
        for i, (a, tok) in enumerate(zip(active, choice.tolist())):
            logprob[a] += picked[i]
            if tok == cfg.eos_id:
                continue
            tokens[a].append(tok)
            keep.append(i)
        if not keep:
            break
        if len(keep) < len(active):
            index = torch.as_tensor(keep, device=logp.device)
            state, choice, live_rows = state.index_select(index), choice[index], live_rows[index]
            cstate = None if cstate is None else cstate[index.to(cstate.device)]
            active = [active[i] for i in keep]
        ids = choice[:, None]
    out = [Hypothesis(tokens[i], logprob[i], logprob[i]) for i in range(len(rows))]
    groups = [out[b * n:(b + 1) * n] for b in range(batch)]
    return [sorted(g, key=lambda h: -h.score) for g in groups]


@torch.inference_mode()
def beam_search(model: Decodable, state: DecoderState, cfg: GenerationConfig,
                allowed: Constraint | None = None, processor: LogitsProcessor | None = None) -> list[list[Hypothesis]]:
    """Batched beam search with fairseq's stopping rule: a row is done once ``beam_size``
    hypotheses have ended with EOS; scores are length-normalised log-probabilities. A done row's
    beams leave the batch (``keep_sources``), so one long row does not keep the others computing."""
    cfg = cfg.resolve(model)
    batch, k, device = state.batch_size, cfg.beam_size, _device(state)
    constraint = as_constraint(allowed)
    cstate = None if constraint is None else constraint.start(torch.arange(batch, device=device).repeat_interleave(k))
    state = state.expand(k)  # (encoder memory stays one copy per source: DecoderState)
    alive = list(range(batch))  # original batch row of each source still searching, in state order
    scores = torch.zeros(batch, k, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first
    seqs: list[list[int]] = [[] for _ in range(batch * k)]
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    ids = torch.full((batch * k, 1), cfg.bos_id, dtype=torch.long, device=device)
    for t in range(cfg.max_len):
        logits, state = model.step(ids, state)
        logp = F.log_softmax(logits[:, -1].float(), -1)
        vocab = logp.shape[-1]
        logp = _constrain(logp, constraint, cstate, cfg.eos_id)
        if processor is not None:
            logp = processor(t, torch.as_tensor(alive, device=device).repeat_interleave(k), logp)
        if t < cfg.min_len:
            logp[:, cfg.eos_id] = float("-inf")
        if t == cfg.max_len - 1:
            forced = torch.full_like(logp, float("-inf"))
            forced[:, cfg.eos_id] = logp[:, cfg.eos_id]
            logp = forced
        cand = (scores.view(-1, 1) + logp).view(len(alive), k * vocab)
        top_scores, top_index = cand.topk(2 * k, dim=-1)
        top_scores, top_index = top_scores.tolist(), top_index.tolist()
        chosen: list[tuple[int, int, float]] = []  # (source beam, token, score) for the next step
        kept: list[int] = []  # positions in ``alive`` of the sources that go on
        norm = float(t + 1) ** cfg.length_penalty
        for j, b in enumerate(alive):
            row: list[tuple[int, int, float]] = []
            for rank, (s, flat) in enumerate(zip(top_scores[j], top_index[j])):
                if s == float("-inf"):
                    break
                src, tok = j * k + flat // vocab, flat % vocab
                if tok == cfg.eos_id:
                    if rank < k:  # an EOS only counts when it ranks inside the beam
                        finished[b].append(Hypothesis(list(seqs[src]), s / norm, s))
                elif len(row) < k:
                    row.append((src, tok, s))
            if len(finished[b]) >= k or not row:
                continue
            row += [(j * k, cfg.eos_id, float("-inf"))] * (k - len(row))  # dead beams keep shapes fixed
            chosen += row
            kept.append(j)
        if not kept:
            break
        src, tok, score = zip(*chosen)
        src_index = torch.as_tensor(src, device=device)
        if len(kept) < len(alive):  # done sources leave: their beams first, then their memory
            state = state.keep_sources(torch.as_tensor(kept, device=device))
            src_index = src_index - torch.as_tensor(kept, device=device).repeat_interleave(k) * k \
                + torch.arange(len(kept), device=device).repeat_interleave(k) * k
            alive = [alive[j] for j in kept]
        state = state.reorder(src_index)  # (each source's beams come from its own beams)
        if constraint is not None:
            rows = torch.as_tensor([s_ for s_ in src], device=cstate.device)
            cstate = constraint.advance(cstate[rows], torch.as_tensor(tok, device=cstate.device))
        seqs = [seqs[s_] for s_ in src]
        seqs = [prefix + [t_] for prefix, t_ in zip(seqs, tok)]
        scores = torch.as_tensor(score, device=device).view(len(alive), k)
        ids = torch.as_tensor(tok, device=device)[:, None]
    return [sorted(f, key=lambda h: -h.score)[: cfg.n_best] for f in finished]


def _device(state) -> torch.device:
    return state.device  # (DecoderState, HF and ONNX states all say where their tensors are)
