# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The export-safe form of the causal operators: what torch.export and ONNX record for a prompt and its state.

The fast and blocked algorithms choose their block layout from the length and the fast path checks the range of its
inputs (`bool(spread < limit)`) before it runs: both are Python decisions on tensor data or on the length, which a
graph with a dynamic length cannot hold. Here the choice is made once, by whoever exports (ALGORITHM below, recorded
in the exported files): the fast path's numerics, one reference per sequence and channel (the largest real key, and
the largest bias), so every sum is a matrix product of exp(w - wref) with [exp(K - kref) V | exp(K - kref)] and no
per-row maximum is needed. That is exact, like the fast path, whenever the keys of each channel together with the
biases span less than 60 in float32 (600 in float64), which the range check would have confirmed at run time; the
graph does not check it. The bias matrix is formed densely (B, T, T) (per head for conv): a prompt costs T^2 work,
the one-token step (ops_recurrent.recurrent_step, already free of data-dependent branches) does not.

Only left-padded prompts are read (the real tokens of each row consecutive at its end), as generation pads them:
the state's window is then the last s - 1 time steps of each row.
"""

from __future__ import annotations

import math

import torch

from .ops_bias import position_bias_at
from .ops_recurrent import running_sums

ALGORITHM = "export-dense-fast"  # recorded in the exported files: which algorithm the graph holds
RANGE_LIMIT = {torch.float32: 60.0, torch.float64: 600.0}  # the inputs it is exact for (as ops_fast._FAST_RANGE)


def _allowed(positions: torch.Tensor, valid: torch.Tensor):
    """(B, T, T) bool, the keys each row reads: the real ones at or before it; and t - t' in real-token positions."""
    gap = positions.unsqueeze(-1) - positions.unsqueeze(-2)  # (B, T, T): t - t'
    causal = torch.ones_like(gap, dtype=torch.bool).tril()
    allowed = causal & valid.unsqueeze(-2)
    return allowed, gap


def dense_causal_aft(q, k, v, bias, allowed, heads: bool = False):
    """Causal AFT over a dense bias: q, v (B, T, D) (per head (B, T, H, Dh)), k (B, T, D) (per head (B, T, H)),
    bias (B, T, T) (per head (B, H, T, T)) with every key outside the band already at its bias (0 for local and
    conv), allowed (B, T, T) bool: the keys each row reads. Rows that read no key give 0."""
    if heads:  # heads before time: (B, H, T, 1) keys, (B, H, T, Dh) values
        k, v, q = k.movedim(-1, 1).unsqueeze(-1), v.movedim(-2, 1), q.movedim(-2, 1)
        allowed = allowed.unsqueeze(1)
    keys_valid = allowed.any(dim=-2).unsqueeze(-1)  # (B, [1,] T, 1): keys some row reads (the real ones)
    floor = torch.full_like(k, -math.inf)
    k_ref = torch.where(keys_valid, k, floor).amax(dim=-2, keepdim=True)  # (B, [H,] 1, Dk)
    k_ref = torch.where(torch.isfinite(k_ref), k_ref, torch.zeros_like(k_ref))
    e = torch.exp(torch.where(keys_valid, k - k_ref, floor))  # (B, [H,] T, Dk); padding weighs 0
    masked = torch.where(allowed, bias, torch.full_like(bias, -math.inf))
    w_ref = masked.amax(dim=(-2, -1), keepdim=True)
    w_ref = torch.where(torch.isfinite(w_ref), w_ref, torch.zeros_like(w_ref))
    weights = torch.exp(masked - w_ref)  # (B, [H,] T, T); 0 where not read
    ev = e * torch.where(keys_valid, v, torch.zeros_like(v))
    num = weights @ ev  # (B, [H,] T, D)
    den = weights @ e  # (B, [H,] T, Dk)
    has = den > 0
    y = torch.sigmoid(q) * (num / torch.where(has, den, torch.ones_like(den)))
    y = torch.where(has, y, torch.zeros_like(y))
    return y.movedim(1, -2) if heads else y


def export_full(q, k, v, table, positions, valid):
    allowed, _ = _allowed(positions, valid)
    return dense_causal_aft(q, k, v, position_bias_at(table, positions, positions), allowed)


def export_local(q, k, v, table, window: int, positions, valid):
    allowed, gap = _allowed(positions, valid)
    inside = gap < window  # Eq. 4: w inside the window, 0 (not -inf) outside it
    bias = torch.where(inside, position_bias_at(table, positions, positions), torch.zeros((), dtype=q.dtype))
    return dense_causal_aft(q, k, v, bias, allowed)


def export_simple(q, k, v, positions, valid):
    allowed, _ = _allowed(positions, valid)
    return dense_causal_aft(q, k, v, torch.zeros(allowed.shape, dtype=q.dtype), allowed)


def export_conv1d(q, k, v, kernel, positions, valid):
    """q, v (B, T, H, Dh), k (B, T, H), kernel (H, S) with kernel[h, j] the bias of t' = t - j."""
    allowed, gap = _allowed(positions, valid)
    size = kernel.shape[1]
    inside = (gap >= 0) & (gap < size)
    index = gap.clamp(0, size - 1)  # (B, T, T)
    bias = kernel[:, index].movedim(0, 1)  # (B, H, T, T)
    bias = torch.where(inside.unsqueeze(1), bias, torch.zeros((), dtype=q.dtype))
    return dense_causal_aft(q, k, v, bias, allowed, heads=True)


def prompt_state(k, v, valid, slots: int | None, heads: bool = False):
    """The decoding state after a left-padded prompt, as plain tensors: k (B, T, Dk), v (B, T, ...), valid (B, T).

    slots None (AFT-full): (keys (B, T, Dk), values, valid (B, T)) of every time step. Otherwise the window of the
    last `slots` time steps (empty slots in front when the prompt is shorter) and the running sums (num, den, max)
    of every real token before it, as ops_recurrent.AFTState holds them.
    """
    if slots is None:
        return k, v, valid
    batch, length = k.shape[:2]
    if slots > 0:
        k_pad = torch.cat([k.new_zeros((batch, slots) + k.shape[2:]), k], dim=1)
        v_pad = torch.cat([v.new_zeros((batch, slots) + v.shape[2:]), v], dim=1)
        valid_pad = torch.cat([valid.new_zeros(batch, slots), valid], dim=1)
        window = (k_pad[:, -slots:], v_pad[:, -slots:], valid_pad[:, -slots:])
        older = (k_pad[:, :length], v_pad[:, :length], valid_pad[:, :length])
    else:
        window = (k[:, :0], v[:, :0], valid[:, :0])
        older = (k, v, valid)
    ok, ov, ovalid = older
    if heads:  # one key per head, as a channel of size 1: (B, H, T, 1), (B, H, T, Dh)
        ok, ov, ovalid = ok.movedim(-1, 1).unsqueeze(-1), ov.movedim(-2, 1), ovalid.unsqueeze(1)
    return window, running_sums(ok, ov, ovalid)
