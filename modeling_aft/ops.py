# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The Attention Free Transformer operators (Zhai et al., 2021, arXiv 2105.14103) as pure functions.

Every operator returns the paper's

    Y_t = sigmoid(Q_t) * sum_t' exp(K_t' + w_tt') V_t' / sum_t' exp(K_t' + w_tt')            (Eq. 2)

for one choice of the pairwise bias w: a learned (T, T) matrix (AFT-full, Eq. 2), that matrix inside a window
and 0 outside it (AFT-local, Eq. 4), nothing (AFT-simple, Eq. 5) or a per-head relative kernel (AFT-conv, Eq. 6).
Causal forms sum over t' <= t only.

This module is the public API and the dispatch; each algorithm reads top to bottom in its own file:

* ops_fast.py, the fast path: one reference per sequence and channel (taken whenever the finite keys of every
  channel, with the biases, span less than 60 in float32 or 600 in float64), so the sums are a batched matrix
  product over the band of neighbouring blocks plus cumulative sums, and a hand-written backward that keeps only
  q, k, v and the bias (or its factors) for autograd.
* ops_blocked.py, the blocked max-stabilised algorithm, for any input (keys hundreds apart included); autograd
  differentiates it.
* ops_recurrent.py, the recurrent form of the causal operators: a prefill that returns the final state, one step
  (q, k, v, state) -> (y, state), and a parallel prefill that starts from a state.
* ops_bias.py (the bias layouts) and ops_common.py (checks, precision, shared helpers).

Every operator takes algorithm="auto" (the fast path when the inputs fit its range, else the blocked algorithm),
"fast" (a ValueError for inputs beyond its range) or "blocked". Inputs of half precision are computed in float32
(and autocast is switched off inside), then cast back.

Non-finite keys: every maximum or minimum that picks a reference is taken per sequence and channel, so a NaN or inf
in one sequence never reaches another. A key of -inf weighs exactly exp(-inf) = 0, as in Eq. 2, so a row that also
sees a finite key gets the finite result; a row whose every visible key of a channel is -inf is 0/0 (NaN in the
float64 reference; 0 here when the row also sees padding). A key of +inf or NaN makes the rows that see it NaN (inf /
inf in Eq. 2) and, through the shared block sums, possibly other rows of its own sequence, never of another.
Empty inputs (B = 0 or T = 0) give an empty output of the right shape.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .ops_bias import (
    conv1d_bias_blocks,
    factorized_bias,
    factorized_local_bias_blocks,
    local_bias_blocks,
    local_bias_blocks_at,
    position_bias_at,
    reparameterize_conv_kernel,
)
from .ops_blocked import blocked_banded, blocked_full, blocked_simple
from .ops_common import (
    ALGORITHMS,
    _check_algorithm,
    _check_float,
    _check_heads,
    _check_mask,
    _check_qkv,
    _check_square_bias,
    _check_window,
    _no_tokens,
    _shift,
    compute_in_float,
    local_block_size,
)
from .ops_fast import fast_aft as _fast_aft
from .ops_fast import fast_full_factorized as _fast_full_factorized
from .ops_recurrent import (
    AFTState,
    aft_step,
    empty_running_sums,
    empty_state,
    fold_running_sums,
    recurrent_prefill,
    recurrent_step,
    running_sums,
)

__all__ = [
    "ALGORITHMS",
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
    "aft_full_recurrent",
    "aft_local_recurrent",
    "aft_simple_recurrent",
    "aft_conv1d_recurrent",
    "AFTState",
    "position_bias_at",
    "local_bias_blocks_at",
    "aft_step",
    "empty_running_sums",
    "fold_running_sums",
    "running_sums",
]


def _dispatch(algorithm: str, fast, blocked):
    """y = fast() unless the blocked algorithm was asked for or fast() declined the inputs (None); then blocked()."""
    y = None if _check_algorithm(algorithm) == "blocked" else fast()
    return blocked() if y is None else y


def _keys_mask(valid):
    """(B, T) bool -> (B, T, 1), the layout the algorithms read; None stays None."""
    return None if valid is None else valid.unsqueeze(-1)


# ----------------------------------------------------------------------------------------------------------------
# The operators
# ----------------------------------------------------------------------------------------------------------------


