"""Blocked two-level scan for h_t = a_t * h_{t-1} + b_t, with a hand-written backward.

A per-token Python loop costs T dispatches forward and, under autograd, T recorded nodes to walk
backward. Here the sequence is cut into n blocks of L tokens (L ~ sqrt(T)):

1. *inside blocks*: all blocks are scanned at once from a zero start. Step i updates the
   [B, n, *rest] slice of position i in every block, written in place into one preallocated
   output, so there are L steps instead of T.
2. *across blocks*: the state entering block k is carried from block k-1's local final state
   and its whole-block decay prod(a) (n small steps on [B, *rest]).
3. *fix-up*: h += (a_{k,0} ... a_{k,i}) * carry_k, the running product of the gates inside the
   block times the carried-in state, again one [B, n, *rest] multiply-add per position (this
   keeps the cumulative product to one slice instead of a full cumprod tensor).

A length that is not a multiple of L leaves a tail of fewer than L tokens, scanned token by
token after the blocks (no padded copies of a and b). About 3 sqrt(T) Python steps in all.
Only products of gates and sums appear: no logs, no division, so gates anywhere in [0, 1]
(exactly 0 included) and inputs of either sign are exact to rounding, and a product of gates
below 1 can only underflow towards 0, which is its true value.

Backward: with g_t = dL/dh_t (total), g_t = grad_t + a_{t+1} g_{t+1} is the same recurrence
run from the end, so it reuses the forward routine on time-flipped inputs (flipped by walking
indices backwards, and shifted by one by starting from g_{T-1} = grad_{T-1}: no copies). Then
dL/db_t = g_t, dL/da_t = g_t * h_{t-1}, dL/dh0 = a_1 * g_1. Saved for backward: a, h and h0.
"""
from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable


def default_block(t: int) -> int:
    """About sqrt(T) tokens per block (balances the L inner steps against the T/L carry steps),
    at least 8 so short sequences are not split into many tiny blocks."""
    return max(8, math.isqrt(max(t, 1)))


def _scan_blocks(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None, block: int,
                 reverse: bool = False, out: torch.Tensor | None = None) -> torch.Tensor:
    """The two-level scan, outside autograd. a, b: [B, T, *rest]; h0: [B, *rest] or None.

    ``reverse=True`` runs h_t = a_t * h_{t+1} + b_t from the end (h0 then sits after the last
    token): the same recurrence on the time-flipped sequence, done by walking indices backwards
    instead of copying flipped tensors. ``out``: a [B, T, *rest] buffer (a view is fine) to fill.
    Large fresh allocations dominate on CPU (page faults), so the only full-size tensor made
    here is the output: no padding copies, no cumulative-product tensor."""
    bsz, t = b.shape[:2]
    h = torch.empty(b.shape, dtype=b.dtype, device=b.device) if out is None else out
    if t == 0:
        return h
    size = max(1, min(block, t))
    n, r = divmod(t, size)
    # n whole blocks (viewed as [B, n, size, *rest]) and a tail of r < size tokens, which comes
    # last in processing order: the end of the sequence, or its start when reverse.
    body = slice(r, t) if reverse else slice(0, n * size)
    ab, bb, hb = (x[:, body].unflatten(1, (n, size)) for x in (a, b, h))
    order = range(size - 1, -1, -1) if reverse else range(size)  # positions in processing order
    blocks = range(n - 1, -1, -1) if reverse else range(n)
    back = 1 if reverse else -1  # offset from a position to the one processed before it

    # level 1: every block from a zero start (the first one from h0), all blocks in each step
    i0, k0 = order[0], blocks[0]
    hb[:, :, i0] = bb[:, :, i0]
    if h0 is not None:
        hb[:, k0, i0].addcmul_(ab[:, k0, i0], h0)
    for i in order[1:]:
        torch.addcmul(bb[:, :, i], ab[:, :, i], hb[:, :, i + back], out=hb[:, :, i])

    if n > 1:
        # level 2: the state entering each later block, from the previous block's local final
        # state and the previous carry through that block's whole decay
        span = ab.prod(dim=2)
        carry = torch.empty_like(span)
        state = hb[:, k0, order[-1]]
        for k in blocks[1:]:
            carry[:, k] = state
            state = torch.addcmul(hb[:, k, order[-1]], span[:, k], state)
        # fix-up: position i of block k gains (a_{k,first} ... a_{k,i}) * carry_k
        later = slice(0, n - 1) if reverse else slice(1, n)
        c = carry[:, later]
        for i in order:
            c.mul_(ab[:, later, i])
            hb[:, later, i].add_(c)

    # the tail continues token by token from the last state of the blocks
    tail = range(r - 1, -1, -1) if reverse else range(n * size, t)
    for p in tail:
        torch.addcmul(b[:, p], a[:, p], h[:, p + back], out=h[:, p])
    return h


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, h0, block):
        h = _scan_blocks(a, b, h0, block)
        ctx.block = block
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        a, h, h0 = ctx.saved_tensors
        # g_t = grad_t + a_{t+1} g_{t+1}, from g_{T-1} = grad_{T-1}: for t < T-1 it is the
        # reversed recurrence over a[1:] and grad[:-1] that starts from grad_{T-1}. Views only.
        g = torch.empty_like(h)
        g[:, -1] = grad[:, -1]
        _scan_blocks(a[:, 1:], grad[:, :-1], grad[:, -1], ctx.block, reverse=True, out=g[:, :-1])
        grad_a = grad_h0 = None
        if ctx.needs_input_grad[0]:  # g_t * h_{t-1}, with h_0 = h0 or zeros
            grad_a = torch.empty_like(g)
            torch.mul(g[:, 1:], h[:, :-1], out=grad_a[:, 1:])
            if h0 is None:
                grad_a[:, 0] = 0
            else:
                torch.mul(g[:, 0], h0, out=grad_a[:, 0])
        if h0 is not None and ctx.needs_input_grad[2]:
            grad_h0 = a[:, 0] * g[:, 0]
        return grad_a, g if ctx.needs_input_grad[1] else None, grad_h0, None


def linear_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None,
                block: int | None = None) -> torch.Tensor:
    """All states of h_t = a_t * h_{t-1} + b_t.

    a, b: [B, T, *rest] (broadcast against each other); h0: [B, *rest] initial state or None
    (zeros); block: tokens per block, default about sqrt(T) (:func:`default_block`).
    Returns h: [B, T, *rest]; the final state is ``h[:, -1]``. Differentiable in a, b and h0
    (first order) through a backward that is itself a two-level scan: no per-token graph."""
    a, b = torch.broadcast_tensors(a, b)
    dtype = torch.promote_types(a.dtype, b.dtype)
    if h0 is not None:
        dtype = torch.promote_types(dtype, h0.dtype)
        h0 = h0.to(dtype).expand(b.shape[:1] + b.shape[2:])
    a, b = a.to(dtype), b.to(dtype)
    if b.shape[1] == 0:
        return b.clone()
    return _LinearScan.apply(a, b, h0, default_block(b.shape[1]) if block is None else int(block))
