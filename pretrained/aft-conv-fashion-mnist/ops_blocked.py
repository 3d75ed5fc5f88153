# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The blocked, max-stabilised algorithm: exact for any input (keys hundreds apart included); autograd
differentiates it. ops.py runs it when the fast path's range check fails, or when asked for algorithm="blocked".

How it takes the sums, and why:

* Exponentials are only ever taken of differences to a maximum, so nothing overflows. A single maximum over the
  whole sequence is not enough in causal mode: an early row whose keys are all far below a later key underflows
  to 0/0. So the keys are cut into blocks and every block of keys is combined with a block of queries that sees
  all of it ("a rectangle"). Inside a rectangle the maximum is taken over its own keys, which every row of the
  rectangle sees, so its sums are accurate; rectangles are then added after rescaling to a per-row upper bound of
  the row's exponents (the online-softmax trick, as RWKV's (num, den, max) state does).
* The causal triangle of a block is split recursively into rectangles (the lower-left quarter, then the two
  smaller triangles), log2(C) batched matrix products in all.
* Keys that no row reads through a bias (out of the window) are summed per block and combined across blocks by a
  log-depth parallel scan of (num, den, max) triples, so no Python loop runs over time.
* Nothing of size T*T*D or T*S*D is allocated: the rectangles are (C x C) bias matrices times (C x D) values.

Entry points (inputs already in float32/64, valid (..., T, 1) bool or None): blocked_banded (AFT-local, AFT-conv-1d),
blocked_simple (AFT-simple) and blocked_full (AFT-full).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .ops_common import (
    _EMPTY_MAX,
    _combine,
    _key_floor,
    _masked_keys,
    _masked_values,
    _next_pow2,
    _pad_time,
    _shift,
    _to_blocks,
)

_FULL_BLOCK = 128


# ----------------------------------------------------------------------------------------------------------------
# The (num, den, max) sums of blocks
# ----------------------------------------------------------------------------------------------------------------


def _rectangle(bias: torch.Tensor, kappa: torch.Tensor, v: torch.Tensor):
    """Sums of one fully visible block: rows see every key of it.

    bias (..., R, K) pairwise bias, kappa (..., K, Dk) keys (Dk = D, or 1 for a key shared by a head), v (..., K, D).
    Returns num, den of shape (..., R, D) / (..., R, Dk) relative to exp(m), and m (..., R, Dk).
    """
    # A block whose keys (or biases) are all -inf has max -inf, and exp(-inf - -inf) is NaN: clamped to the empty
    # triple's max, its exponentials are exactly 0 and it adds nothing, as Eq. 2 says.
    b_max = bias.amax(dim=-1, keepdim=True).clamp_min(_EMPTY_MAX)  # (..., R, 1)
    k_max = kappa.amax(dim=-2, keepdim=True).clamp_min(_EMPTY_MAX)  # (..., 1, Dk)
    weights = torch.exp(bias - b_max)  # (..., R, K), every entry <= 1
    e = torch.exp(kappa - k_max)  # (..., K, Dk), every entry <= 1, the largest key gives 1
    num = weights @ (e * v)  # (..., R, D)
    den = weights @ e  # (..., R, Dk)
    return num, den, b_max + k_max



def _inclusive_scan(n, z, m, dim: int):
    """Prefix combination of (num, den, max) triples along `dim` in log2(length) vectorised steps (Hillis-Steele)."""
    length = n.shape[dim]
    step = 1
    while step < length:
        head = [x.narrow(dim, 0, step) for x in (n, z, m)]
        later = [x.narrow(dim, step, length - step) for x in (n, z, m)]
        earlier = [x.narrow(dim, 0, length - step) for x in (n, z, m)]
        tail = _combine(earlier, later)
        n, z, m = (torch.cat([h, t], dim=dim) for h, t in zip(head, tail))
        step *= 2
    return n, z, m


def _block_sums(kappa_blocks, v_blocks):
    """Per block of keys: sums relative to the block's own maximum. (..., nb, C, Dk) -> (..., nb, Dk) etc."""
    m = kappa_blocks.amax(dim=-2).clamp_min(_EMPTY_MAX)  # (..., nb, Dk); a block of -inf keys sums to 0, not NaN
    e = torch.exp(kappa_blocks - m.unsqueeze(-2))  # (..., nb, C, Dk)
    return (e * v_blocks).sum(dim=-2), e.sum(dim=-2), m



