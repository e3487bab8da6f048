"""The fast CPU form of the selective scan, with a hand-written backward.

The recurrence ``h_t = exp(dt_t A) * h_{t-1} + (dt_t u_t) outer B_t`` has a [Din, N] state per
token, so the whole sequence of states is [B, T, Din, N]: 16x the activations at N = 16, more
memory than anything else in the model. This form never builds it:

* The sequence is cut into **super-blocks** of S tokens (option ``block``). Only one super-block's
  decays ``exp(dt A)`` and inputs ``dt u B`` ([S, B, Din, N]) exist at a time; its outputs are
  contracted with ``C`` right away (one batched matmul) and its states are dropped.
* Inside a super-block, a **two-level blocked scan**: split S into sub-blocks of L ~ sqrt(S)
  tokens; (1) scan every sub-block from a zero state, all sub-blocks at once, L Python steps, in
  place, carrying along the cumulative product ``P_t`` of decays since the sub-block start (a
  product of factors in (0, 1]: nothing can overflow); (2) walk the S/L sub-block ends to get each
  sub-block's true starting state; (3) add ``P_t * start`` everywhere in one vectorised op. About
  2 sqrt(S) Python steps per super-block instead of S, each on [S/L, B, Din, N] slabs. That pays
  when one token's [B, Din, N] slab is small; when it is large (>= 64k elements, e.g. B=4,
  Din=1024, N=16) each op already amortises its dispatch and the fix-ups are pure extra passes, so
  the default then takes L = S: a plain in-place token loop (option ``sub`` overrides).
* **Backward** (``torch.autograd.Function``): only the inputs and the state at each super-block
  boundary ([n_super, B, Din, N]) are saved. Super-blocks are walked in reverse: recompute the
  states from the boundary, run the same blocked scan backwards for ``g_t = dL/dh_t``::

      g_t = C_t outer dy_t + exp(dt_{t+1} A) * g_{t+1}          (g carried across super-blocks)

  and read every gradient off ``g`` and ``h`` with matmuls and reductions::

      du_t = D dy_t + dt_t (g_t B_t)            dB_t = g_t^T (dt_t u_t)       dC_t = h_t^T dy_t
      ddt_t = u_t (g_t B_t) + sum_n W_t A       dA = sum_t W_t dt_t           dD = sum_t dy_t u_t
      W_t = g_t * exp(dt_t A) * h_{t-1}   (dL/d(dt_t A), elementwise)         dh0 = exp(dt_0 A) g_0

Internally everything is time-major ([T, B, ...]) so a time slice is contiguous and (time, batch)
merge into one matmul batch dimension without copies.
"""
from __future__ import annotations

import math

import torch


#: per-token state elements (B * Din * N) from which one token's slab is big enough to amortise an
#: op's dispatch cost, so the sub-blocks only add work: measured on CPU at B=4, Din=1024, N=16
#: (64k elements), a plain token loop inside the super-block is ~20% faster than sqrt(S) sub-blocks
BIG_SLAB = 1 << 16


