"""The selective scan as two Triton kernels (forward and backward): the GPU form of ``chunk.py``.

Every (batch, channel, state) element runs its own independent linear recurrence
``h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t``; only ``y_t = h_t C_t`` mixes the N states of a
channel, and only the gradients of the shared B, C, A mix channels. So the work splits cleanly:

* **Grid** ``(batch, Din / BLOCK_D)``. A program owns BLOCK_D channels of one sequence and keeps
  their [BLOCK_D, N] state in registers (N padded to a power of two and masked), walking the tokens
  one by one. The parallelism is over B * Din * N lanes, not over time: at Mamba sizes that is
  already hundreds of thousands of lanes, and a sequential walk needs no second pass of fix-ups.
* **Forward** writes y (with the skip term D u) and the final state, and keeps the state only at
  every K-th token (``checkpoint``): [B, ceil(T/K), Din, N] floats, never the [B, T, Din, N] states
  of the whole sequence. Tokens past T inside the last segment are read as dt = u = 0: no decay and
  no write, so the state passes through them unchanged.
* **Backward** walks the segments in reverse. Per segment it first recomputes the states forward
  from the checkpoint into a per-program scratch of K states ([K, BLOCK_D, BLOCK_N]; undoing the
  recurrence backwards would divide by decays that underflow to 0), then runs the reverse
  recurrence for ``g_t = dL/dh_t``::

      g_t = C_t dy_t + exp(dt_{t+1} A) g_{t+1}             (g_T starts from dL/dh_T)

  and reads every gradient off g and the states (the formulas are derived in ``chunk.py``)::

      du_t = D dy_t + dt_t (g_t B_t)            dB_t = g_t^T (dt_t u_t)       dC_t = h_t^T dy_t
      ddt_t = u_t (g_t B_t) + sum_n W_t A       dA = sum_t W_t dt_t           dh0 = exp(dt_0 A) g_0
      W_t = g_t * exp(dt_t A) * h_{t-1}

  du and ddt belong to the program's own channels. dB, dC (summed over channels) and dA (summed
  over the batch) are written as per-program partials and summed in torch: deterministic, unlike
  atomics. dD = sum dy u is a plain torch reduction.

Everything is computed in float32; ``selective_scan`` only routes float32 CUDA work here.
The module imports without Triton (``HAS_TRITON`` is then False and nothing dispatches here).
"""
from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
except ImportError:
    HAS_TRITON = False


