# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The recurrent (one token at a time) form of the causal operators, for decoding.

Every causal variant decodes the same way: the new query reads a window of recent keys through their biases, and
every older key, whose bias is 0, through running sums (num, den, max) relative to their own maximum. The window
is empty for AFT-simple, the last s - 1 keys for AFT-local and AFT-conv, and every past key for AFT-full (which
has no running sums): only full's state grows with the text.
"""

from __future__ import annotations

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