def plan(t: int, block: int, sub: int | None = None, width: int = 0) -> tuple[int, int, int]:
    """(super-block length S, sub-block length L, number of super-blocks); S is a multiple of L.
    ``sub=None`` picks L ~ sqrt(S), or L = S (one sub-block: a plain loop, no fix-ups) when
    ``width`` (B * Din * N) is at least :data:`BIG_SLAB`."""
    s = max(1, min(block, t))
    if sub is None:
        sub = s if width >= BIG_SLAB else round(math.sqrt(s))
    sub = max(1, min(s, sub))
    s = -(-s // sub) * sub
    return s, sub, -(-t // s)


def _scan_states(dA, h_start, buf, p, sub: int):
    """Forward blocked scan of one super-block in place: on entry ``buf[1:]`` ([S, B, Din, N]) holds
    the inputs ``dt u B``, on exit ``buf[0] = h_start`` and ``buf[1 + t] = h_t``. ``dA``: the decays
    ``exp(dt A)``; ``p`` receives the cumulative decay from each sub-block's start (pass ``p=dA`` to
    overwrite the decays when they are not needed afterwards)."""
    s, b, din, n = dA.shape
    nb = s // sub
    buf[0] = h_start
    hs, das = buf[1:].view(nb, sub, b, din, n), dA.view(nb, sub, b, din, n)
    ps = p.view(nb, sub, b, din, n)[1:]  # (the first sub-block starts from h_start itself: no P)
    hs[0, 0].addcmul_(das[0, 0], h_start)
    if p is not dA:
        ps[:, 0] = das[1:, 0]
    for j in range(1, sub):  # (1) all sub-blocks at once, the later ones from a zero start
        hs[:, j].addcmul_(das[:, j], hs[:, j - 1])
        if nb > 1:  # P: a running product of decays in (0, 1], no exp needed
            torch.mul(ps[:, j - 1], das[1:, j], out=ps[:, j])
    for k in range(1, nb):  # (2) true end state of each sub-block; buf[k*sub] is the state before it
        hs[k, -1].addcmul_(ps[k - 1, -1], buf[k * sub])
    if nb > 1 and sub > 1:  # (3) the rest of each sub-block gets its starting state, decayed
        hs[1:, :-1].addcmul_(ps[:, :-1], buf[sub:s:sub].unsqueeze(1))


def _pad_time_major(x: torch.Tensor, tp: int) -> torch.Tensor:
    """[B, T, ...] -> contiguous [Tp, B, ...], zero-padded at the end (dt = 0 there: no decay, no write)."""
    x = x.transpose(0, 1)
    if tp > x.shape[0]:
        x = torch.cat([x, x.new_zeros(tp - x.shape[0], *x.shape[1:])])
    return x.contiguous()


class _SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, dt, A, Bm, Cm, D, h0, block: int, sub: int | None):
        b, t, din = u.shape
        n = A.shape[1]
        s, sub, n_super = plan(t, block, sub, b * din * n)
        tp = s * n_super
        ut, dtt, bt, ct = (_pad_time_major(x, tp) for x in (u, dt, Bm, Cm))
        dtu = dtt * ut
        y = ut.new_empty(tp, b, din)
        bounds = ut.new_empty(n_super, b, din, n)  # state entering each super-block
        buf = ut.new_empty(s + 1, b, din, n)
        dA = ut.new_empty(s, b, din, n)
        h = ut.new_zeros(b, din, n) if h0 is None else h0
        for i in range(n_super):
            sl = slice(i * s, (i + 1) * s)
            bounds[i] = h
            torch.mul(dtt[sl, :, :, None], A, out=dA).exp_()
            torch.mul(dtu[sl, :, :, None], bt[sl, :, None, :], out=buf[1:])
            _scan_states(dA, h, buf, dA, sub)
            # y_t = C_t^T h_t^T: the vector on the left keeps MKL on its fast path
            torch.bmm(ct[sl].view(s * b, 1, n), buf[1:].view(s * b, din, n).transpose(1, 2),
                      out=y[sl].view(s * b, 1, din))
            h = buf[-1].clone()
        ctx.save_for_backward(ut, dtt, A, bt, ct, D, bounds)
        ctx.dims, ctx.has_h0 = (t, s, sub), h0 is not None
        y = y[:t].transpose(0, 1)
        y = y + u * D if D is not None else y.contiguous()
        return y, h

    @staticmethod
    def backward(ctx, dy, dh):
        ut, dtt, A, bt, ct, D, bounds = ctx.saved_tensors
        t, s, sub = ctx.dims
        tp, b, din = ut.shape
        n, nb, n_super = A.shape[1], s // sub, tp // s
        dyt = _pad_time_major(dy, tp)
        dtu = dtt * ut
        du, ddt = torch.empty_like(ut), torch.empty_like(ut)
        dB, dC = torch.empty_like(bt), torch.empty_like(ct)
        dA_total = torch.zeros_like(A)
        buf = ut.new_empty(s + 1, b, din, n)
        dA, p, g = (ut.new_empty(s, b, din, n) for _ in range(3))
        gs, das, qs = (x.view(nb, sub, b, din, n) for x in (g, dA, p))
        carry = ut.new_empty(nb, b, din, n)
        r = dh if dh is not None else ut.new_zeros(b, din, n)
        for i in reversed(range(n_super)):
            sl = slice(i * s, (i + 1) * s)
            # states h_{t-1}, h_t of this super-block, recomputed from its boundary
            torch.mul(dtt[sl, :, :, None], A, out=dA).exp_()
            torch.mul(dtu[sl, :, :, None], bt[sl, :, None, :], out=buf[1:])
            _scan_states(dA, bounds[i], buf, p, sub)
            # reverse blocked scan for g, mirroring the forward one; q_t is the decay from t to the
            # sub-block end (the product of exp(dt A) over t+1 .. end)
            torch.mul(dyt[sl, :, :, None], ct[sl, :, None, :], out=g)
            gs[-1, -1] += r  # the last sub-block knows the gradient arriving from the future
            qs[:-1, -1] = 1
            for j in range(sub - 2, -1, -1):
                gs[:, j].addcmul_(das[:, j + 1], gs[:, j + 1])
                if nb > 1:
                    torch.mul(qs[:-1, j + 1], das[:-1, j + 1], out=qs[:-1, j])
            for k in range(nb - 2, -1, -1):  # carry[k]: dL/dh at the end of sub-block k, from the future
                torch.mul(das[k + 1, 0], gs[k + 1, 0], out=carry[k])
                gs[k, 0].addcmul_(qs[k, 0], carry[k])
            if nb > 1 and sub > 1:
                gs[:-1, 1:].addcmul_(qs[:-1, 1:], carry[:-1].unsqueeze(1))
            r = das[0, 0] * gs[0, 0]  # dL/dh entering this super-block
            # gradients: matrix-vector products over (time x batch), vector on the left (MKL's
            # fast path), and reductions
            h, g2 = buf[1:].view(s * b, din, n), g.view(s * b, din, n)
            torch.bmm(dyt[sl].view(s * b, 1, din), h, out=dC[sl].view(s * b, 1, n))
            torch.bmm(dtu[sl].view(s * b, 1, din), g2, out=dB[sl].view(s * b, 1, n))
            gb = torch.bmm(bt[sl].view(s * b, 1, n), g2.transpose(1, 2)).view(s, b, din)  # g_t B_t
            torch.mul(dtt[sl], gb, out=du[sl])
            w = dA.mul_(g).mul_(buf[:-1])  # dL/d(dt_t A), elementwise
            torch.addcmul(torch.mul(w, A, out=p).sum(-1), ut[sl], gb, out=ddt[sl])
            dA_total += w.mul_(dtt[sl, :, :, None]).sum((0, 1))
        du, ddt, dB, dC = (x[:t].transpose(0, 1) for x in (du, ddt, dB, dC))
        dD = None
        if D is not None:
            du = du + dy * D
            dD = (dy * ut[:t].transpose(0, 1)).sum((0, 1))
        return du, ddt, dA_total, dB, dC, dD, (r if ctx.has_h0 else None), None, None


def selective_scan_chunk(u, dt, A, Bm, Cm, D=None, h0=None, block: int = 64, sub: int | None = None):
    """Same contract as :func:`~core.ops.selective_scan.naive.selective_scan_naive`; ``block`` is
    the super-block length S (peak extra memory ~5 [S, B, Din, N] buffers in backward)."""
    return _SelectiveScan.apply(u, dt, A, Bm, Cm, D, h0, block, sub)
