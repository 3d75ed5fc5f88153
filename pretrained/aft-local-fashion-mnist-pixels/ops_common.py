# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""What every AFT algorithm shares: input checks, the precision the sums run in, masked keys and values, the
(num, den, max) combination, and the time-axis helpers. See ops.py for the operators and how one is chosen."""

from __future__ import annotations

import math

import torch

# Masked keys get a key this far below the smallest real key: exp() of it is exactly 0 next to any real key, yet
# everything stays finite (no inf - inf), so gradients of real entries are untouched.
_MASKED_KEY_OFFSET = 1.0e4
# The neutral element of the (num, den, max) combination.
_EMPTY_MAX = -1.0e30
_MIN_BLOCK = 16

# The algorithms an operator can be asked for: "auto" takes the fast path when the inputs fit its range and the
# blocked algorithm otherwise; "fast" refuses inputs beyond the fast path's range; "blocked" always runs the
# blocked, max-stabilised algorithm.
ALGORITHMS = ("auto", "fast", "blocked")


# ----------------------------------------------------------------------------------------------------------------
# Input checks: every message names the value and the fix.
# ----------------------------------------------------------------------------------------------------------------


def _check_algorithm(algorithm) -> str:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(map(repr, ALGORITHMS))}; got {algorithm!r}.")
    return algorithm


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


def compute_in_float(run, q: torch.Tensor, *tensors: torch.Tensor | None) -> torch.Tensor:
    """The shared preamble of every operator: y = run(q, *tensors) with the inputs cast to float32 (float64 if any
    is float64) and autocast switched off, so that half-precision inputs still sum in float32; y cast back to q's
    dtype. None entries (no mask, no bias) pass through."""
    dtype = _compute_dtype(q, *(x for x in tensors if x is not None))
    with torch.autocast(device_type=q.device.type, enabled=False):
        y = run(q.to(dtype), *(None if x is None else x.to(dtype) for x in tensors))
    return y.to(q.dtype)


# ----------------------------------------------------------------------------------------------------------------
# The (num, den, max) arithmetic and the time axis
# ----------------------------------------------------------------------------------------------------------------


def _combine(a, b):
    """Add two (num, den, max) triples: the online-softmax step."""
    n1, z1, m1 = a
    n2, z2, m2 = b
    m = torch.maximum(m1, m2)
    s1, s2 = torch.exp(m1 - m), torch.exp(m2 - m)
    return n1 * s1 + n2 * s2, z1 * s1 + z2 * s2, m



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
