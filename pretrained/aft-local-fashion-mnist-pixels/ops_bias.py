# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The position biases of AFT in the layouts the operators read: the band of AFT-local's w (Eq. 4) and AFT-conv's
per-head kernel (Eq. 6) laid out per block of C rows against their neighbouring blocks of keys, w = U V^T from the
paper's factors, and Eq. 6's re-parameterisation of the kernel."""

from __future__ import annotations

import math

import torch

from .ops_common import _check_window, _pad_time, _to_blocks, local_block_size

__all__ = [
    "local_bias_blocks",
    "factorized_local_bias_blocks",
    "conv1d_bias_blocks",
    "factorized_bias",
    "reparameterize_conv_kernel",
    "position_bias_at",
    "local_bias_blocks_at",
]


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
# Position-bias tables read at the tokens' own positions (a decoding state, left padding)
# ----------------------------------------------------------------------------------------------------------------


def position_bias_at(w, rows: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """w[rows, keys] of a position-bias table, w either dense (P, P) or the factors (U, V) of w = U V^T, each
    (P, d'); rows (..., R) and keys (..., K) position indices -> (..., R, K)."""
    if isinstance(w, tuple):
        u, w_v = w
        return u[rows] @ w_v[keys].transpose(-1, -2)
    return w[rows.unsqueeze(-1), keys.unsqueeze(-2)]


def local_bias_blocks_at(w, positions: torch.Tensor | None, length: int, window: int) -> torch.Tensor:
    """The causal band of AFT-local for `length` tokens at `positions` (B, T) (None: 0..T-1), from a table w as in
    position_bias_at; only the band is formed from factors."""
    if isinstance(w, tuple):
        u, w_v = w
        if positions is None:
            return factorized_local_bias_blocks(u[:length], w_v[:length], window, causal=True)
        return factorized_local_bias_blocks(u[positions], w_v[positions], window, causal=True)
    dense = w[:length, :length] if positions is None else position_bias_at(w, positions, positions)
    return local_bias_blocks(dense, window, causal=True)

