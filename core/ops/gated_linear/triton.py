"""Triton kernels for the chunked recurrence with per-head gates (g: [B, H, T]), forward and backward.

Same algorithm as ``_chunk_per_head`` in chunk.py. Per (batch, head), cut the sequence into chunks
of C tokens, with cum_i the cumulative log gate from the chunk start through token i, L = cum_{C-1}
the whole-chunk log decay, S_c the state at the start of chunk c and q already scaled:

    o_i     = sum_{j <= i} (q_i . k_j) exp(cum_i - cum_j) v_j  +  exp(cum_i) q_i S_c     (intra + inter)
    S_{c+1} = exp(L) S_c  +  sum_j exp(L - cum_j) k_j^T v_j

Every exponent is <= 0, so nothing overflows however strong the decay.

Forward, two kernels:
  _states_fwd   grid (Dk/BK, Dv/BV, B*H): walks the chunks in order, stores every S_c and the final state.
  _output_fwd   grid (Dv/BV, n chunks, B*H): every chunk at once, from the stored S_c.

Backward, with D_c the gradient of the loss w.r.t. the state at the END of chunk c (the start of c+1;
for the last chunk, the incoming gradient of the final state):
  _states_bwd   grid (Dk/BK, Dv/BV, B*H): walks the chunks in reverse, D_{c-1} = exp(L_c) D_c +
                (q exp(cum))_c^T do_c; stores every D_c, and returns the gradient of the initial state.
  _dv_bwd       grid (Dv/BV, n, B*H): dv_j = sum_{i >= j} A_ij do_i + exp(L - cum_j) k_j D_c,
                with A_ij = (q_i . k_j) exp(cum_i - cum_j) recomputed.
  _dqdk_bwd     grid (Dk/BK, n, B*H): with dP_ij = (do_i . v_j) exp(cum_i - cum_j),
                dq_i = sum_j dP_ij k_j + exp(cum_i) do_i S_c^T,
                dk_j = sum_i dP_ij q_i + exp(L - cum_j) v_j D_c^T.

The gate gradient needs no kernel. Each cum_t enters only through exponents with coefficient +1
where t is the query side (cum_i) and -1 where it is the key side (cum_j); L = cum_{C-1} also
scales everything in S_{c+1}. Hence, with the true gradients dq, dk from above,

    dcum_t = q_t . dq_t - k_t . dk_t   (+ <D_c, S_{c+1}> at the chunk's last token),

and autograd of the torch cumsum that made cum turns dcum into dg (a reverse cumsum).
Saved for backward: the padded inputs, cum, every chunk-start state S_c and the final state.

The wrapper pads T to a multiple of C (zero q, k, v and zero log gates change nothing) and Dk, Dv
to powers of two >= 16 (zero channels change nothing), as tl.dot needs, and computes in float32.
Matmuls use TF32 when torch.backends.cuda.matmul.allow_tf32 is set, full float32 otherwise.
"""
from __future__ import annotations  # keeps the tl.constexpr annotations lazy: no triton, no error

import torch
import torch.nn.functional as F

try:
    import triton
    import triton.language as tl
    HAS_TRITON = True
except ImportError:  # the PyTorch chunked form serves instead; these kernels are never called
    HAS_TRITON = False

_jit = triton.jit if HAS_TRITON else (lambda fn: fn)

#: largest Dk / Dv block one program holds
_BLOCK = 64