if HAS_TRITON:

    @triton.jit
    def _forward_kernel(u_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, h0_ptr,  # inputs
                        y_ptr, ht_ptr, ckpt_ptr,  # outputs
                        T, DIN, N, N_SEG,
                        HAS_D: tl.constexpr, HAS_H0: tl.constexpr, K: tl.constexpr,
                        BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
        bat = tl.program_id(0).to(tl.int64)
        offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        offs_n = tl.arange(0, BLOCK_N)
        mask_d, mask_n = offs_d < DIN, offs_n < N
        mask_dn = mask_d[:, None] & mask_n[None, :]
        dn = offs_d[:, None] * N + offs_n[None, :]  # offsets inside one [Din, N] state
        # this sequence's rows; padded channels / states read A = B = u = 0 and stay at h = 0
        u_ptr += bat * T * DIN
        dt_ptr += bat * T * DIN
        y_ptr += bat * T * DIN
        b_ptr += bat * T * N
        c_ptr += bat * T * N
        ckpt_ptr += bat * N_SEG * DIN * N

        A = tl.load(a_ptr + dn, mask=mask_dn, other=0.0)
        if HAS_D:
            skip = tl.load(d_ptr + offs_d, mask=mask_d, other=0.0)
        h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
        if HAS_H0:
            h = tl.load(h0_ptr + bat * DIN * N + dn, mask=mask_dn, other=0.0)
        for seg in range(N_SEG):
            tl.store(ckpt_ptr + seg * DIN * N + dn, h, mask=mask_dn)
            for i in range(K):
                t = seg * K + i
                live = t < T
                dt = tl.load(dt_ptr + t * DIN + offs_d, mask=mask_d & live, other=0.0)
                u = tl.load(u_ptr + t * DIN + offs_d, mask=mask_d & live, other=0.0)
                bt = tl.load(b_ptr + t * N + offs_n, mask=mask_n & live, other=0.0)
                ct = tl.load(c_ptr + t * N + offs_n, mask=mask_n & live, other=0.0)
                h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * bt[None, :]
                y = tl.sum(h * ct[None, :], axis=1)
                if HAS_D:
                    y += skip * u
                tl.store(y_ptr + t * DIN + offs_d, y, mask=mask_d & live)
        tl.store(ht_ptr + bat * DIN * N + dn, h, mask=mask_dn)

    @triton.jit
    def _backward_kernel(u_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, ckpt_ptr, dy_ptr, dht_ptr,  # inputs
                         scratch_ptr,  # [B, Din / BLOCK_D, K, BLOCK_D, BLOCK_N] recomputed states
                         du_ptr, ddt_ptr, da_ptr, db_ptr, dc_ptr, dh0_ptr,  # outputs (da/db/dc: partials)
                         BATCH, T, DIN, N, N_SEG,
                         HAS_D: tl.constexpr, HAS_H0: tl.constexpr,
                         K: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
        bat = tl.program_id(0).to(tl.int64)
        blk = tl.program_id(1)
        offs_d = blk * BLOCK_D + tl.arange(0, BLOCK_D)
        offs_n = tl.arange(0, BLOCK_N)
        mask_d, mask_n = offs_d < DIN, offs_n < N
        mask_dn = mask_d[:, None] & mask_n[None, :]
        dn = offs_d[:, None] * N + offs_n[None, :]
        local = tl.arange(0, BLOCK_D)[:, None] * BLOCK_N + offs_n[None, :]  # inside one scratch state
        u_ptr += bat * T * DIN
        dt_ptr += bat * T * DIN
        dy_ptr += bat * T * DIN
        du_ptr += bat * T * DIN
        ddt_ptr += bat * T * DIN
        b_ptr += bat * T * N
        c_ptr += bat * T * N
        db_ptr += (blk * BATCH + bat) * T * N  # partials [Din / BLOCK_D, B, T, N]
        dc_ptr += (blk * BATCH + bat) * T * N
        ckpt_ptr += bat * N_SEG * DIN * N
        scratch_ptr += (bat * tl.num_programs(1) + blk) * K * BLOCK_D * BLOCK_N

        A = tl.load(a_ptr + dn, mask=mask_dn, other=0.0)
        if HAS_D:
            skip = tl.load(d_ptr + offs_d, mask=mask_d, other=0.0)
        g = tl.load(dht_ptr + bat * DIN * N + dn, mask=mask_dn, other=0.0)  # dL/dh from the future
        da = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
        for j in range(N_SEG):
            seg = N_SEG - 1 - j
            # (1) the states before each of the segment's tokens, recomputed from its checkpoint
            h = tl.load(ckpt_ptr + seg * DIN * N + dn, mask=mask_dn, other=0.0)
            tl.debug_barrier()  # the previous segment's reads of the scratch are done
            for i in range(K):
                t = seg * K + i
                live = t < T
                tl.store(scratch_ptr + i * BLOCK_D * BLOCK_N + local, h)
                dt = tl.load(dt_ptr + t * DIN + offs_d, mask=mask_d & live, other=0.0)
                u = tl.load(u_ptr + t * DIN + offs_d, mask=mask_d & live, other=0.0)
                bt = tl.load(b_ptr + t * N + offs_n, mask=mask_n & live, other=0.0)
                h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * bt[None, :]
            tl.debug_barrier()  # the scratch is written before any thread reads it back
            # (2) the reverse recurrence over the segment, and the gradients of each token
            for r in range(K):
                i = K - 1 - r
                t = seg * K + i
                live = t < T
                h_prev = tl.load(scratch_ptr + i * BLOCK_D * BLOCK_N + local)
                dt = tl.load(dt_ptr + t * DIN + offs_d, mask=mask_d & live, other=0.0)
                u = tl.load(u_ptr + t * DIN + offs_d, mask=mask_d & live, other=0.0)
                dy = tl.load(dy_ptr + t * DIN + offs_d, mask=mask_d & live, other=0.0)
                bt = tl.load(b_ptr + t * N + offs_n, mask=mask_n & live, other=0.0)
                ct = tl.load(c_ptr + t * N + offs_n, mask=mask_n & live, other=0.0)
                decay = tl.exp(dt[:, None] * A)
                h = decay * h_prev + (dt * u)[:, None] * bt[None, :]
                g += dy[:, None] * ct[None, :]
                gb = tl.sum(g * bt[None, :], axis=1)
                w = g * decay * h_prev  # dL/d(dt_t A)
                du = dt * gb
                if HAS_D:
                    du += skip * dy
                tl.store(du_ptr + t * DIN + offs_d, du, mask=mask_d & live)
                tl.store(ddt_ptr + t * DIN + offs_d, u * gb + tl.sum(w * A, axis=1), mask=mask_d & live)
                tl.store(db_ptr + t * N + offs_n, tl.sum(g * (dt * u)[:, None], axis=0), mask=mask_n & live)
                tl.store(dc_ptr + t * N + offs_n, tl.sum(h * dy[:, None], axis=0), mask=mask_n & live)
                da += w * dt[:, None]
                g = decay * g
        tl.store(da_ptr + bat * DIN * N + dn, da, mask=mask_dn)  # partials [B, Din, N]
        if HAS_H0:
            tl.store(dh0_ptr + bat * DIN * N + dn, g, mask=mask_dn)


class _SelectiveScanTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, dt, A, Bm, Cm, D, h0, checkpoint: int, block_d: int):
        b, t, din = u.shape
        n = A.shape[1]
        n_seg = triton.cdiv(t, checkpoint)
        y = torch.empty_like(u)
        ht = u.new_empty(b, din, n)
        ckpt = u.new_empty(b, n_seg, din, n)  # state entering each segment of `checkpoint` tokens
        grid = (b, triton.cdiv(din, block_d))
        _forward_kernel[grid](u, dt, A, Bm, Cm, u if D is None else D, ht if h0 is None else h0,
                              y, ht, ckpt, t, din, n, n_seg,
                              HAS_D=D is not None, HAS_H0=h0 is not None, K=checkpoint,
                              BLOCK_D=block_d, BLOCK_N=triton.next_power_of_2(n))
        ctx.save_for_backward(u, dt, A, Bm, Cm, D, h0, ckpt)
        ctx.checkpoint, ctx.block_d = checkpoint, block_d
        return y, ht

    @staticmethod
    def backward(ctx, dy, dht):
        u, dt, A, Bm, Cm, D, h0, ckpt = ctx.saved_tensors
        k, block_d = ctx.checkpoint, ctx.block_d
        b, t, din = u.shape
        n, n_seg, n_blk = A.shape[1], ckpt.shape[1], triton.cdiv(din, block_d)
        block_n = triton.next_power_of_2(n)
        dy, dht = dy.contiguous(), dht.contiguous()  # (autograd hands zeros for an unused output)
        du, ddt = torch.empty_like(u), torch.empty_like(dt)
        da = u.new_empty(b, din, n)
        db, dc = u.new_empty(n_blk, b, t, n), u.new_empty(n_blk, b, t, n)
        dh0 = None if h0 is None else torch.empty_like(h0)
        scratch = u.new_empty(b, n_blk, k, block_d, block_n)
        _backward_kernel[(b, n_blk)](u, dt, A, Bm, Cm, u if D is None else D, ckpt, dy, dht,
                                     scratch,
                                     du, ddt, da, db, dc, da if dh0 is None else dh0,
                                     b, t, din, n, n_seg,
                                     HAS_D=D is not None, HAS_H0=h0 is not None,
                                     K=k, BLOCK_D=block_d, BLOCK_N=block_n)
        dD = None if D is None else (dy * u).sum((0, 1))
        return du, ddt, da.sum(0), db.sum(0), dc.sum(0), dD, dh0, None, None


def selective_scan_triton(u, dt, A, Bm, Cm, D=None, h0=None, checkpoint: int = 64, block_d: int = 16):
    """Same contract as :func:`~core.ops.selective_scan.naive.selective_scan_naive`, computed in
    float32 by Triton kernels. ``checkpoint``: tokens between the states saved for backward (the
    backward's scratch holds that many states per program); ``block_d``: channels per program, a
    power of two."""
    args = [None if x is None else x.float().contiguous() for x in (u, dt, A, Bm, Cm, D, h0)]
    y, h = _SelectiveScanTriton.apply(*args, checkpoint, block_d)
    return y.to(u.dtype), h.to(u.dtype)
