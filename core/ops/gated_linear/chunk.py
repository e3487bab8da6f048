"""Chunkwise-parallel form: attention-like matmuls inside chunks of C tokens, a recurrence over
chunks for the state. Every exponent is a difference of cumulative log gates taken in causal
order, so it is <= 0 and nothing overflows however strong the decay.

Per-head gates (g: [B, H, T]) need one [C, C] decay matrix per chunk. Per-channel gates
(g: [B, H, T, Dk]) decay every key channel differently, so the intra-chunk scores are
a_ij = sum_d q_id k_jd exp(cum_id - cum_jd): not a plain matmul. GLA's secondary chunking
(Yang et al. 2024, sec. 4.2) recovers matmuls for most of it. The chunk is cut into sub-chunks of
c = 16 tokens; for a query sub-chunk I and an earlier key sub-chunk J, with r_I the cumulative gate
just before I starts and e_J the one at the end of J (so j <= e_J's token < r_I's token + 1 <= i),

    exp(cum_i - cum_j) = exp(cum_i - r_I) * exp(r_I - e_J) * exp(e_J - cum_j),   every factor <= 1,

so q_i exp(cum_i - r_I) @ (k_j exp(e_J - cum_j) exp(r_I - e_J))^T is an ordinary matmul that stays
finite whatever the decay (a factor only underflows when the true product is smaller still).
The diagonal sub-blocks, where i and j share a sub-chunk, take the same split once more into
blocks of 4, and only inside those does the per-channel decay exp(cum_i - cum_j) appear
explicitly (pairs j < i only). On CPU this costs about half the memory traffic of explicit
16 x 16 x Dk diagonal blocks. The largest intermediates are the gathered sub-chunk pairs,
1.5x the size of q for C = 64: no [B, H, T, C, Dk] tensor is ever built.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


#: tokens per block at the last level of the per-channel intra-chunk recursion (see _intra_scores)
_LEAF = 4


def gated_linear_chunk(q, k, v, g, state=None, scale: float | None = None, chunk: int = 64, u=None,
                       sub_chunk: int = 16):
    """Same contract as :func:`~core.ops.gated_linear.naive.gated_linear_naive`.

    ``chunk``: tokens per chunk (C). ``sub_chunk``: per-channel gates only, tokens per sub-chunk
    (c); the block sizes used are gcd(C, c) and then gcd(that, 4), so any C works."""
    if g.dim() == 3:
        if u is not None:
            raise ValueError("the bonus u needs per-channel gates g: [B, H, T, Dk]")
        return _chunk_per_head(q, k, v, g, state, scale, chunk)
    sub = math.gcd(chunk, sub_chunk)
    sizes = [c for c in dict.fromkeys((sub, math.gcd(sub, _LEAF))) if c < chunk]  # each divides the last
    return _chunk_per_channel(q, k, v, g, state, scale, chunk, u, sizes)


def _chunk_per_head(q, k, v, g, state, scale, chunk):
    """Scalar decay per head and step: the decay of a score depends only on (i, j)."""
    b, h, t, dk = q.shape
    dv = v.shape[-1]
    scale = dk**-0.5 if scale is None else scale
    pad = (-t) % chunk
    if pad:  # zero keys add nothing to the state, zero log-gates decay nothing
        q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        g = F.pad(g, (0, pad))
    n = (t + pad) // chunk
    q = q.reshape(b, h, n, chunk, dk) * scale
    k = k.reshape(b, h, n, chunk, dk)
    v = v.reshape(b, h, n, chunk, dv)
    cum = g.reshape(b, h, n, chunk).cumsum(-1)  # log decay from the chunk start to each position
    last = cum[..., -1:]  # whole-chunk log decay

    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    decay = (cum[..., :, None] - cum[..., None, :]).masked_fill(~causal, float("-inf")).exp()
    intra = ((q @ k.transpose(-1, -2)) * decay) @ v  # [b, h, n, C, dv]

    q_in = q * cum.exp()[..., None]  # queries read the chunk-start state decayed to their position
    kv = (k * (last - cum).exp()[..., None]).transpose(-1, -2) @ v  # each chunk's contribution to the state
    s0 = q.new_zeros(b, h, dk, dv) if state is None else state
    starts, s = _chunk_states(s0, last[..., 0, None, None].exp(), kv)
    out = intra + q_in @ starts
    return out.reshape(b, h, n * chunk, dv)[:, :, :t], s


def _chunk_states(s, decay, kv):
    """The state at the start of every chunk: s_{i+1} = decay_i * s_i + kv_i, a short loop over
    chunks (T / C steps). decay: [b, h, n, 1 or dk, 1], kv: [b, h, n, dk, dv]. unbind/stack keep
    the backward linear in n (indexing x[:, :, i] would allocate a full-size gradient per step)."""
    starts = []
    for d, w in zip(decay.unbind(2), kv.unbind(2)):
        starts.append(s)
        s = s * d + w
    return torch.stack(starts, dim=2), s


def _chunk_per_channel(q, k, v, g, state, scale, chunk, u, sizes):
    """Per-channel decay (GLA, HGRN2, RWKV-6). With the bonus u (RWKV-6), a query reads the state
    *before* its own token: the intra-chunk mask is strictly lower, the query side uses the
    exclusive cumulative gate, and the token's own k_t^T v_t enters through u alone."""
    b, h, t, dk = q.shape
    dv = v.shape[-1]
    scale = dk**-0.5 if scale is None else scale
    # the diagonal bonus (q_t . u . k_t) v_t touches one token at a time: no chunking needed
    bonus = None if u is None else ((q * u[:, None, :] * k).sum(-1, keepdim=True) * scale) * v
    pad = (-t) % chunk
    if pad:  # zero keys add nothing to the state, zero log-gates decay nothing
        q, k, v, g = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v, g))
    n = (t + pad) // chunk
    q = q.reshape(b, h, n, chunk, dk) * scale
    k = k.reshape(b, h, n, chunk, dk)
    v = v.reshape(b, h, n, chunk, dv)
    cum = g.reshape(b, h, n, chunk, dk).cumsum(-2)  # inclusive: decay from chunk start through token i
    excl = F.pad(cum[..., :-1, :], (0, 0, 1, 0))  # exclusive: through token i-1 (exact, no subtraction)
    cum_q = cum if u is None else excl  # what a query's read has been decayed by since the chunk start
    last = cum[..., -1, :]  # [b, h, n, dk] whole-chunk log decay

    a = _intra_scores(q, k, cum_q, cum, excl, u is not None, sizes)  # [b, h, n, C, C]
    intra = a @ v  # [b, h, n, C, dv]

    q_in = q * cum_q.exp()  # queries read the chunk-start state decayed to their position
    kv = (k * (last[..., None, :] - cum).exp()).transpose(-1, -2) @ v  # each chunk's write to the state
    s0 = q.new_zeros(b, h, dk, dv) if state is None else state
    starts, s = _chunk_states(s0, last.exp()[..., None], kv)
    out = (intra + q_in @ starts).reshape(b, h, n * chunk, dv)[:, :, :t]
    return (out if bonus is None else out + bonus), s