def aft_full(q, k, v, w, causal: bool = False, key_padding_mask=None, algorithm: str = "auto"):
    """AFT-full (Eq. 2): q, k, v (B, T, D); w (T, T) with w[t, t'] the bias of key t' for query t (or (B, T, T)).

    Computed as the paper does, exp(w) @ (exp(K) * V) over exp(w) @ exp(K), by blocks of queries; the causal
    diagonal blocks of the blocked algorithm go through the triangle recursion so early rows keep their own maximum.
    """
    _check_qkv(q, k, v)
    batch, length, _ = q.shape
    _check_square_bias(w, length, batch)
    mask = _keys_mask(_check_mask(key_padding_mask, batch, length))
    _check_algorithm(algorithm)
    if q.numel() == 0:
        return _no_tokens(q, k, v, w)

    def run(q, k, v, w):
        return _dispatch(
            algorithm,
            lambda: _fast_aft(q, k, v, w, causal, mask, dense=True, algorithm=algorithm),
            lambda: blocked_full(q, k, v, w, causal, mask),
        )

    return compute_in_float(run, q, k, v, w)


def aft_full_factorized(q, k, v, u, w_v, causal: bool = False, key_padding_mask=None, algorithm: str = "auto"):
    """AFT-full with the paper's factorised bias w = U V^T: q, k, v (B, T, D); u, w_v (T, d') or (B, T, d').

    Equal to aft_full(q, k, v, u @ w_v.T, ...), but on the fast path w is formed a block of 512 rows at a time (the
    lower triangle only when causal) and never kept: memory linear in T. Used when the factors' norms bound |w| so
    that keys and biases fit the fast path's range; otherwise it forms w and proceeds as aft_full.
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
    mask = _keys_mask(_check_mask(key_padding_mask, batch, length))
    _check_algorithm(algorithm)
    if q.numel() == 0:
        return _no_tokens(q, k, v, u, w_v)

    def run(q, k, v, u, w_v):
        # A bound from the factors' norms can be loose: where it fails, w itself may still fit the fast path.
        y = None if algorithm == "blocked" else _fast_full_factorized(q, k, v, u, w_v, causal, mask)
        if y is not None:
            return y
        w = factorized_bias(u, w_v)  # (T, T) or (B, T, T)
        return _dispatch(
            algorithm,
            lambda: _fast_aft(q, k, v, w, causal, mask, dense=True, algorithm=algorithm),
            lambda: blocked_full(q, k, v, w, causal, mask),
        )

    return compute_in_float(run, q, k, v, u, w_v)


def aft_local_blocked(q, k, v, near_bias, causal: bool = False, key_padding_mask=None, algorithm: str = "auto"):
    """AFT-local from the block layout of its bias (see `local_bias_blocks`, `factorized_local_bias_blocks`).

    q, k, v (B, T, D); near_bias (nb, C, nK*C) or broadcastable (..., nb, C, nK*C).
    """
    _check_qkv(q, k, v)
    batch, length, _ = q.shape
    mask = _keys_mask(_check_mask(key_padding_mask, batch, length))
    block = near_bias.shape[-2]
    expected = (math.ceil(length / block), block, (2 if causal else 3) * block)
    if tuple(near_bias.shape[-3:]) != expected:
        raise ValueError(
            f"near_bias has shape {tuple(near_bias.shape)}; for T = {length}, causal = {causal} expected (..., "
            f"{expected[0]}, {expected[1]}, {expected[2]}); build it with local_bias_blocks or "
            "factorized_local_bias_blocks."
        )
    _check_algorithm(algorithm)
    if q.numel() == 0:
        return _no_tokens(q, k, v, near_bias)

    def run(q, k, v, bias):
        return _dispatch(
            algorithm,
            lambda: _fast_aft(q, k, v, bias, causal, mask, algorithm=algorithm),
            lambda: blocked_banded(q, k, v, bias, causal, mask, block),
        )

    return compute_in_float(run, q, k, v, near_bias)


def aft_local(q, k, v, w, window, causal: bool = False, key_padding_mask=None, algorithm: str = "auto"):
    """AFT-local (Eq. 4): w[t, t'] inside |t - t'| < window, 0 (not -inf) outside. q, k, v (B, T, D); w (T, T)."""
    _check_qkv(q, k, v)
    _check_square_bias(w, q.shape[1], q.shape[0])
    window = _check_window(window)
    if q.numel() == 0:
        _check_mask(key_padding_mask, q.shape[0], q.shape[1])
        _check_algorithm(algorithm)
        return _no_tokens(q, k, v, w)
    near = local_bias_blocks(w, window, causal)
    return aft_local_blocked(q, k, v, near, causal, key_padding_mask, algorithm=algorithm)


def aft_simple(q, k, v, causal: bool = False, key_padding_mask=None, algorithm: str = "auto"):
    """AFT-simple (Eq. 5): no position bias; bidirectional it is a softmax over t per channel, causal a running one."""
    _check_qkv(q, k, v)
    batch, length, _ = q.shape
    mask = _keys_mask(_check_mask(key_padding_mask, batch, length))
    _check_algorithm(algorithm)
    if q.numel() == 0:
        return _no_tokens(q, k, v)

    def run(q, k, v):
        return _dispatch(
            algorithm,
            lambda: _fast_aft(q, k, v, None, causal, mask, algorithm=algorithm),
            lambda: blocked_simple(q, k, v, causal, mask),
        )

    return compute_in_float(run, q, k, v)


def aft_conv1d(q, k, v, kernel, causal: bool = False, key_padding_mask=None, algorithm: str = "auto"):
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
    _check_algorithm(algorithm)
    if q.numel() == 0 or k.numel() == 0:
        return _no_tokens(q, k, v, kernel)
    mask = None if valid is None else valid.view(batch, 1, length, 1)

    def run(q, k, v, kernel):
        qh, vh = q.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, Dh)
        kh = k.transpose(1, 2).unsqueeze(-1)  # (B, H, T, 1): one key per head, shared by its channels
        near = conv1d_bias_blocks(kernel, length, causal)  # (H, 1, C, nK*C)
        y = _dispatch(
            algorithm,
            lambda: _fast_aft(qh, kh, vh, near, causal, mask, algorithm=algorithm),
            lambda: blocked_banded(qh, kh, vh, near, causal, mask, near.shape[-2]),
        )
        return y.transpose(1, 2)  # (B, T, H, Dh)

    return compute_in_float(run, q, k, v, kernel)


def aft_conv2d(q, k, v, kernel, grid, algorithm: str = "auto"):
    """AFT-conv on a (gh, gw) grid of N = gh*gw tokens in row-major order (Eq. 6, bidirectional).

    q, v (B, N, H, Dh); k (B, N, H); kernel (H, S, S), S odd, centred: kernel[h, i, j] is the bias of the key at
    grid offset (i - S//2, j - S//2). The paper writes num = conv2d(exp(K) * V, exp(w) - 1) + the sum over all
    tokens; subtracting the window from the total that way cancels catastrophically when w << 0, so the keys
    inside the window (a depthwise conv2d with exp(w)) and those outside it (prefix sums over the rows above and
    below and the columns left and right of the window) are summed apart. One algorithm serves every input (its
    maxima are per sequence and head), so `algorithm` is only checked.
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
    _check_algorithm(algorithm)
    if q.numel() == 0 or k.numel() == 0:
        return _no_tokens(q, k, v, kernel)

    def run(q, k, v, kernel):
        e = torch.exp(k - k.amax(dim=1, keepdim=True)).unsqueeze(-1)  # (B, N, H, 1): every token sees every key
        # num (Dh channels per head) and den (one per head) go through the same sums: stack them as channels.
        x = torch.cat([e * v, e], dim=-1)  # (B, N, H, Dh + 1)
        channels = head_dim + 1
        x = x.permute(0, 2, 3, 1).reshape(batch, heads, channels, gh, gw)  # (B, H, Dh + 1, gh, gw)
        b_max = kernel.amax(dim=(1, 2)).clamp_min(0)  # (H,): exp(bias - b_max) <= 1, bias 0 outside included
        taps = torch.exp(kernel - b_max.view(heads, 1, 1)).repeat_interleave(channels, dim=0).unsqueeze(1)
        inside = F.conv2d(
            x.reshape(batch, heads * channels, gh, gw), taps, padding=size // 2, groups=heads * channels
        ).reshape(x.shape)
        outside = _outside_window_sums(x, size // 2) * torch.exp(-b_max).view(1, heads, 1, 1, 1)
        both = (inside + outside).reshape(batch, heads, channels, tokens).permute(0, 3, 1, 2)  # (B, N, H, Dh + 1)
        return torch.sigmoid(q) * (both[..., :head_dim] / both[..., head_dim:])

    return compute_in_float(run, q, k, v, kernel)


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
# The recurrent form of the causal operators (fla / Mamba style: initial_state=, output_final_state=)
# ----------------------------------------------------------------------------------------------------------------
#
# Each returns (Y, state): Y of the new tokens as the causal operator over the whole text read so far gives it, and
# the state after them (None unless output_final_state). Without initial_state the new tokens are a prompt read by
# the parallel form; with one, a single token is one step (ops_recurrent.recurrent_step) and several tokens a
# parallel prefill that starts from the state (ops_recurrent.recurrent_prefill), exactly (to float rounding) as
# reading the whole text at once. Positions are those among the real tokens (key_padding_mask), counted on from
# the state: padding never takes a position, as in the step form. The position-bias tables of AFT-local and AFT-full
# are read at absolute positions: w is a dense (P, P) table or the factors (U, V) of w = U V^T, each (P, d').


def _recurrent(parallel, step_bias, q, k, v, key_padding_mask, initial_state, output_final_state, window):
    batch, length = q.shape[:2]
    valid = _check_mask(key_padding_mask, batch, length)
    if initial_state is not None and not isinstance(initial_state, AFTState):
        raise TypeError(
            f"initial_state must be an ops.AFTState (a returned final state); got {type(initial_state).__name__}."
        )
    if q.numel() == 0 or k.numel() == 0:  # nothing to read: the state stays as it is
        state = initial_state if initial_state is not None else empty_state(q, k, v, window)
        return _no_tokens(q, k, v), (state._replace(steps=state.steps + length) if output_final_state else None)
    if initial_state is None and not output_final_state:
        return parallel(q, k, v, valid, None), None
    if initial_state is not None and length == 1:
        y, state = recurrent_step(step_bias, q, k, v, valid, initial_state)
    else:
        y, state = recurrent_prefill(parallel, q, k, v, valid, initial_state, window)
    return y, (state if output_final_state else None)


def aft_full_recurrent(q, k, v, w, key_padding_mask=None, initial_state=None, output_final_state=False,
                       algorithm: str = "auto"):
    """Causal AFT-full (Eq. 2), recurrent: q, k, v (B, T, D); w (P, P) or (U, V) (P, d') over absolute positions.
    The state keeps every key and value read, like a key/value cache."""
    _check_qkv(q, k, v)
    _check_algorithm(algorithm)

    def parallel(q, k, v, valid, positions):
        length = q.shape[1]
        if isinstance(w, tuple):
            u, w_v = w
            fu, fv = (u[:length], w_v[:length]) if positions is None else (u[positions], w_v[positions])
            return aft_full_factorized(q, k, v, fu, fv, True, valid, algorithm=algorithm)
        dense = w[:length, :length] if positions is None else position_bias_at(w, positions, positions)
        return aft_full(q, k, v, dense, True, valid, algorithm=algorithm)

    def step_bias(rows, keys):
        return position_bias_at(w, rows.unsqueeze(1), keys).squeeze(1)  # (B, n)

    return _recurrent(parallel, step_bias, q, k, v, key_padding_mask, initial_state, output_final_state, None)


def aft_local_recurrent(q, k, v, w, window, key_padding_mask=None, initial_state=None, output_final_state=False,
                        algorithm: str = "auto"):
    """Causal AFT-local (Eq. 4), recurrent: q, k, v (B, T, D); w (P, P) or (U, V) (P, d') over absolute positions.
    The state keeps the last window - 1 real keys and values and the running sums of all older ones."""
    _check_qkv(q, k, v)
    window = _check_window(window)
    _check_algorithm(algorithm)

    def parallel(q, k, v, valid, positions):
        band = local_bias_blocks_at(w, positions, q.shape[1], window)
        return aft_local_blocked(q, k, v, band, True, valid, algorithm=algorithm)

    def step_bias(rows, keys):
        return position_bias_at(w, rows.unsqueeze(1), keys).squeeze(1)  # (B, n)

    return _recurrent(parallel, step_bias, q, k, v, key_padding_mask, initial_state, output_final_state, window - 1)


def aft_simple_recurrent(q, k, v, key_padding_mask=None, initial_state=None, output_final_state=False,
                         algorithm: str = "auto"):
    """Causal AFT-simple (Eq. 5), recurrent: q, k, v (B, T, D). The state is the running (num, den, max) alone."""
    _check_qkv(q, k, v)
    _check_algorithm(algorithm)

    def parallel(q, k, v, valid, positions):
        return aft_simple(q, k, v, True, valid, algorithm=algorithm)

    def step_bias(rows, keys):
        return torch.zeros(keys.shape, dtype=q.dtype, device=q.device)  # (B, n): no position bias

    return _recurrent(parallel, step_bias, q, k, v, key_padding_mask, initial_state, output_final_state, 0)


def aft_conv1d_recurrent(q, k, v, kernel, key_padding_mask=None, initial_state=None, output_final_state=False,
                         algorithm: str = "auto"):
    """Causal AFT-conv (Eq. 6), recurrent: q, v (B, T, H, Dh), k (B, T, H), kernel (H, S) with kernel[h, j] the bias
    of t' = t - j. The state keeps the last S - 1 keys and values and the running sums of all older ones."""
    _check_heads(q, k, v)
    _check_float("kernel", kernel)
    if kernel.dim() != 2 or kernel.shape[0] != q.shape[2]:
        raise ValueError(f"kernel must have shape (H, S) with H = {q.shape[2]}; got {tuple(kernel.shape)}.")
    _check_algorithm(algorithm)

    def parallel(q, k, v, valid, positions):
        return aft_conv1d(q, k, v, kernel, True, valid, algorithm=algorithm)

    def step_bias(rows, keys):
        return kernel[:, rows.unsqueeze(1) - keys].transpose(0, 1)  # (B, H, n): kernel[h, t - t']

    return _recurrent(parallel, step_bias, q, k, v, key_padding_mask, initial_state, output_final_state,
                      kernel.shape[1] - 1)

