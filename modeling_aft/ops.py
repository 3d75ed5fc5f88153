# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The Attention Free Transformer operators (Zhai et al., 2021, arXiv 2105.14103) as pure functions.

Every operator returns the paper's

    Y_t = sigmoid(Q_t) * sum_t' exp(K_t' + w_tt') V_t' / sum_t' exp(K_t' + w_tt')            (Eq. 2)

for one choice of the pairwise bias w: a learned (T, T) matrix (AFT-full, Eq. 2), that matrix inside a window
and 0 outside it (AFT-local, Eq. 4), nothing (AFT-simple, Eq. 5) or a per-head relative kernel (AFT-conv, Eq. 6).
Causal forms sum over t' <= t only.

Two algorithms compute the same sums:

* The fast path (taken whenever the finite keys of every channel, with the biases, span less than 60 in float32 or 600
  in float64; see "The fast path" below): one reference per sequence and channel, so the sums are a batched matrix product over
  the band of neighbouring blocks plus cumulative sums (AFT-full: block-triangular products with exp(w), and with
  w = U V^T formed a block of rows at a time by aft_full_factorized), and a hand-written backward that keeps only
  q, k, v and the bias (or its factors) for autograd.
* The blocked algorithm, for any input (keys hundreds apart included), described next; autograd differentiates it.

How the blocked algorithm takes the sums, and why:

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

Inputs of half precision are computed in float32 (and autocast is switched off inside), then cast back.

Non-finite keys: every maximum or minimum that picks a reference is taken per sequence and channel, so a NaN or inf
in one sequence never reaches another. A key of -inf weighs exactly exp(-inf) = 0, as in Eq. 2, so a row that also
sees a finite key gets the finite result; a row whose every visible key of a channel is -inf is 0/0 (NaN in the
float64 reference; 0 here when the row also sees padding). A key of +inf or NaN makes the rows that see it NaN (inf /
inf in Eq. 2) and, through the shared block sums, possibly other rows of its own sequence, never of another.
Empty inputs (B = 0 or T = 0) give an empty output of the right shape.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

__all__ = [
    "aft_full",
    "aft_full_factorized",
    "aft_local",
    "aft_simple",
    "aft_conv1d",
    "aft_conv2d",
    "aft_local_blocked",
    "local_bias_blocks",
    "factorized_local_bias_blocks",
    "conv1d_bias_blocks",
    "factorized_bias",
    "reparameterize_conv_kernel",
    "local_block_size",
]

# Masked keys get a key this far below the smallest real key: exp() of it is exactly 0 next to any real key, yet
# everything stays finite (no inf - inf), so gradients of real entries are untouched.
_MASKED_KEY_OFFSET = 1.0e4
# The neutral element of the (num, den, max) combination.
_EMPTY_MAX = -1.0e30
_MIN_BLOCK = 16
_FULL_BLOCK = 128


# ----------------------------------------------------------------------------------------------------------------
# Input checks: every message names the value and the fix.
# ----------------------------------------------------------------------------------------------------------------


def _check_float(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if not x.is_floating_point():
        raise TypeError(f"{name} has dtype {x.dtype}; AFT operators need floating point tensors (cast with .float()).")


def _check_qkv(q, k, v, rank: int = 3) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        _check_float(name, x)
    if q.dim() != rank or k.dim() != rank or v.dim() != rank:
        raise ValueError(
            f"q, k, v must have rank {rank} (B, T, D); got shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}."
        )
    if not (q.shape == k.shape == v.shape):
        raise ValueError(
            f"q, k, v must have the same shape (B, T, D); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}."
        )


def _check_heads(q, k, v) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        _check_float(name, x)
    if q.dim() != 4 or v.dim() != 4 or k.dim() != 3:
        raise ValueError(
            "AFT-conv expects q, v of rank 4 (B, T, H, Dh) and k of rank 3 (B, T, H); got shapes "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}."
        )
    if q.shape != v.shape or k.shape != q.shape[:3]:
        raise ValueError(
            f"AFT-conv expects q, v (B, T, H, Dh) and k (B, T, H) with matching B, T, H; got q {tuple(q.shape)}, "
            f"k {tuple(k.shape)}, v {tuple(v.shape)}."
        )


def _check_mask(mask, batch: int, length: int) -> torch.Tensor | None:
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"key_padding_mask must be a torch.Tensor of shape (B, T), got {type(mask).__name__}.")
    if tuple(mask.shape) != (batch, length):
        raise ValueError(
            f"key_padding_mask has shape {tuple(mask.shape)}; expected (B, T) = ({batch}, {length}), "
            "1 for real tokens and 0 for padding."
        )
    return mask != 0