def _shift_blocks(triple, shift: int):
    """Triple of block i becomes the one of block i - shift (shift > 0) or i + |shift|; outside: empty."""
    n, z, m = triple
    return _shift(n, shift, -2), _shift(z, shift, -2), _shift(m, shift, -2, _EMPTY_MAX)


class _RowSums:
    """Accumulates num and den of every row relative to a fixed per-row upper bound `ub` of its exponents.

    Every part added has its own maximum m <= ub, so exp(m - ub) <= 1 never overflows; and because the row's
    largest key appears in some part with a bias no smaller than (max bias - bias range), the final den is at least
    exp(-(bias range)): no 0/0, and whatever underflows is negligible next to it.
    """

    def __init__(self, ub: torch.Tensor):
        self.ub = ub
        self.num = None
        self.den = None

    def add(self, num, den, m):
        scale = torch.exp(m - self.ub)
        self.num = num * scale if self.num is None else self.num + num * scale
        self.den = den * scale if self.den is None else self.den + den * scale



# ----------------------------------------------------------------------------------------------------------------
# Block layout: triangles of the diagonal blocks, padding to whole blocks, the output
# ----------------------------------------------------------------------------------------------------------------


def _neighbour_keys(x_blocks: torch.Tensor, before: int, after: int, fill: float | torch.Tensor = 0.0) -> torch.Tensor:
    """(..., nb, C, D) -> (..., nb, (before + 1 + after) * C, D): for block i the keys of blocks i-before..i+after,
    `fill` beyond the sequence (a masked key for keys, 0 for values)."""
    return torch.cat([_shift(x_blocks, -off, -3, fill) for off in range(-before, after + 1)], dim=-2)


def _triangle_parts(acc: _RowSums, diag_bias, kappa_blocks, v_blocks, ub_blocks) -> None:
    """Strict lower triangles of the diagonal blocks, as log2(C) levels of batched rectangles.

    diag_bias (..., nb, C, C); kappa_blocks (..., nb, C, Dk); v_blocks (..., nb, C, D); ub_blocks (..., nb, C, Dk).
    At level b the rows of every odd sub-block of length b see all keys of the even sub-block before it.
    """
    block = diag_bias.shape[-1]
    nb = kappa_blocks.shape[-3]
    lead = kappa_blocks.shape[:-3]
    num_acc = torch.zeros_like(v_blocks)
    den_acc = torch.zeros(*kappa_blocks.shape, dtype=kappa_blocks.dtype, device=kappa_blocks.device)
    half = block // 2
    while half >= 1:
        pairs = block // (2 * half)
        kp = kappa_blocks.reshape(*lead, nb, pairs, 2, half, kappa_blocks.shape[-1])
        vp = v_blocks.reshape(*lead, nb, pairs, 2, half, v_blocks.shape[-1])
        up = ub_blocks.reshape(*lead, nb, pairs, 2, half, ub_blocks.shape[-1])
        bias = diag_bias.reshape(*diag_bias.shape[:-2], pairs, 2, half, pairs, 2, half)
        bias = bias.select(-5, 1).select(-2, 0)  # rows: second halves, keys: first halves
        bias = torch.diagonal(bias, dim1=-4, dim2=-2).movedim(-1, -3)  # (..., nb, pairs, half, half)
        num, den, m = _rectangle(bias, kp.select(-3, 0), vp.select(-3, 0))  # rows of the second halves
        scale = torch.exp(m - up.select(-3, 1))
        zeros_n = torch.zeros_like(num)
        zeros_d = torch.zeros_like(den)
        num_acc = num_acc + torch.stack([zeros_n, num * scale], dim=-3).reshape(num_acc.shape)
        den_acc = den_acc + torch.stack([zeros_d, den * scale], dim=-3).reshape(den_acc.shape)
        half //= 2
    # The diagonal itself: key t for row t.
    self_bias = torch.diagonal(diag_bias, dim1=-2, dim2=-1).unsqueeze(-1)  # (..., nb, C, 1)
    e = torch.exp(self_bias + kappa_blocks - ub_blocks)
    num_acc = num_acc + e * v_blocks
    den_acc = den_acc + e
    acc.num = num_acc if acc.num is None else acc.num + num_acc
    acc.den = den_acc if acc.den is None else acc.den + den_acc


