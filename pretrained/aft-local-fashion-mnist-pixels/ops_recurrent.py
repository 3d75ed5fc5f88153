# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The recurrent (one token at a time) form of the causal operators, for decoding.

Every causal variant decodes the same way: the new query reads a window of recent keys through their biases, and
every older key, whose bias is 0, through running sums (num, den, max) relative to their own maximum. The window
is empty for AFT-simple, the last s - 1 keys for AFT-local and AFT-conv, and every past key for AFT-full (which
has no running sums): only full's state grows with the text.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .ops_common import _EMPTY_MAX, _combine, _masked_values


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


# ----------------------------------------------------------------------------------------------------------------
# The state of a causal layer, and the operators' recurrent form: prefill -> state, step(state) -> state, and a
# parallel prefill that starts from a state
# ----------------------------------------------------------------------------------------------------------------


class AFTState(NamedTuple):
    """The decoding state of one causal AFT layer after `count` real tokens (and `steps` time steps, padding
    included).

    keys (B, s, Dk), values (B, s, D) or, per head, (B, s, H, Dh), valid (B, s) bool: the window of the latest
    real tokens, oldest first, empty slots (valid False) at the front; s = window - 1 for AFT-local, S - 1 for
    AFT-conv, 0 for AFT-simple. AFT-full keeps every time step read here instead (padding flagged invalid), like a
    key/value cache. num, den, max: the running sums of every real key older than the window, all with bias 0
    ((B, D), (B, D), (B, D); per head (B, H, Dh), (B, H, 1), (B, H, 1)); None for AFT-full.
    """

    keys: torch.Tensor
    values: torch.Tensor
    valid: torch.Tensor
    count: torch.Tensor
    steps: int
    num: torch.Tensor | None = None
    den: torch.Tensor | None = None
    max: torch.Tensor | None = None

    @property
    def running(self):
        return None if self.num is None else (self.num, self.den, self.max)


def empty_state(q, k, v, window: int | None) -> AFTState:
    """The state before any token, for inputs shaped like q, k, v ((B, T, D) each, or per head q, v (B, T, H, Dh)
    and k (B, T, H)); window: the slots kept beside the running sums (None: every token, AFT-full)."""
    batch, slots = q.shape[0], window or 0
    dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    keys = k.new_zeros((batch, slots) + k.shape[2:], dtype=dtype)
    values = v.new_zeros((batch, slots) + v.shape[2:], dtype=dtype)
    valid = torch.zeros(batch, slots, dtype=torch.bool, device=q.device)
    count = torch.zeros(batch, dtype=torch.long, device=q.device)
    if window is None:
        return AFTState(keys, values, valid, count, 0)
    heads = v.dim() == 4
    num_shape = (batch,) + v.shape[2:]
    den_shape = (batch, k.shape[2], 1) if heads else (batch, k.shape[2])
    return AFTState(keys, values, valid, count, 0, *empty_running_sums(num_shape, den_shape, q.device, dtype))


def _per_head(k, v, valid=None):
    """Keys (B, ..., H) and values (B, ..., H, Dh) with time second -> the layout of running_sums and aft_step: heads
    before time, one key per head as a channel of size 1: (B, H, ..., 1), (B, H, ..., Dh)."""
    k, v = k.movedim(-1, 1).unsqueeze(-1), v.movedim(-2, 1)
    return (k, v) if valid is None else (k, v, valid.unsqueeze(1))


def _sums_of(k, v, valid, heads: bool):
    """Running sums (bias 0) of tokens k (B, T, Dk), v (B, T, ...), where valid (B, T)."""
    return running_sums(*_per_head(k, v, valid)) if heads else running_sums(k, v, valid)


def _virtual_token(running, heads: bool):
    """One key and value that stand for all the running sums: exp(kappa*) v* = exp(m) num and exp(kappa*) = exp(m) den
    with kappa* = m + log(den), v* = num / den. A channel that has summed nothing gets the key -inf (weight 0).
    Returns keys (B, 1, Dk), values (B, 1, ...), valid (B, 1)."""
    num, den, m = running
    has = den > 0
    kappa = torch.where(has, m + torch.log(torch.where(has, den, torch.ones_like(den))), -math.inf)
    value = torch.where(has, num / torch.where(has, den, torch.ones_like(den)), torch.zeros_like(num))
    if heads:  # (B, H, 1), (B, H, Dh) -> a token of H keys and (H, Dh) values
        kappa = kappa.squeeze(-1)
    return kappa.unsqueeze(1), value.unsqueeze(1), has.flatten(1).any(dim=1, keepdim=True)