def _check_window(window) -> int:
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an integer >= 1 (|t - t'| < window uses the bias); got {window!r}.")
    return window


def _check_square_bias(w, length: int, batch: int | None = None) -> None:
    """w is (T, T), or (B, T, T) when every sequence of the batch has its own positions (left padding)."""
    _check_float("w", w)
    shared = w.dim() == 2
    per_row = w.dim() == 3 and w.shape[0] in (1, batch)
    if not (shared or per_row) or w.shape[-2] != length or w.shape[-1] != length:
        raise ValueError(
            f"w must have shape (T, T) = ({length}, {length}) or (B, T, T) with B = {batch}; got {tuple(w.shape)}."
        )


# ----------------------------------------------------------------------------------------------------------------
# Precision handling
# ----------------------------------------------------------------------------------------------------------------


def _compute_dtype(*xs: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(x.dtype == torch.float64 for x in xs) else torch.float32


def _masked_values(v: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Padded values become 0, so that whatever they held (even NaN) cannot reach a real row as 0 * value."""
    return v if valid is None else torch.where(valid, v, torch.zeros_like(v))


def _key_floor(kappa: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """(..., 1, Dk): per sequence and channel, a key _MASKED_KEY_OFFSET below the smallest finite real key of that
    row (kappa (..., T, Dk), T > 0). Per row, so that a NaN or inf of one sequence never moves another's floor; a row
    without any finite real key gets -_MASKED_KEY_OFFSET."""
    usable = torch.isfinite(kappa) if valid is None else valid & torch.isfinite(kappa)  # padding may hold NaN
    low = torch.where(usable, kappa, torch.full_like(kappa, math.inf)).amin(dim=-2, keepdim=True)
    return torch.where(torch.isfinite(low), low, torch.zeros_like(low)) - _MASKED_KEY_OFFSET


def _masked_keys(kappa: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Replace padded keys by a key far below every real key of their row (finite, gradient-free)."""
    if valid is None:
        return kappa
    return torch.where(valid, kappa, _key_floor(kappa.detach(), valid))


def _no_tokens(q: torch.Tensor, *inputs: torch.Tensor | None) -> torch.Tensor:
    """Y for B = 0 or T = 0 (where every reduction over time would fail on the empty axis): empty, of q's shape and
    dtype, and still reaching every input in autograd, so that backward gives them zero gradients rather than none."""
    y = q * 0
    for x in inputs:
        if x is not None:
            y = y + x.sum() * 0  # a 0-dim term: y keeps q's shape and dtype
    return y


# ----------------------------------------------------------------------------------------------------------------
# The (num, den, max) arithmetic
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


def _combine(a, b):
    """Add two (num, den, max) triples: the online-softmax step."""
    n1, z1, m1 = a
    n2, z2, m2 = b
    m = torch.maximum(m1, m2)
    s1, s2 = torch.exp(m1 - m), torch.exp(m2 - m)
    return n1 * s1 + n2 * s2, z1 * s1 + z2 * s2, m


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


def _shift(x: torch.Tensor, offset: int, dim: int, fill: float | torch.Tensor = 0.0) -> torch.Tensor:
    """out[i] = x[i - offset] along dim, `fill` where i - offset falls outside."""
    length = x.shape[dim]
    if offset == 0:
        return x
    if abs(offset) >= length:
        return torch.zeros_like(x) + fill
    pad = torch.zeros_like(x.narrow(dim, 0, abs(offset))) + fill
    if offset > 0:
        return torch.cat([pad, x.narrow(dim, 0, length - offset)], dim=dim)
    return torch.cat([x.narrow(dim, -offset, length + offset), pad], dim=dim)


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
# Block layout helpers
# ----------------------------------------------------------------------------------------------------------------


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


def local_block_size(window: int, seq_len: int) -> int:
    """The block length C used for a window: a power of two >= the window (so only neighbouring blocks hold
    in-window keys), at least 16 to keep matrix products efficient, and no longer than the sequence needs."""
    return min(_next_pow2(max(window, _MIN_BLOCK)), _next_pow2(max(seq_len, 1)))


def _pad_time(x: torch.Tensor, length: int, dim: int, value: float = 0.0) -> torch.Tensor:
    extra = length - x.shape[dim]
    if extra == 0:
        return x
    shape = list(x.shape)
    shape[dim] = extra
    return torch.cat([x, x.new_full(shape, value)], dim=dim)


def _to_blocks(x: torch.Tensor, block: int) -> torch.Tensor:
    """(..., T, D) with T a multiple of block -> (..., nb, C, D)."""
    *lead, length, d = x.shape
    return x.reshape(*lead, length // block, block, d)


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


def _banded(q, kappa, v, near_bias, causal: bool, valid, block: int):
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
# Bias layouts
# ----------------------------------------------------------------------------------------------------------------


def _block_offsets(block: int, causal: bool, device) -> torch.Tensor:
    """(C, nK*C) offsets t - t' between row r of block i and column c of the neighbour keys of block i."""
    neighbours = range(-1, 1) if causal else range(-1, 2)
    rows = torch.arange(block, device=device).unsqueeze(1)
    cols = torch.cat([torch.arange(block, device=device) + off * block for off in neighbours]).unsqueeze(0)
    return rows - cols


def _near_positions(seq_len: int, block: int, causal: bool, device):
    """Absolute (row, key) positions of the near-bias layout and whether each key lies inside the sequence."""
    nb = math.ceil(seq_len / block)
    offsets = _block_offsets(block, causal, device)  # (C, nK*C)
    starts = (torch.arange(nb, device=device) * block).view(nb, 1, 1)
    rows = starts + torch.arange(block, device=device).view(1, block, 1)  # (nb, C, 1)
    keys = rows - offsets  # (nb, C, nK*C)
    inside = (keys >= 0) & (keys < seq_len) & (rows < seq_len)
    return rows.expand_as(keys), keys, inside


def local_bias_blocks(w: torch.Tensor, window: int, causal: bool = False, block: int | None = None) -> torch.Tensor:
    """The dense bias of AFT-local, (T, T) or per sequence (B, T, T), laid out for `aft_local_blocked`:
    (..., nb, C, nK*C), 0 outside the window."""
    length = w.shape[-1]
    window = _check_window(window)
    block = block or local_block_size(window, length)
    rows, keys, inside = _near_positions(length, block, causal, w.device)
    in_window = inside & ((rows - keys).abs() < window)
    gathered = w[..., rows.clamp(0, length - 1), keys.clamp(0, length - 1)]
    return torch.where(in_window, gathered, torch.zeros_like(gathered))


def factorized_local_bias_blocks(
    u: torch.Tensor, w_v: torch.Tensor, window: int, causal: bool = False, block: int | None = None
) -> torch.Tensor:
    """The local band of w = U V^T computed directly (T*C*d' work, never T*T).

    U, V of shape (T, d'), or (B, T, d') when each sequence reads the factors at its own positions (left padding).
    """
    if u.dim() not in (2, 3) or w_v.shape != u.shape:
        raise ValueError(
            f"u and v must both have shape (T, d') or (B, T, d'); got {tuple(u.shape)} and {tuple(w_v.shape)}."
        )
    length = u.shape[-2]
    window = _check_window(window)
    block = block or local_block_size(window, length)
    nb = math.ceil(length / block)
    padded = nb * block
    ub = _to_blocks(_pad_time(u, padded, -2), block)  # (..., nb, C, d'): views of the factors when T fills blocks
    vb = _to_blocks(_pad_time(w_v, padded, -2), block)
    # One product per neighbour read from shifted views, so that autograd keeps views of U and V rather than a
    # (T, nK*d') copy of the neighbouring rows of V.
    own = ub @ vb.transpose(-1, -2)  # (..., nb, C, C)
    edge = torch.zeros_like(own[..., :1, :, :])  # the blocks beyond the sequence
    parts = [torch.cat([edge, ub[..., 1:, :, :] @ vb[..., :-1, :, :].transpose(-1, -2)], dim=-3), own]
    if not causal:
        parts.append(torch.cat([ub[..., :-1, :, :] @ vb[..., 1:, :, :].transpose(-1, -2), edge], dim=-3))
    band = torch.cat(parts, dim=-1)  # (..., nb, C, nK*C)
    rows, keys, inside = _near_positions(length, block, causal, u.device)
    in_window = inside & ((rows - keys).abs() < window)
    return torch.where(in_window, band, torch.zeros_like(band))


def conv1d_bias_blocks(kernel: torch.Tensor, seq_len: int, causal: bool = False) -> torch.Tensor:
    """The per-head relative kernel of AFT-conv laid out for `aft_local_blocked`: (H, 1, C, nK*C).

    Causal: kernel[h, j] is the bias for t' = t - j. Bidirectional (odd S): for t' = t + j - S//2.
    """
    heads, size = kernel.shape
    reach = size if causal else size // 2 + 1
    block = local_block_size(reach, seq_len)
    offsets = _block_offsets(block, causal, kernel.device)  # t - t'
    index = offsets if causal else size // 2 - offsets
    inside = (index >= 0) & (index < size)
    gathered = kernel[:, index.clamp(0, size - 1)]  # (H, C, nK*C)
    return torch.where(inside, gathered, torch.zeros_like(gathered)).unsqueeze(1)


def factorized_bias(u: torch.Tensor, w_v: torch.Tensor) -> torch.Tensor:
    """w = U V^T (T, T) from the factors U, V (T, d') of the paper's position biases."""
    return u @ w_v.transpose(-1, -2)


def reparameterize_conv_kernel(w: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5):
    """Eq. 6's re-parameterisation, per head: gamma * (w - mean(w)) / std(w) + beta. w (H, ...), gamma, beta (H,)."""
    flat = w.reshape(w.shape[0], -1)
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, keepdim=True, unbiased=False) if flat.shape[1] > 1 else torch.ones_like(mean)
    normed = (flat - mean) / (std + eps)
    return (gamma.unsqueeze(1) * normed + beta.unsqueeze(1)).reshape(w.shape)


# ----------------------------------------------------------------------------------------------------------------
# The fast path: one reference per channel, matrix products and cumulative sums, a hand-written backward
# ----------------------------------------------------------------------------------------------------------------
#
# When the keys of every channel span less than _FAST_RANGE[dtype] together with the biases, every exponent
# k_t' + w_tt' lies within that range of one reference per channel (the largest key, plus the largest bias):
# exp() of its difference to the reference neither overflows nor underflows, and the sums need no per-row maxima.
# Then, with X = [exp(K - kref) * V | exp(K - kref)] (num and den side by side) and W = exp(w - wref):
#
#     sums of the rows of block i = W_i @ X(blocks i-1, i[, i+1])  +  exp(-wref) * (sum of X over farther blocks)
#
# one batched matrix product over the band and a cumulative sum over block totals; AFT-simple is a cumulative sum
# alone. The backward is the transposed operator applied to [dL/dnum | dL/dden] (the same product and sums read
# from the other side), so autograd stores only q, k, v and the band: three (T, D) tensors per layer, as
# attention does, instead of every intermediate of the blocked algorithm. Inputs that fail the range check (keys
# tens of units apart, as in the stability tests) take the blocked algorithm above, which has no such limit.

# exp(-range) stays a normal number with room to spare for the gradient factors 1 / den (float32: exp(60) ~ 1e26).
_FAST_RANGE = {torch.float32: 60.0, torch.float64: 600.0}
_FAST_PATH = True  # tests switch it off to run the blocked algorithm on ordinary inputs
_FAST_PATH_NOTICE = [True]  # emptied when the fallback has been announced


def _key_range(kappa, valid):
    """Per sequence and channel (..., 1, Dk): the largest and smallest real key, 0 and 0 for a row without any."""
    if valid is None:
        k_hi, k_lo = kappa.amax(dim=-2, keepdim=True), kappa.amin(dim=-2, keepdim=True)
    else:
        k_hi = torch.where(valid, kappa, torch.full_like(kappa, -math.inf)).amax(dim=-2, keepdim=True)
        k_lo = torch.where(valid, kappa, torch.full_like(kappa, math.inf)).amin(dim=-2, keepdim=True)
    seen = torch.isfinite(k_hi) & torch.isfinite(k_lo)  # False for a row without any real key, and for NaN / inf
    if bool(seen.all()):
        return k_hi, k_lo
    # Some row holds a non-finite key (or none): the range of its finite keys alone. A -inf key weighs exp(-inf) = 0
    # whatever the reference; a NaN or +inf one makes its own rows NaN, as in Eq. 2, and no other row.
    usable = torch.isfinite(kappa) if valid is None else valid & torch.isfinite(kappa)
    k_hi = torch.where(usable, kappa, torch.full_like(kappa, -math.inf)).amax(dim=-2, keepdim=True)
    k_lo = torch.where(usable, kappa, torch.full_like(kappa, math.inf)).amin(dim=-2, keepdim=True)
    seen = usable.any(dim=-2, keepdim=True)
    return torch.where(seen, k_hi, torch.zeros_like(k_hi)), torch.where(seen, k_lo, torch.zeros_like(k_lo))


def _fast_references(kappa, band, valid, dense: bool = False, extra_spread=None):
    """Per sequence and channel key reference (..., 1, Dk), the largest finite real key, and bias reference (a 0-dim
    tensor; for a band >= 0, since keys beyond the band have bias 0), or None unless every exponent of a finite key
    lies within _FAST_RANGE of them. Which path runs is decided for the whole batch, but each row only ever reads
    its own reference."""
    if not _FAST_PATH or kappa.shape[-2] == 0:
        return None
    limit = _FAST_RANGE[kappa.dtype]
    k_hi, k_lo = _key_range(kappa, valid)
    spread = (k_hi - k_lo).amax()  # the widest row: the path is one for all rows
    if extra_spread is not None:  # biases known only by a bound
        spread = spread + extra_spread
    if band is None:
        w_ref = kappa.new_zeros(())
    elif dense:  # AFT-full: every key has its bias
        w_ref = band.amax()
        spread = spread + w_ref - band.amin()
    else:
        w_ref = band.amax().clamp_min(0)
        spread = spread + w_ref - band.amin().clamp_max(0)
    if not bool(spread < limit):  # False for NaN and inf (of the biases) too: those take the blocked path
        if _FAST_PATH_NOTICE and bool(torch.isfinite(spread)):
            _FAST_PATH_NOTICE.pop()
            logger.warning(
                "AFT: keys and position biases span %.1f (limit %.0f for %s), so the operators take the slower "
                "blocked algorithm, which also keeps more memory for backward; results are exact either way. "
                "(Shown once per process.)",
                float(spread),
                limit,
                kappa.dtype,
            )
        return None
    return k_hi, w_ref


def _causal_visibility(block: int, device) -> torch.Tensor:
    """(C, 2C): every key of block i-1, and the keys t' <= t of block i."""
    ones = torch.ones(block, block, dtype=torch.bool, device=device)
    return torch.cat([ones, ones.tril()], dim=1)


def _far_sums(totals: torch.Tensor, before: bool, after: bool) -> torch.Tensor:
    """totals (..., nb, F) of every block -> for block i the sum over blocks <= i-2 (before) and/or >= i+2 (after)."""
    out = torch.zeros_like(totals)
    if before:
        out = out + _shift(torch.cumsum(totals, dim=-2), 2, -2)
    if after:
        out = out + _shift(torch.cumsum(totals.flip(-2), dim=-2).flip(-2), -2, -2)
    return out


_CUMSUM_BLOCK = 32
_DENSE_BLOCK = 512


def _cumsum_time(x: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """Inclusive cumulative sum over dim -2 (from the end when reverse), as a triangular matrix product per block of
    32 rows plus the totals of the blocks before: on CPU several times faster than torch.cumsum along a non-last
    dimension, and without the copies of flip()."""
    length = x.shape[-2]
    block = min(_CUMSUM_BLOCK, _next_pow2(length))
    padded = math.ceil(length / block) * block
    xb = _to_blocks(_pad_time(x, padded, -2), block)  # (..., nb, C, F); padding is 0, so it adds nothing
    ones = torch.ones(block, block, dtype=x.dtype, device=x.device)
    inside = (ones.triu() if reverse else ones.tril()) @ xb
    totals = xb.sum(dim=-2)  # (..., nb, F)
    if reverse:
        before = _shift(torch.cumsum(totals.flip(-2), dim=-2).flip(-2), -1, -2)
    else:
        before = _shift(torch.cumsum(totals, dim=-2), 1, -2)
    out = inside + before.unsqueeze(-2)
    return out.reshape(*out.shape[:-3], padded, out.shape[-1])[..., :length, :]


def _block_range(w: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Blocks start..stop-1 of a band (..., nb, C, K) whose block axis may be 1 (the same band for every block)."""
    return w if w.shape[-3] == 1 else w[..., start:stop, :, :]


class _FastSums:
    """The forward sums of the fast path and their transpose, for one input layout.

    weights None (AFT-simple) or W = exp(band - wref) with invisible entries 0, (..., nb, C, nK*C) broadcastable,
    its column parts the keys of blocks i-1, i (and i+1 when bidirectional); far = exp(-wref), the weight of every
    key outside the band. The neighbouring blocks are read as shifted views: nothing of size T x nK x F is copied.
    """

    def __init__(self, weights, far, causal: bool, length: int):
        self.weights, self.far, self.causal, self.length = weights, far, causal, length
        self.block = None if weights is None else weights.shape[-2]

    def _blocks(self, x):
        padded = math.ceil(self.length / self.block) * self.block
        return _to_blocks(_pad_time(x, padded, -2), self.block)

    def _unblock(self, xb):
        return xb.reshape(*xb.shape[:-3], -1, xb.shape[-1])[..., : self.length, :]

    def _part(self, p: int, start: int, stop: int):
        c = self.block
        return _block_range(self.weights, start, stop)[..., p * c : (p + 1) * c]

    def forward(self, x):
        """x (..., T, F) -> for every row the sum over the keys it sees of their weight times x."""
        if self.weights is None:
            return _cumsum_time(x) if self.causal else x.sum(dim=-2, keepdim=True).expand_as(x)
        xb = self._blocks(x)
        nb = xb.shape[-3]
        out = self._part(1, 0, nb) @ xb  # the row's own block
        if nb > 1:
            out[..., 1:, :, :] += self._part(0, 1, nb) @ xb[..., :-1, :, :]  # block i-1
            if not self.causal:
                out[..., :-1, :, :] += self._part(2, 0, nb - 1) @ xb[..., 1:, :, :]  # block i+1
        out += (_far_sums(xb.sum(dim=-2), before=True, after=not self.causal) * self.far).unsqueeze(-2)
        return self._unblock(out)

    def transpose(self, y):
        """y (..., T, F) of the rows -> for every key the sum over the rows that see it of their weight times y."""
        if self.weights is None:
            if self.causal:
                return _cumsum_time(y, reverse=True)
            return y.sum(dim=-2, keepdim=True).expand_as(y)
        yb = self._blocks(y)
        nb = yb.shape[-3]
        back = self._part(1, 0, nb).transpose(-1, -2) @ yb
        if nb > 1:
            back[..., :-1, :, :] += self._part(0, 1, nb).transpose(-1, -2) @ yb[..., 1:, :, :]  # rows of block j+1
            if not self.causal:
                back[..., 1:, :, :] += self._part(2, 0, nb - 1).transpose(-1, -2) @ yb[..., :-1, :, :]
        back += (_far_sums(yb.sum(dim=-2), before=not self.causal, after=True) * self.far).unsqueeze(-2)
        return self._unblock(back)

    def weight_grad(self, x, y):
        """d/dband of sum(y * forward(x)) for W = exp(band - wref): W * (y_i @ x(neighbour blocks)^T)."""
        xb, yb = self._blocks(x), self._blocks(y)
        nb, c = xb.shape[-3], self.block
        own = yb @ xb.transpose(-1, -2)  # (..., nb, C, C)
        grad = own.new_zeros(*own.shape[:-1], self.weights.shape[-1])
        grad[..., c : 2 * c] = own
        if nb > 1:
            grad[..., 1:, :, :c] = yb[..., 1:, :, :] @ xb[..., :-1, :, :].transpose(-1, -2)
            if not self.causal:
                grad[..., :-1, :, 2 * c :] = yb[..., :-1, :, :] @ xb[..., 1:, :, :].transpose(-1, -2)
        return grad.mul_(self.weights)


def _row_blocks(length: int) -> list[tuple[int, int]]:
    """AFT-full's blocks of _DENSE_BLOCK rows, the last one partial."""
    return [(start, min(length, start + _DENSE_BLOCK)) for start in range(0, length, _DENSE_BLOCK)]


class _DenseSums:
    """The same three products for AFT-full: W = exp(w - wref) (..., T, T), the future zeroed when causal.

    Causal rows are taken in blocks of _DENSE_BLOCK, each reading only the keys up to its last row, so the products
    skip the zero upper triangle but for the diagonal blocks.
    """

    def __init__(self, weights, causal: bool):
        self.weights, self.causal = weights, causal

    def forward(self, x):
        w = self.weights
        if not self.causal:
            return w @ x
        out = x.new_empty(*torch.broadcast_shapes(w.shape[:-2], x.shape[:-2]), *x.shape[-2:])
        for start, stop in _row_blocks(self.weights.shape[-1]):
            out[..., start:stop, :] = w[..., start:stop, :stop] @ x[..., :stop, :]
        return out

    def transpose(self, y):
        w = self.weights
        if not self.causal:
            return w.transpose(-1, -2) @ y
        back = y.new_empty(*torch.broadcast_shapes(w.shape[:-2], y.shape[:-2]), *y.shape[-2:])
        for start, stop in _row_blocks(self.weights.shape[-1]):  # these keys are read by the rows from `start` on
            back[..., start:stop, :] = w[..., start:, start:stop].transpose(-1, -2) @ y[..., start:, :]
        return back

    def weight_grad(self, x, y):
        w = self.weights
        if not self.causal:
            return (y @ x.transpose(-1, -2)).mul_(w)
        grad = y.new_empty(*torch.broadcast_shapes(w.shape[:-2], y.shape[:-2]), *w.shape[-2:])
        for start, stop in _row_blocks(self.weights.shape[-1]):
            torch.matmul(y[..., start:stop, :], x[..., :stop, :].transpose(-1, -2), out=grad[..., start:stop, :stop])
            grad[..., start:stop, :stop].mul_(w[..., start:stop, :stop])
            grad[..., start:stop, stop:] = 0
        return grad


def _sum_to_shape(x: torch.Tensor, shape) -> torch.Tensor:
    """Sum a broadcast gradient back to the shape of its input."""
    lead = x.dim() - len(shape)
    if lead:
        x = x.sum(dim=tuple(range(lead)))
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and x.shape[i] != 1)
    return x.sum(dim=dims, keepdim=True) if dims else x


def _fast_values(kappa, v, valid, k_ref):
    """e = exp(kappa - k_ref) and X = [e * v | e] (..., T, D + Dk); padded keys weigh exactly 0 and their values
    (whatever they hold) are never read."""
    e = torch.exp(kappa - k_ref)
    if valid is not None:
        e = torch.where(valid, e, torch.zeros_like(e))
        v = torch.where(valid, v, torch.zeros_like(v))
    d = v.shape[-1]
    x = v.new_empty(*torch.broadcast_shapes(v.shape[:-1], e.shape[:-1]), d + e.shape[-1])
    torch.mul(e, v, out=x[..., :d])
    x[..., d:] = e
    return e, v, x


def _fast_output(q, both, valid):
    """Y = sigmoid(q) * num / den from both = [num | den]; a row without any real key (den 0) gives 0."""
    d = q.shape[-1]
    num, den = both[..., :d], both[..., d:]
    if valid is None:  # every row sees at least its own key: den > 0
        y = num / den
    else:
        seen = den > 0
        y = torch.where(seen, num / torch.where(seen, den, torch.ones_like(den)), torch.zeros_like(num))
    return y.mul_(torch.sigmoid(q))


def _fast_row_grads(grad_y, q, both, valid, keys_dim: int):
    """dL/dq and, per row, [dL/dnum | dL/dden] (..., T, D + Dk) from dL/dY."""
    d = q.shape[-1]
    num, den = both[..., :d], both[..., d:]
    if valid is None:
        inv_den = den.reciprocal()
    else:
        seen = den > 0
        inv_den = torch.where(seen, torch.where(seen, den, torch.ones_like(den)).reciprocal(), 0.0)
    gate = torch.sigmoid(q)
    mean = num * inv_den  # the weighted average of the values each row sees
    grad_q = grad_y * mean
    grad_q.mul_(gate * (1 - gate))
    rows = both.new_empty(*grad_y.shape[:-1], d + keys_dim)
    r = rows[..., :d]
    torch.mul(grad_y, gate, out=r)
    r.mul_(inv_den)
    if keys_dim == d:
        torch.mul(r, mean, out=rows[..., d:])
    else:  # a head's channels share one den
        rows[..., d:] = (r * mean).sum(dim=-1, keepdim=True)
    rows[..., d:].neg_()
    return grad_q, rows


def _fast_key_grads(back, e, v_used, valid):
    """dL/dkappa and dL/dv from back = d/dX of sum(rows * sums(X)), X = [e * v | e]."""
    d = v_used.shape[-1]
    grad_v = e * back[..., :d]
    grad_e = v_used * back[..., :d]
    if e.shape[-1] != d:
        grad_e = grad_e.sum(dim=-1, keepdim=True)
    grad_e += back[..., d:]
    grad_kappa = grad_e.mul_(e)
    if valid is not None:
        grad_v = torch.where(valid, grad_v, torch.zeros_like(grad_v))
    return grad_kappa, grad_v


class _FastAFT(torch.autograd.Function):
    """Y = sigmoid(q) * num / den on the fast path; saves q, kappa, v, band only and recomputes the sums backward.

    q, v (..., T, D); kappa (..., T, Dk) with Dk = D or 1 (one key per head); band None (simple), (..., nb, C, nK*C)
    (local, conv) or, when dense, the whole w (..., T, T) (full); valid None or (..., T, 1) bool; k_ref (..., 1, Dk),
    w_ref 0-dim from _fast_references.
    """

    @staticmethod
    def _sums(q, band, w_ref, causal, dense):
        if dense:
            weights = torch.sub(band, w_ref).exp_()
            return _DenseSums(weights.tril_() if causal else weights, causal)
        if band is None:
            return _FastSums(None, None, causal, q.shape[-2])
        weights = torch.exp(band - w_ref)
        if causal:
            weights = weights * _causal_visibility(band.shape[-2], band.device)
        return _FastSums(weights, torch.exp(-w_ref), causal, q.shape[-2])

    @staticmethod
    def forward(ctx, q, kappa, v, band, valid, k_ref, w_ref, causal, dense):
        e, v_used, x = _fast_values(kappa, v, valid, k_ref)
        both = _FastAFT._sums(q, band, w_ref, causal, dense).forward(x)  # (..., T, D + Dk): [num | den]
        # AFT-full keeps its sums (2 of T x D next to the T x T bias it holds anyway): recomputing them is a T x T
        # product. The others recompute theirs, which costs less than a tenth of the step and saves 2 x T x D.
        ctx.save_for_backward(q, kappa, v, band, valid, k_ref, w_ref, both if dense else None)
        ctx.causal, ctx.dense = causal, dense
        return _fast_output(q, both, valid)

    @staticmethod
    def backward(ctx, grad_y):
        q, kappa, v, band, valid, k_ref, w_ref, both = ctx.saved_tensors
        with torch.no_grad():
            sums = _FastAFT._sums(q, band, w_ref, ctx.causal, ctx.dense)
            e, v_used, x = _fast_values(kappa, v, valid, k_ref)
            if both is None:
                both = sums.forward(x)
            grad_q, rows = _fast_row_grads(grad_y, q, both, valid, e.shape[-1])
            back = sums.transpose(rows)  # (..., T, D + Dk): d/dx of sum(rows * sums.forward(x))
            grad_kappa, grad_v = _fast_key_grads(back, e, v_used, valid)
            grad_band = None
            if band is not None and ctx.needs_input_grad[3]:
                grad_band = _sum_to_shape(sums.weight_grad(x, rows), band.shape)
        return grad_q, grad_kappa, grad_v, grad_band, None, None, None, None, None


class _FastFactorizedFull(torch.autograd.Function):
    """AFT-full with w = U V^T formed a block of rows at a time and never whole: (Cb, T) scores per block instead of
    a (T, T) bias kept for backward, and causal blocks form only the keys up to their last row.

    q, v (..., T, D); kappa (..., T, D); u, w_v (T, d') or (..., T, d'); w_ref >= every |w| (a bound from the
    factors' norms), so exp(w - w_ref) <= 1; the rest as _FastAFT.
    """

    @staticmethod
    def _blocks(length: int, causal: bool):
        """(start, stop, keys): the rows of a block and how many keys they read."""
        for start, stop in _row_blocks(length):
            yield start, stop, (stop if causal else length)

    @staticmethod
    def _weights(u, w_v, w_ref, start, stop, keys, causal):
        """exp(U[start:stop] V[:keys]^T - w_ref), the future zeroed: (..., stop - start, keys)."""
        w = (u[..., start:stop, :] @ w_v[..., :keys, :].transpose(-1, -2)).sub_(w_ref).exp_()
        if causal:  # only the diagonal square holds keys after their row
            w[..., :, start:stop].tril_()
        return w

    @staticmethod
    def forward(ctx, q, kappa, v, u, w_v, valid, k_ref, w_ref, causal):
        e, v_used, x = _fast_values(kappa, v, valid, k_ref)
        length = q.shape[-2]
        both = x.new_empty(*torch.broadcast_shapes(x.shape[:-2], u.shape[:-2]), *x.shape[-2:])
        for start, stop, keys in _FastFactorizedFull._blocks(length, causal):
            w = _FastFactorizedFull._weights(u, w_v, w_ref, start, stop, keys, causal)
            both[..., start:stop, :] = w @ x[..., :keys, :]
        ctx.save_for_backward(q, kappa, v, u, w_v, valid, k_ref, w_ref, both)
        ctx.causal = causal
        return _fast_output(q, both, valid)

    @staticmethod
    def backward(ctx, grad_y):
        q, kappa, v, u, w_v, valid, k_ref, w_ref, both = ctx.saved_tensors
        causal = ctx.causal
        with torch.no_grad():
            e, v_used, x = _fast_values(kappa, v, valid, k_ref)
            grad_q, rows = _fast_row_grads(grad_y, q, both, valid, e.shape[-1])
            back = torch.zeros_like(rows)
            lead = torch.broadcast_shapes(rows.shape[:-2], u.shape[:-2])
            grad_u = u.new_zeros(*lead, *u.shape[-2:])
            grad_w_v = w_v.new_zeros(*lead, *w_v.shape[-2:])
            for start, stop, keys in _FastFactorizedFull._blocks(q.shape[-2], causal):
                w = _FastFactorizedFull._weights(u, w_v, w_ref, start, stop, keys, causal)
                r = rows[..., start:stop, :]
                back[..., :keys, :] += w.transpose(-1, -2) @ r
                grad_w = (r @ x[..., :keys, :].transpose(-1, -2)).mul_(w)  # d/d(U V^T) on these rows
                grad_u[..., start:stop, :] += grad_w @ w_v[..., :keys, :]
                grad_w_v[..., :keys, :] += grad_w.transpose(-1, -2) @ u[..., start:stop, :]
            grad_kappa, grad_v = _fast_key_grads(back, e, v_used, valid)
        return (grad_q, grad_kappa, grad_v, _sum_to_shape(grad_u, u.shape), _sum_to_shape(grad_w_v, w_v.shape),
                None, None, None, None)


def _fast_aft(q, kappa, v, band, causal: bool, valid, dense: bool = False):
    """The fast path when the inputs allow it (see above), else None. Shapes as _FastAFT."""
    refs = _fast_references(kappa.detach(), None if band is None else band.detach(), valid, dense)
    if refs is None:
        return None
    return _FastAFT.apply(q, kappa, v, band, valid, refs[0], refs[1], causal, dense)


# ----------------------------------------------------------------------------------------------------------------
# The public operators
# ----------------------------------------------------------------------------------------------------------------


def aft_local_blocked(q, k, v, near_bias, causal: bool = False, key_padding_mask=None):
    """AFT-local from the block layout of its bias (see `local_bias_blocks`, `factorized_local_bias_blocks`).

    q, k, v (B, T, D); near_bias (nb, C, nK*C) or broadcastable (..., nb, C, nK*C).
    """
    _check_qkv(q, k, v)
    batch, length, _ = q.shape
    valid = _check_mask(key_padding_mask, batch, length)
    block = near_bias.shape[-2]
    expected = (math.ceil(length / block), block, (2 if causal else 3) * block)
    if tuple(near_bias.shape[-3:]) != expected:
        raise ValueError(
            f"near_bias has shape {tuple(near_bias.shape)}; for T = {length}, causal = {causal} expected (..., "
            f"{expected[0]}, {expected[1]}, {expected[2]}); build it with local_bias_blocks or "
            "factorized_local_bias_blocks."
        )
    if q.numel() == 0:
        return _no_tokens(q, k, v, near_bias)
    dtype = _compute_dtype(q, k, v, near_bias)
    with torch.autocast(device_type=q.device.type, enabled=False):  # sums in float32 or float64
        qf, kf, vf, bias = q.to(dtype), k.to(dtype), v.to(dtype), near_bias.to(dtype)
        mask = None if valid is None else valid.unsqueeze(-1)
        y = _fast_aft(qf, kf, vf, bias, causal, mask)
        if y is None:
            y = _banded(qf, kf, vf, bias, causal, mask, block)
    return y.to(q.dtype)


def aft_local(q, k, v, w, window, causal: bool = False, key_padding_mask=None):
    """AFT-local (Eq. 4): w[t, t'] inside |t - t'| < window, 0 (not -inf) outside. q, k, v (B, T, D); w (T, T)."""
    _check_qkv(q, k, v)
    _check_square_bias(w, q.shape[1], q.shape[0])
    window = _check_window(window)
    if q.numel() == 0:
        _check_mask(key_padding_mask, q.shape[0], q.shape[1])
        return _no_tokens(q, k, v, w)
    return aft_local_blocked(q, k, v, local_bias_blocks(w, window, causal), causal, key_padding_mask)


def aft_simple(q, k, v, causal: bool = False, key_padding_mask=None):
    """AFT-simple (Eq. 5): no position bias; bidirectional it is a softmax over t per channel, causal a running one."""
    _check_qkv(q, k, v)
    batch, length, _ = q.shape
    valid = _check_mask(key_padding_mask, batch, length)
    if q.numel() == 0:
        return _no_tokens(q, k, v)
    dtype = _compute_dtype(q, k, v)
    with torch.autocast(device_type=q.device.type, enabled=False):  # sums in float32 or float64
        qf, kf, vf = q.to(dtype), k.to(dtype), v.to(dtype)
        mask = None if valid is None else valid.unsqueeze(-1)
        y = _fast_aft(qf, kf, vf, None, causal, mask)
        if y is None:
            y = _simple_blocked(qf, kf, vf, causal, mask)
    return y.to(q.dtype)


def _simple_blocked(q, kappa, v, causal: bool, valid):
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


def aft_full(q, k, v, w, causal: bool = False, key_padding_mask=None):
    """AFT-full (Eq. 2): q, k, v (B, T, D); w (T, T) with w[t, t'] the bias of key t' for query t (or (B, T, T)).

    Computed as the paper does, exp(w) @ (exp(K) * V) over exp(w) @ exp(K), by blocks of queries; the causal
    diagonal blocks go through the triangle recursion so early rows keep their own maximum.
    """
    _check_qkv(q, k, v)
    batch, length, _ = q.shape
    _check_square_bias(w, length, batch)
    valid = _check_mask(key_padding_mask, batch, length)
    if q.numel() == 0:
        return _no_tokens(q, k, v, w)
    dtype = _compute_dtype(q, k, v, w)
    with torch.autocast(device_type=q.device.type, enabled=False):  # sums in float32 or float64
        qf, kf, vf, wf = q.to(dtype), k.to(dtype), v.to(dtype), w.to(dtype)
        mask = None if valid is None else valid.unsqueeze(-1)
        y = _fast_aft(qf, kf, vf, wf, causal, mask, dense=True)
        if y is None:
            y = _full_causal(qf, kf, vf, wf, mask) if causal else _full_bidirectional(qf, kf, vf, wf, mask)
    return y.to(q.dtype)


def aft_full_factorized(q, k, v, u, w_v, causal: bool = False, key_padding_mask=None):
    """AFT-full with the paper's factorised bias w = U V^T: q, k, v (B, T, D); u, w_v (T, d') or (B, T, d').

    Equal to aft_full(q, k, v, u @ w_v.T, ...), but on the fast path w is formed a block of 512 rows at a time (the
    lower triangle only when causal) and never kept: memory linear in T. Used when the factors' norms bound |w| so
    that keys and biases fit the fast path's range; otherwise it forms w and calls aft_full.
    """
    _check_qkv(q, k, v)
    batch, length, _ = q.shape
    for name, x in (("u", u), ("w_v", w_v)):
        _check_float(name, x)
    shaped = u.dim() in (2, 3) and w_v.shape == u.shape and u.shape[-2] == length
    if not shaped or (u.dim() == 3 and u.shape[0] not in (1, batch)):
        raise ValueError(
            f"u and w_v must both have shape (T, d') or (B, T, d') with T = {length}, B = {batch}; got "
            f"{tuple(u.shape)} and {tuple(w_v.shape)}."
        )
    valid = _check_mask(key_padding_mask, batch, length)
    if q.numel() == 0:
        return _no_tokens(q, k, v, u, w_v)
    dtype = _compute_dtype(q, k, v, u, w_v)
    with torch.autocast(device_type=q.device.type, enabled=False):  # sums in float32 or float64
        qf, kf, vf, uf, wf = q.to(dtype), k.to(dtype), v.to(dtype), u.to(dtype), w_v.to(dtype)
        mask = None if valid is None else valid.unsqueeze(-1)
        with torch.no_grad():  # |U_t . V_s| <= |U_t| |V_s|: a bound on every bias without forming w
            bound = uf.norm(dim=-1).amax() * wf.norm(dim=-1).amax()
        refs = _fast_references(kf.detach(), None, mask, extra_spread=2 * bound)
        if refs is not None:
            y = _FastFactorizedFull.apply(qf, kf, vf, uf, wf, mask, refs[0], bound, causal)
            return y.to(q.dtype)
    return aft_full(q, k, v, factorized_bias(u, w_v), causal, key_padding_mask)


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


def aft_conv1d(q, k, v, kernel, causal: bool = False, key_padding_mask=None):
    """AFT-conv on a sequence (Eq. 6): q, v (B, T, H, Dh), k (B, T, H) one key per head, kernel (H, S).

    Causal: kernel[h, j] is the bias for t' = t - j. Bidirectional (S odd): for t' = t + j - S//2. Outside the
    kernel the bias is 0, so this equals the paper's conv(exp(K) * V, exp(w) - 1) + the (running) global sum.
    """
    _check_heads(q, k, v)
    batch, length, heads, _ = q.shape
    _check_float("kernel", kernel)
    if kernel.dim() != 2 or kernel.shape[0] != heads:
        raise ValueError(f"kernel must have shape (H, S) with H = {heads}; got {tuple(kernel.shape)}.")
    size = kernel.shape[1]
    if not causal and size % 2 == 0:
        raise ValueError(f"a bidirectional AFT-conv kernel must have an odd size to be centred; got S = {size}.")
    valid = _check_mask(key_padding_mask, batch, length)
    if q.numel() == 0 or k.numel() == 0:
        return _no_tokens(q, k, v, kernel)
    dtype = _compute_dtype(q, k, v, kernel)
    with torch.autocast(device_type=q.device.type, enabled=False):  # sums in float32 or float64
        qh = q.to(dtype).transpose(1, 2)  # (B, H, T, Dh)
        vh = v.to(dtype).transpose(1, 2)
        kh = k.to(dtype).transpose(1, 2).unsqueeze(-1)  # (B, H, T, 1): one key per head, shared by its channels
        mask = None if valid is None else valid.view(batch, 1, length, 1)
        near = conv1d_bias_blocks(kernel.to(dtype), length, causal)  # (H, 1, C, nK*C)
        y = _fast_aft(qh, kh, vh, near, causal, mask)
        if y is None:
            y = _banded(qh, kh, vh, near, causal, mask, near.shape[-2])
    return y.transpose(1, 2).to(q.dtype)


def aft_conv2d(q, k, v, kernel, grid):
    """AFT-conv on a (gh, gw) grid of N = gh*gw tokens in row-major order (Eq. 6, bidirectional).

    q, v (B, N, H, Dh); k (B, N, H); kernel (H, S, S), S odd, centred: kernel[h, i, j] is the bias of the key at
    grid offset (i - S//2, j - S//2). The paper writes num = conv2d(exp(K) * V, exp(w) - 1) + the sum over all
    tokens; subtracting the window from the total that way cancels catastrophically when w << 0, so the keys
    inside the window (a depthwise conv2d with exp(w)) and those outside it (prefix sums over the rows above and
    below and the columns left and right of the window) are summed apart.
    """
    _check_heads(q, k, v)
    batch, tokens, heads, head_dim = q.shape
    _check_float("kernel", kernel)
    if kernel.dim() != 3 or kernel.shape[0] != heads or kernel.shape[1] != kernel.shape[2]:
        raise ValueError(f"kernel must have shape (H, S, S) with H = {heads}; got {tuple(kernel.shape)}.")
    size = kernel.shape[-1]
    if size % 2 == 0:
        raise ValueError(f"an AFT-conv2d kernel must have an odd size S to be centred; got S = {size}.")
    if len(grid) != 2 or int(grid[0]) * int(grid[1]) != tokens:
        raise ValueError(f"grid {tuple(grid)} does not hold the N = {tokens} tokens; pass (gh, gw) with gh * gw = N.")
    gh, gw = int(grid[0]), int(grid[1])
    if q.numel() == 0 or k.numel() == 0:
        return _no_tokens(q, k, v, kernel)
    dtype = _compute_dtype(q, k, v, kernel)
    with torch.autocast(device_type=q.device.type, enabled=False):  # sums in float32 or float64
        kf, vf, kw = k.to(dtype), v.to(dtype), kernel.to(dtype)
        e = torch.exp(kf - kf.amax(dim=1, keepdim=True)).unsqueeze(-1)  # (B, N, H, 1): every token sees every key
        # num (Dh channels per head) and den (one per head) go through the same sums: stack them as channels.
        x = torch.cat([e * vf, e], dim=-1)  # (B, N, H, Dh + 1)
        channels = head_dim + 1
        x = x.permute(0, 2, 3, 1).reshape(batch, heads, channels, gh, gw)  # (B, H, Dh + 1, gh, gw)
        b_max = kw.amax(dim=(1, 2)).clamp_min(0)  # (H,): exp(bias - b_max) <= 1, bias 0 outside included
        taps = torch.exp(kw - b_max.view(heads, 1, 1)).repeat_interleave(channels, dim=0).unsqueeze(1)
        inside = F.conv2d(
            x.reshape(batch, heads * channels, gh, gw), taps, padding=size // 2, groups=heads * channels
        ).reshape(x.shape)
        outside = _outside_window_sums(x, size // 2) * torch.exp(-b_max).view(1, heads, 1, 1, 1)
        both = (inside + outside).reshape(batch, heads, channels, tokens).permute(0, 3, 1, 2)  # (B, N, H, Dh + 1)
        y = torch.sigmoid(q.to(dtype)) * (both[..., :head_dim] / both[..., head_dim:])
    return y.to(q.dtype)


def _outside_window_sums(x: torch.Tensor, reach: int) -> torch.Tensor:
    """For every cell (r, c) of x (..., gh, gw): the sum of x over the cells outside [r +- reach] x [c +- reach].

    Rows above and below the window come from prefix sums of row totals; inside the window's rows, the columns left
    and right of it from prefix sums along each row, added over the window's 2 * reach + 1 rows. No subtraction.
    """
    row_totals = x.sum(dim=-1, keepdim=True)  # (..., gh, 1)
    above = _shift(torch.cumsum(row_totals, dim=-2), reach + 1, -2)
    below = _shift(torch.cumsum(row_totals.flip(-2), dim=-2).flip(-2), -(reach + 1), -2)
    left = _shift(torch.cumsum(x, dim=-1), reach + 1, -1)
    right = _shift(torch.cumsum(x.flip(-1), dim=-1).flip(-1), -(reach + 1), -1)
    sides = left + right  # (..., gh, gw): per row, the columns beyond the window
    in_rows = sum(_shift(sides, offset, -2) for offset in range(-reach, reach + 1))
    return above + below + in_rows


# ----------------------------------------------------------------------------------------------------------------
# The recurrent (one token at a time) form of the causal operators, for decoding
# ----------------------------------------------------------------------------------------------------------------
#
# Every causal variant decodes the same way: the new query reads a window of recent keys through their biases, and
# every older key, whose bias is 0, through running sums (num, den, max) relative to their own maximum. The window
# is empty for AFT-simple, the last s - 1 keys for AFT-local and AFT-conv, and every past key for AFT-full (which
# has no running sums): only full's state grows with the text.


def empty_running_sums(num_shape, den_shape, device=None, dtype=torch.float32):
    """(num, den, max) of no key at all: the neutral element of `fold_running_sums`."""
    return (
        torch.zeros(num_shape, device=device, dtype=dtype),
        torch.zeros(den_shape, device=device, dtype=dtype),
        torch.full(den_shape, _EMPTY_MAX, device=device, dtype=dtype),
    )


def running_sums(kappa, v, valid=None):
    """(num, den, max) of keys (..., T, Dk) and values (..., T, D) with bias 0, over T; `valid` (..., T) masks keys."""
    if valid is not None:
        floor = torch.full_like(kappa, _EMPTY_MAX)
        kappa = torch.where(valid.unsqueeze(-1), kappa, floor)
        v = _masked_values(v, valid.unsqueeze(-1))
    if kappa.shape[-2] == 0:
        return empty_running_sums(
            v.shape[:-2] + v.shape[-1:], kappa.shape[:-2] + kappa.shape[-1:], kappa.device, kappa.dtype
        )
    m = kappa.amax(dim=-2).clamp_min(_EMPTY_MAX)  # (..., Dk); keys all -inf (or masked) sum to 0, not NaN
    e = torch.exp(kappa - m.unsqueeze(-2))  # (..., T, Dk)
    if valid is not None:
        e = e * valid.unsqueeze(-1)
    return (e * v).sum(dim=-2), e.sum(dim=-2), m


def fold_running_sums(running, kappa, v, valid=None):
    """Add one key (..., Dk) and value (..., D) with bias 0 to the running sums; rows where `valid` is False keep
    theirs."""
    n, z, m = running
    new = (v, torch.ones_like(kappa), kappa)
    folded = _combine((n, z, m), new)
    if valid is None:
        return folded
    keep = valid.unsqueeze(-1)
    return tuple(torch.where(keep, f, old) for f, old in zip(folded, (n, z, m)))


def aft_step(q, kappa, v, bias, valid, running=None):
    """One query of a causal AFT against a window of keys and the running sums of every older key.

    q (..., D); kappa (..., s, Dk) the window's keys (Dk = D, or 1 for a key shared by a head); v (..., s, D);
    bias (..., s) the bias of each window key for this query; valid (..., s) bool; running (num, den, max) of the
    keys before the window, all with bias 0, or None. Returns Y (..., D); a query with no key at all gives 0.
    """
    scores = bias.unsqueeze(-1) + kappa  # (..., s, Dk)
    scores = torch.where(valid.unsqueeze(-1), scores, torch.full_like(scores, _EMPTY_MAX))
    m = scores.amax(dim=-2) if scores.shape[-2] > 0 else scores.new_full(scores.shape[:-2] + scores.shape[-1:],
                                                                          _EMPTY_MAX)
    if running is not None:
        m = torch.maximum(m, running[2])
    e = torch.exp(scores - m.unsqueeze(-2)) * valid.unsqueeze(-1)  # (..., s, Dk)
    num = (e * _masked_values(v, valid.unsqueeze(-1))).sum(dim=-2)  # (..., D)
    den = e.sum(dim=-2)  # (..., Dk)
    if running is not None:
        scale = torch.exp(running[2] - m)
        num = num + running[0] * scale
        den = den + running[1] * scale
    has_key = den > 0
    y = torch.sigmoid(q) * (num / torch.where(has_key, den, torch.ones_like(den)))
    return torch.where(has_key, y, torch.zeros_like(y))