def _blocked_output(q, acc: _RowSums, valid, causal: bool, block: int, length: int) -> torch.Tensor:
    """Y = sigmoid(Q) * num / den on the blocks, back to (..., T, D); rows that see no real key give 0."""
    y = torch.sigmoid(_to_blocks(q, block)) * (acc.num / acc.den)
    if valid is not None:
        if causal:
            has_key = torch.cumsum(valid.to(torch.int32), dim=-2) > 0
        else:
            has_key = valid.any(dim=-2, keepdim=True).expand_as(valid)
        y = torch.where(_to_blocks(has_key, block), y, torch.zeros_like(y))
    return y.reshape(*y.shape[:-3], -1, y.shape[-1])[..., :length, :]


def _padded_to_blocks(q, kappa, v, valid, block: int):
    """Pad the time axis to whole blocks; padded and masked keys get a key far below every real one and value 0."""
    length = q.shape[-2]
    padded = math.ceil(length / block) * block
    if valid is None and padded != length:
        valid = torch.ones(*kappa.shape[:-1], 1, dtype=torch.bool, device=kappa.device)
    if valid is not None:
        valid = _pad_time(valid, padded, -2, False)
    q, kappa, v = (_pad_time(x, padded, -2) for x in (q, kappa, v))
    return q, _masked_keys(kappa, valid), _masked_values(v, valid), valid


# ----------------------------------------------------------------------------------------------------------------
# The banded core shared by AFT-local and AFT-conv-1d
# ----------------------------------------------------------------------------------------------------------------


def blocked_banded(q, kappa, v, near_bias, causal: bool, valid, block: int):
    """Y for a bias that is `near_bias` on neighbouring blocks and 0 on every other key.

    q, v (..., T, D); kappa (..., T, Dk); valid (..., T, 1) bool or None.
    near_bias (..., nb, C, nK * C): for the rows of block i the bias to the keys of blocks i-1, i (causal, nK = 2)
    or i-1, i, i+1 (bidirectional, nK = 3); it must be 0 wherever the bias of the operator is 0.
    """
    length = q.shape[-2]
    q, kappa, v, valid = _padded_to_blocks(q, kappa, v, valid, block)
    kb = _to_blocks(kappa, block)  # (..., nb, C, Dk)
    vb = _to_blocks(v, block)  # (..., nb, C, D)
    outside = _key_floor(kappa.detach()).unsqueeze(-3)  # (..., 1, 1, Dk): the key of positions beyond the sequence
    b_ub = near_bias.amax(dim=-1, keepdim=True).clamp_min(0)  # (..., nb, C, 1): keys beyond have bias 0
    if causal:
        k_ub = torch.cummax(kappa, dim=-2).values  # (..., T, Dk)
    else:
        k_ub = kappa.amax(dim=-2, keepdim=True).expand_as(kappa)
    ub = _to_blocks(k_ub, block) + b_ub  # (..., nb, C, Dk)
    acc = _RowSums(ub)

    # Keys no row of block i reads through a bias: blocks <= i-2 (and >= i+2), combined by a parallel scan.
    sums = _block_sums(kb, vb)
    prefix = _shift_blocks(_inclusive_scan(*sums, dim=-2), 2)
    acc.add(*(x.unsqueeze(-2) for x in prefix))
    if not causal:
        flipped = [x.flip(-2) for x in sums]
        suffix = [x.flip(-2) for x in _shift_blocks(_inclusive_scan(*flipped, dim=-2), 2)]
        acc.add(*(x.unsqueeze(-2) for x in suffix))

    if causal:
        # Block i-1 is fully visible (bias w inside the window, 0 outside); block i is a triangle.
        prev_k = _shift(kb, 1, -3, outside)  # (..., nb, C, Dk): the keys of block i - 1
        prev_v = _shift(vb, 1, -3)
        acc.add(*_rectangle(near_bias[..., :block], prev_k, prev_v))
        _triangle_parts(acc, near_bias[..., block:], kb, vb, ub)
    else:
        acc.add(*_rectangle(near_bias, _neighbour_keys(kb, 1, 1, outside), _neighbour_keys(vb, 1, 1)))

    return _blocked_output(q, acc, valid, causal, block, length)



# ----------------------------------------------------------------------------------------------------------------
# AFT-simple and AFT-full
# ----------------------------------------------------------------------------------------------------------------