def _take(x, index):
    """x[b, index[b]] along time (dim 1) for every sequence b; index (B, L)."""
    return x[torch.arange(x.shape[0], device=x.device).unsqueeze(1), index]


def _positions(state: AFTState, valid: torch.Tensor) -> torch.Tensor:
    """(B, L): the position of each of the state's slots and new tokens among the real tokens of its sequence (what
    the position biases of AFT-local and AFT-full are read at); 0 for padding and empty slots."""
    first = state.count - state.valid.sum(dim=1)  # (B,): the position of the state's oldest kept token
    return (first.unsqueeze(1) + torch.cumsum(valid.long(), dim=1) - 1).clamp_min(0)


def _final_state(state: AFTState, k, v, valid, heads: bool) -> AFTState:
    """The state after reading k, v (valid (B, T) bool) on top of `state`."""
    steps, count = state.steps + k.shape[1], state.count + valid.sum(dim=1)
    dtype = state.keys.dtype
    keys, values = torch.cat([state.keys, k.to(dtype)], dim=1), torch.cat([state.values, v.to(dtype)], dim=1)
    seen = torch.cat([state.valid, valid], dim=1)  # (B, s + T)
    if state.num is None:  # AFT-full keeps every time step
        return AFTState(keys, values, seen, count, steps)
    slots = state.keys.shape[1]
    if not bool(seen.all()):  # padding and empty slots to the front, the real tokens after them in order
        order = torch.argsort(seen.to(torch.int8), dim=1, stable=True)
        keys, values, seen = _take(keys, order), _take(values, order), _take(seen, order)
    older = keys.shape[1] - slots  # everything but the newest `slots` leaves the window for the running sums
    folded = _sums_of(keys[:, :older], values[:, :older], seen[:, :older], heads)
    running = _combine(state.running, folded)
    return AFTState(keys[:, older:], values[:, older:], seen[:, older:], count, steps, *running)


def recurrent_prefill(parallel, q, k, v, valid, state: AFTState | None, window: int | None):
    """Y of new tokens q, k, v (B, T, ...) read on top of `state` (None: nothing read yet), and the state after them.

    parallel(q, k, v, valid, positions) is the variant's causal parallel operator over a sequence (valid (B, L) bool
    or None; positions (B, L) of every token among the real ones, or None for 0..L-1). From a state it runs over
    [the running sums as one token | the window | the new tokens], padding and empty slots moved to the front of
    each sequence (after the running sums' token) so that the real tokens are consecutive: the window's biases
    then reach exactly the window's slots, and the running sums' token lies beyond every new token's window (bias 0),
    as Eq. 4 and Eq. 6 give the keys it stands for. AFT-full (window None) reads [every past token | the new ones].
    """
    heads = v.dim() == 4
    batch, length = q.shape[:2]
    given = valid
    valid = torch.ones(batch, length, dtype=torch.bool, device=q.device) if valid is None else valid
    if state is None:
        positions = None if given is None else (torch.cumsum(valid.long(), dim=1) - 1).clamp_min(0)
        y = parallel(q, k, v, given, positions)
        return y, _final_state(empty_state(q, k, v, window), k, v, valid, heads)
    dtype = state.keys.dtype
    ks, vs, seen = [state.keys, k.to(dtype)], [state.values, v.to(dtype)], [state.valid, valid]
    positions = _positions(state, torch.cat(seen, dim=1))  # (B, s + T)
    rank = torch.cat(seen, dim=1).to(torch.int8) + 1  # 1 padding or empty slot, 2 real token
    if state.num is not None:
        vk, vv, vvalid = _virtual_token(state.running, heads)
        ks, vs, seen = [vk] + ks, [vv] + vs, [vvalid] + seen
        positions = torch.cat([torch.zeros_like(positions[:, :1]), positions], dim=1)
        rank = torch.cat([torch.zeros_like(rank[:, :1]), rank], dim=1)  # the running sums' token stays first
    keys, values, seen = torch.cat(ks, 1), torch.cat(vs, 1), torch.cat(seen, 1)  # (B, L, ...)
    extra = keys.shape[1] - length
    queries = torch.cat([q.new_zeros((batch, extra) + q.shape[2:]).to(dtype), q.to(dtype)], dim=1)  # no row reads them
    order = None
    if not bool(seen[:, extra - state.keys.shape[1]:].all()):
        order = torch.argsort(rank, dim=1, stable=True)
        queries, keys, values, seen, positions = (_take(x, order) for x in (queries, keys, values, seen, positions))
    y = parallel(queries, keys, values, None if bool(seen.all()) else seen, positions)  # (B, L, ...); no mask: cheaper
    if order is not None:
        y = _take(y, torch.argsort(order, dim=1))
    return y[:, extra:].to(q.dtype), _final_state(state, k, v, valid, heads)