def gated_linear_triton(q, k, v, g, state=None, scale: float | None = None, chunk: int = 64):
    """Same contract as :func:`~core.ops.gated_linear.chunk.gated_linear_chunk` for per-head gates:
    q, k [B, H, T, Dk], v [B, H, T, Dv], g [B, H, T], state [B, H, Dk, Dv] or None; returns
    (o [B, H, T, Dv], final state [B, H, Dk, Dv]) in the dtype of q. ``chunk`` is rounded up to a
    power of two >= 16 (a tile size: the result does not depend on it)."""
    b, h, t, dk = q.shape
    dv, dtype = v.shape[-1], q.dtype
    scale = dk**-0.5 if scale is None else scale
    chunk = max(16, triton.next_power_of_2(chunk))
    pk, pv = max(16, triton.next_power_of_2(dk)) - dk, max(16, triton.next_power_of_2(dv)) - dv
    pt = (-t) % chunk
    q = F.pad(q.float() * scale, (0, pk, 0, pt))
    k = F.pad(k.float(), (0, pk, 0, pt))
    v = F.pad(v.float(), (0, pv, 0, pt))
    cum = F.pad(g.float(), (0, pt)).unflatten(-1, (-1, chunk)).cumsum(-1).flatten(-2)
    s0 = None if state is None else F.pad(state.float(), (0, pv, 0, pk))
    o, s = _ChunkPerHead.apply(q, k, v, cum, s0, chunk)
    return o[:, :, :t, :dv].to(dtype), s[:, :, :dk, :dv].to(dtype)