def blocked_full(q, kappa, v, w, causal: bool, valid):
    """AFT-full (Eq. 2) for a dense w (T, T) or (B, T, T): the causal rows by blocks against every key before their
    block, the diagonal blocks by the triangle recursion, so early rows keep their own maximum."""
    return _full_causal(q, kappa, v, w, valid) if causal else _full_bidirectional(q, kappa, v, w, valid)


def blocked_simple(q, kappa, v, causal: bool, valid):
    """AFT-simple (Eq. 5): bidirectional a softmax over t per channel, causal a running one by blocks."""
    if causal:
        length = q.shape[-2]
        block = min(32, _next_pow2(length))  # measured fastest at T = 4096, D = 512 (16-32 beat 64-128)
        zeros = kappa.new_zeros(math.ceil(length / block), block, block)
        return _simple_causal(q, kappa, v, zeros, valid, block)
    kappa, v = _masked_keys(kappa, valid), _masked_values(v, valid)
    e = torch.exp(kappa - kappa.amax(dim=1, keepdim=True))  # (B, T, D)
    y = torch.sigmoid(q) * ((e * v).sum(1, keepdim=True) / e.sum(1, keepdim=True))
    if valid is not None:
        y = torch.where(valid.any(dim=1, keepdim=True), y, torch.zeros_like(y))
    return y


def _simple_causal(q, kappa, v, diag_zeros, valid, block):
    """Causal AFT-simple: earlier blocks through the scan, the block itself through its triangle."""
    length = q.shape[-2]
    q, kappa, v, valid = _padded_to_blocks(q, kappa, v, valid, block)
    kb, vb = _to_blocks(kappa, block), _to_blocks(v, block)
    ub = _to_blocks(torch.cummax(kappa, dim=-2).values, block)
    acc = _RowSums(ub)
    prefix = _shift_blocks(_inclusive_scan(*_block_sums(kb, vb), dim=-2), 1)
    acc.add(*(x.unsqueeze(-2) for x in prefix))
    _triangle_parts(acc, diag_zeros, kb, vb, ub)
    return _blocked_output(q, acc, valid, True, block, length)



def _full_bidirectional(q, kappa, v, w, valid):
    kappa, v = _masked_keys(kappa, valid), _masked_values(v, valid)
    num, den, m = _rectangle(w, kappa, v)  # (B, T, D), every row sees every key
    y = torch.sigmoid(q) * (num / den)
    if valid is not None:
        y = torch.where(valid.any(dim=1, keepdim=True), y, torch.zeros_like(y))
    return y


def _full_causal(q, kappa, v, w, valid):
    length = q.shape[-2]
    block = min(_FULL_BLOCK, _next_pow2(length))
    q, kappa, v, valid = _padded_to_blocks(q, kappa, v, valid, block)
    padded = q.shape[-2]
    nb = padded // block
    w = F.pad(w, (0, padded - length, 0, padded - length))  # (..., T, T)
    visible = torch.ones(padded, padded, dtype=torch.bool, device=w.device).tril()
    b_ub = w.masked_fill(~visible, _EMPTY_MAX).amax(dim=-1, keepdim=True)  # (T, 1)
    ub = torch.cummax(kappa, dim=-2).values + b_ub  # (..., T, D)
    acc = _RowSums(_to_blocks(ub, block))
    # Off-diagonal: the rows of block i see every key before the block.
    off_num, off_den = [torch.zeros_like(v[..., :block, :])], [torch.zeros_like(kappa[..., :block, :])]
    for i in range(1, nb):
        rows = slice(i * block, (i + 1) * block)
        num, den, m = _rectangle(w[..., rows, : i * block], kappa[..., : i * block, :], v[..., : i * block, :])
        scale = torch.exp(m - ub[..., rows, :])
        off_num.append(num * scale)
        off_den.append(den * scale)
    acc.num = _to_blocks(torch.cat(off_num, dim=-2), block)
    acc.den = _to_blocks(torch.cat(off_den, dim=-2), block)
    diag = torch.stack([w[..., i * block : (i + 1) * block, i * block : (i + 1) * block] for i in range(nb)], dim=-3)
    _triangle_parts(acc, diag, _to_blocks(kappa, block), _to_blocks(v, block), acc.ub)
    return _blocked_output(q, acc, valid, True, block, length)