def _intra_scores(q, k, cq, ck, ex, strict: bool, sizes: list[int]):
    """Decayed scores a_ij = sum_d q_id k_jd exp(cq_id - ck_jd) of one block of S tokens, causal
    (j <= i, or j < i when ``strict``). All inputs [.., S, Dk]; cq/ck/ex (query-side, inclusive
    and exclusive cumulative log gates) share one origin, so any block can use them as they are.

    The block splits into sub-chunks of c = sizes[0] tokens. Pairs of sub-chunks J < I factor
    through r_I (cum just before I) and e_J (cum at the end of J), every factor <= 1:

        exp(cq_i - ck_j) = exp(cq_i - r_I) * exp(r_I - e_J) * exp(e_J - ck_j)

    so they are one matmul per pair. The diagonal sub-blocks recurse with sizes[1:]; once no size
    is left, :func:`_leaf_scores` takes the decay explicitly."""
    size = q.shape[-2]
    if not sizes:
        return _leaf_scores(q, k, cq, ck, strict)
    c = sizes[0]
    ns = size // c
    lead, dk = q.shape[:-2], q.shape[-1]
    qd, kd, cqd, ckd, exd = (x.reshape(*lead, ns, c, dk) for x in (q, k, cq, ck, ex))
    a_diag = _intra_scores(qd, kd, cqd, ckd, exd, strict, sizes[1:])  # [.., ns(I), c(i), c(j)]
    blocks, where = [a_diag], [torch.arange(ns, device=q.device) * (ns + 1)]  # (I, I) in the ns x ns grid
    if ns > 1:
        rows, cols = torch.tril_indices(ns, ns, -1, device=q.device)  # every pair J < I
        ref = exd[..., 0, :]  # [.., ns, dk] r_I
        end = ckd[..., -1, :]  # e_J
        qs = (qd * (cqd - ref[..., None, :]).exp()).index_select(-3, rows)  # the query is at or after r_I's token
        ks = (kd * (end[..., None, :] - ckd).exp()).index_select(-3, cols)  # the key is at or before e_J's token
        mid = (ref.index_select(-2, rows) - end.index_select(-2, cols)).exp()  # [.., pairs, dk]
        blocks.append(qs @ (ks * mid[..., None, :]).transpose(-1, -2))  # [.., pairs, c(i), c(j)]
        where.append(rows * ns + cols)
    blocks = torch.cat(blocks, -3)
    a = blocks.new_zeros(*lead, ns * ns, c, c).index_copy(-3, torch.cat(where), blocks)  # J > I stay zero
    a = a.view(*lead, ns, ns, c, c).transpose(-3, -2)  # [.., ns(I), c(i), ns(J), c(j)]
    return a.reshape(*lead, size, size)


def _leaf_scores(q, k, cq, ck, strict: bool):
    """The smallest blocks: the decay exp(cq_i - ck_j) (exponent <= 0) taken explicitly per
    channel for the pairs j < i only (gathered, so the masked half is never computed), plus
    q_i . k_i on the diagonal (decay exp(0) = 1) unless ``strict``. Returns [.., c, c]."""
    c = q.shape[-2]
    rows, cols = torch.tril_indices(c, c, -1, device=q.device)
    decay = (cq.index_select(-2, rows) - ck.index_select(-2, cols)).exp()  # [.., pairs, dk]
    blocks = [(q.index_select(-2, rows) * decay * k.index_select(-2, cols)).sum(-1)]
    where = [rows * c + cols]
    if not strict:
        blocks.append((q * k).sum(-1))
        where.append(torch.arange(c, device=q.device) * (c + 1))
    blocks = torch.cat(blocks, -1)
    a = blocks.new_zeros(*q.shape[:-2], c * c).index_copy(-1, torch.cat(where), blocks)
    return a.view(*q.shape[:-2], c, c)