class _ChunkPerHead(torch.autograd.Function):
    """q (scaled), k [B, H, T, Dk], v [B, H, T, Dv], cum [B, H, T] (per-chunk cumulative log gates),
    s0 [B, H, Dk, Dv] or None; T a multiple of ``chunk``, Dk and Dv powers of two >= 16."""

    @staticmethod
    def forward(ctx, q, k, v, cum, s0, chunk):
        q, k, v, cum = (x.contiguous() for x in (q, k, v, cum))  # the kernels index dense [B, H, T, D]
        s0 = None if s0 is None else s0.contiguous()
        b, h, t, dk = q.shape
        dv, n = v.shape[-1], t // chunk
        bk, bv = min(dk, _BLOCK), min(dv, _BLOCK)
        dims = dict(T=t, N=n, DK=dk, DV=dv, C=chunk, DOT=_dot_precision())
        starts = q.new_empty(b, h, n, dk, dv)
        final = q.new_empty(b, h, dk, dv)
        init = final if s0 is None else s0  # without an initial state, a pointer never read
        _states_fwd[(dk // bk, dv // bv, b * h)](
            k, v, cum, init, starts, final, HAS_INIT=s0 is not None, BK=bk, BV=bv, **dims)
        o = torch.empty_like(v)
        _output_fwd[(dv // bv, n, b * h)](q, k, v, cum, starts, o, BK=bk, BV=bv, **dims)
        ctx.save_for_backward(q, k, v, cum, starts, final)
        ctx.dims, ctx.blocks, ctx.has_init = dims, (bk, bv), s0 is not None
        return o, final

    @staticmethod
    def backward(ctx, do, dfinal):
        q, k, v, cum, starts, final = ctx.saved_tensors
        dims, (bk, bv) = ctx.dims, ctx.blocks
        b, h, t, dk = q.shape
        dv, n, chunk = v.shape[-1], dims["N"], dims["C"]
        do, dfinal = do.contiguous(), dfinal.contiguous()
        dends = torch.empty_like(starts)
        ds0 = torch.empty_like(final)
        _states_bwd[(dk // bk, dv // bv, b * h)](q, do, cum, dfinal, dends, ds0, BK=bk, BV=bv, **dims)
        dq, dk_, dv_ = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        _dv_bwd[(dv // bv, n, b * h)](q, k, do, cum, dends, dv_, BK=bk, BV=bv, **dims)
        _dqdk_bwd[(dk // bk, n, b * h)](q, k, v, do, cum, starts, dends, dq, dk_, BK=bk, BV=bv, **dims)
        dcum = (q * dq - k * dk_).sum(-1)
        ends = torch.cat([starts[:, :, 1:], final[:, :, None]], 2)  # the state at each chunk's end
        dcum.view(b, h, n, chunk)[..., -1] += (dends * ends).sum((-1, -2))
        return dq, dk_, dv_, dcum, ds0 if ctx.has_init else None, None


def _dot_precision():
    return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"


@_jit
def _decay(cum, C: tl.constexpr):
    """[C, C] causal decay exp(cum_i - cum_j) for j <= i, 0 above the diagonal."""
    r = tl.arange(0, C)
    diff = tl.where(r[:, None] >= r[None, :], cum[:, None] - cum[None, :], float("-inf"))
    return tl.exp(diff)


@_jit
def _states_fwd(k, v, cum, s0, starts, final, T, N, DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr,
                BK: tl.constexpr, BV: tl.constexpr, HAS_INIT: tl.constexpr, DOT: tl.constexpr):
    """One (Dk block, Dv block, head) of the state, carried through the chunks in order."""
    ik, iv, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    rk, rv, rc = ik * BK + tl.arange(0, BK), iv * BV + tl.arange(0, BV), tl.arange(0, C)
    s_at = rk[:, None] * DV + rv[None, :]  # this block inside one [Dk, Dv] state
    s = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_INIT:
        s = tl.load(s0 + bh * DK * DV + s_at)
    for c in range(N):
        tl.store(starts + (bh * N + c) * DK * DV + s_at, s)
        tok = bh * T + c * C + rc
        kc = tl.load(k + tok[:, None] * DK + rk[None, :])
        vc = tl.load(v + tok[:, None] * DV + rv[None, :])
        cc = tl.load(cum + tok)
        last = tl.load(cum + bh * T + c * C + C - 1)
        kc = kc * tl.exp(last - cc)[:, None]
        s = s * tl.exp(last) + tl.dot(tl.trans(kc), vc, input_precision=DOT)
    tl.store(final + bh * DK * DV + s_at, s)


@_jit
def _output_fwd(q, k, v, cum, starts, o, T, N, DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr,
                BK: tl.constexpr, BV: tl.constexpr, DOT: tl.constexpr):
    """One (Dv block, chunk, head) of the output: decayed causal scores times v, plus the queries
    reading the chunk-start state."""
    iv, c, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    rv, rc = iv * BV + tl.arange(0, BV), tl.arange(0, C)
    tok = bh * T + c * C + rc
    scores = tl.zeros([C, C], dtype=tl.float32)
    inter = tl.zeros([C, BV], dtype=tl.float32)
    for ik in range(DK // BK):
        rk = ik * BK + tl.arange(0, BK)
        qc = tl.load(q + tok[:, None] * DK + rk[None, :])
        kc = tl.load(k + tok[:, None] * DK + rk[None, :])
        s = tl.load(starts + (bh * N + c) * DK * DV + rk[:, None] * DV + rv[None, :])
        scores += tl.dot(qc, tl.trans(kc), input_precision=DOT)
        inter += tl.dot(qc, s, input_precision=DOT)
    cc = tl.load(cum + tok)
    vc = tl.load(v + tok[:, None] * DV + rv[None, :])
    out = inter * tl.exp(cc)[:, None] + tl.dot(scores * _decay(cc, C), vc, input_precision=DOT)
    tl.store(o + tok[:, None] * DV + rv[None, :], out)


@_jit
def _states_bwd(q, do, cum, dfinal, dends, ds0, T, N, DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr,
                BK: tl.constexpr, BV: tl.constexpr, DOT: tl.constexpr):
    """One (Dk block, Dv block, head) of the state gradient, carried through the chunks in reverse."""
    ik, iv, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    rk, rv, rc = ik * BK + tl.arange(0, BK), iv * BV + tl.arange(0, BV), tl.arange(0, C)
    s_at = rk[:, None] * DV + rv[None, :]
    ds = tl.load(dfinal + bh * DK * DV + s_at)
    for i in range(N):
        c = N - 1 - i
        tl.store(dends + (bh * N + c) * DK * DV + s_at, ds)
        tok = bh * T + c * C + rc
        qc = tl.load(q + tok[:, None] * DK + rk[None, :])
        doc = tl.load(do + tok[:, None] * DV + rv[None, :])
        cc = tl.load(cum + tok)
        last = tl.load(cum + bh * T + c * C + C - 1)
        qc = qc * tl.exp(cc)[:, None]
        ds = ds * tl.exp(last) + tl.dot(tl.trans(qc), doc, input_precision=DOT)
    tl.store(ds0 + bh * DK * DV + s_at, ds)


@_jit
def _dv_bwd(q, k, do, cum, dends, dv, T, N, DK: tl.constexpr, DV: tl.constexpr, C: tl.constexpr,
            BK: tl.constexpr, BV: tl.constexpr, DOT: tl.constexpr):
    """One (Dv block, chunk, head) of dv: through the scores, and through the chunk-end state."""
    iv, c, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    rv, rc = iv * BV + tl.arange(0, BV), tl.arange(0, C)
    tok = bh * T + c * C + rc
    scores = tl.zeros([C, C], dtype=tl.float32)
    via_state = tl.zeros([C, BV], dtype=tl.float32)
    for ik in range(DK // BK):
        rk = ik * BK + tl.arange(0, BK)
        qc = tl.load(q + tok[:, None] * DK + rk[None, :])
        kc = tl.load(k + tok[:, None] * DK + rk[None, :])
        ds = tl.load(dends + (bh * N + c) * DK * DV + rk[:, None] * DV + rv[None, :])
        scores += tl.dot(qc, tl.trans(kc), input_precision=DOT)
        via_state += tl.dot(kc, ds, input_precision=DOT)
    cc = tl.load(cum + tok)
    last = tl.load(cum + bh * T + c * C + C - 1)
    doc = tl.load(do + tok[:, None] * DV + rv[None, :])
    out = via_state * tl.exp(last - cc)[:, None]
    out += tl.dot(tl.trans(scores * _decay(cc, C)), doc, input_precision=DOT)
    tl.store(dv + tok[:, None] * DV + rv[None, :], out)


@_jit
def _dqdk_bwd(q, k, v, do, cum, starts, dends, dq, dk, T, N, DK: tl.constexpr, DV: tl.constexpr,
              C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, DOT: tl.constexpr):
    """One (Dk block, chunk, head) of dq and dk: through the output-value scores dP, and through
    the chunk-start state (dq) or the chunk-end state (dk)."""
    ik, c, bh = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
    rk, rc = ik * BK + tl.arange(0, BK), tl.arange(0, C)
    tok = bh * T + c * C + rc
    dp = tl.zeros([C, C], dtype=tl.float32)
    dq_state = tl.zeros([C, BK], dtype=tl.float32)
    dk_state = tl.zeros([C, BK], dtype=tl.float32)
    for iv in range(DV // BV):
        rv = iv * BV + tl.arange(0, BV)
        doc = tl.load(do + tok[:, None] * DV + rv[None, :])
        vc = tl.load(v + tok[:, None] * DV + rv[None, :])
        state_at = (bh * N + c) * DK * DV + rk[:, None] * DV + rv[None, :]
        s = tl.load(starts + state_at)
        ds = tl.load(dends + state_at)
        dp += tl.dot(doc, tl.trans(vc), input_precision=DOT)
        dq_state += tl.dot(doc, tl.trans(s), input_precision=DOT)
        dk_state += tl.dot(vc, tl.trans(ds), input_precision=DOT)
    cc = tl.load(cum + tok)
    last = tl.load(cum + bh * T + c * C + C - 1)
    qc = tl.load(q + tok[:, None] * DK + rk[None, :])
    kc = tl.load(k + tok[:, None] * DK + rk[None, :])
    dp = dp * _decay(cc, C)
    dqc = dq_state * tl.exp(cc)[:, None] + tl.dot(dp, kc, input_precision=DOT)
    dkc = dk_state * tl.exp(last - cc)[:, None] + tl.dot(tl.trans(dp), qc, input_precision=DOT)
    tl.store(dq + tok[:, None] * DK + rk[None, :], dqc)
    tl.store(dk + tok[:, None] * DK + rk[None, :], dkc)