def recurrent_step(step_bias, q, k, v, valid, state: AFTState):
    """One token (q, k, v (B, 1, ...), valid (B, 1) bool or None) against the state: Y (B, 1, ...) and the next state.

    step_bias(rows (B,), keys (B, n)) gives the bias of the window's n keys (at positions `keys`) for the query at
    position `rows`: (B, n), or per head (B, H, n). A padding token reads the state but leaves it as it was.
    """
    heads = v.dim() == 4
    dtype = state.keys.dtype
    batch = q.shape[0]
    valid = torch.ones(batch, dtype=torch.bool, device=q.device) if valid is None else valid[:, 0]
    q0 = q[:, 0].to(dtype)
    win_k = torch.cat([state.keys, k.to(dtype)], dim=1)  # (B, n, Dk): the window and the new token, oldest first
    win_v = torch.cat([state.values, v.to(dtype)], dim=1)
    win_valid = torch.cat([state.valid, valid.unsqueeze(1)], dim=1)  # (B, n)
    n = win_k.shape[1]
    if state.num is None:  # AFT-full: every key at its position among the real tokens
        keys = (torch.cumsum(win_valid.long(), dim=1) - 1).clamp_min(0)
    else:  # the window holds the latest real tokens: t - t' = n - 1, ..., 0
        keys = (state.count.unsqueeze(1) - torch.arange(n - 1, -1, -1, device=q.device)).clamp_min(0)
    bias = step_bias(state.count, keys).to(dtype)
    if heads:
        head_k, head_v, head_valid = _per_head(win_k, win_v, win_valid)  # (B, H, n, 1), (B, H, n, Dh), (B, 1, n)
        y = aft_step(q0, head_k, head_v, bias, head_valid, state.running)
    else:
        y = aft_step(q0, win_k, win_v, bias, win_valid, state.running)
    count, steps = state.count + valid.long(), state.steps + 1
    if state.num is None:
        return y.unsqueeze(1).to(q.dtype), AFTState(win_k, win_v, win_valid, count, steps)
    # A real token enters the window and pushes its oldest key into the running sums; padding changes nothing.
    leave_k, leave_v = win_k[:, 0], win_v[:, 0]  # (B, Dk), (B, ...)
    leave_valid = valid & win_valid[:, 0]
    if heads:
        leave_k = leave_k.unsqueeze(-1)  # (B, H, 1)
    running = fold_running_sums(state.running, leave_k, leave_v, leave_valid.view(batch, *[1] * (leave_k.dim() - 2)))
    keep = valid.view(batch, 1)
    window = [torch.where(keep.view(batch, 1, *[1] * (x.dim() - 2)), x[:, 1:], old)
              for x, old in ((win_k, state.keys), (win_v, state.values))]
    # Flags selected with logic, not torch.where: ONNX Runtime has no Where kernel for bool tensors (exported steps).
    flags = (keep & win_valid[:, 1:]) | (~keep & state.valid)
    return y.unsqueeze(1).to(q.dtype), AFTState(*window, flags, count, steps, *running)
