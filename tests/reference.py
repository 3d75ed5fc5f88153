# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Slow, obvious float64 reference implementations of the AFT operators.

Everything in the test-suite is checked against these functions, so they are
written straight from the equations of the paper (Zhai et al., 2021,
"An Attention Free Transformer") with no tricks:

    Y_t = sigmoid(Q_t) * sum_s exp(K_s + w[t, s]) * V_s / sum_s exp(K_s + w[t, s])

evaluated elementwise per channel.  ``w`` is one scalar per (query t, key s)
pair, shared by all channels.  Every operator is reduced to this one formula by
building the explicit dense (T, T) bias matrix and an explicit boolean matrix
of which keys each query may look at (causal mask, key padding mask).

Numerics: everything is converted to float64, and the exponentials are taken
after subtracting the maximum logit of each (batch, query, channel) row over
the keys that row may see.  A query row that sees no key at all gets output 0.
A key of -inf weighs exp(-inf) = 0 like any masked key, as long as the row also
sees a finite one; a row whose every visible key is -inf (0/0), or that sees a
+inf or NaN key, gives NaN, as Eq. 2 does.

The functions do not detach their inputs, so they are differentiable too.
"""

import torch

DTYPE = torch.float64


def _f64(x):
    """Convert a tensor to float64 (keeping it in the autograd graph)."""
    return x.to(DTYPE)


# --------------------------------------------------------------------------- #
# The one formula everything reduces to.
# --------------------------------------------------------------------------- #
def aft_dense(q, k, v, bias, causal=False, key_padding_mask=None):
    """AFT with an explicit dense bias matrix.

    q, k, v: (B, T, D).  bias: (T, T), bias[t, s] for query t and key s.
    causal: query t only sees keys s <= t.
    key_padding_mask: (B, T), nonzero = real key, 0 = padding (never seen).
    Returns float64 (B, T, D).
    """
    q, k, v, bias = _f64(q), _f64(k), _f64(v), _f64(bias)
    B, T, D = q.shape
    assert k.shape == (B, T, D) and v.shape == (B, T, D), (q.shape, k.shape, v.shape)
    assert bias.shape == (T, T), bias.shape

    # allowed[b, t, s] is True when query t of batch element b may see key s.
    allowed = torch.ones(B, T, T, dtype=torch.bool)
    if causal:
        allowed = allowed & torch.ones(T, T, dtype=torch.bool).tril()
    if key_padding_mask is not None:
        assert key_padding_mask.shape == (B, T), key_padding_mask.shape
        allowed = allowed & (key_padding_mask != 0)[:, None, :]

    # logits[b, t, s, d] = K[b, s, d] + w[t, s]; keys that may not be seen get -inf.
    logits = k[:, None, :, :] + bias[None, :, :, None]
    logits = logits.masked_fill(~allowed[..., None], float("-inf"))

    # Subtract the maximum of each (b, t, d) row over the keys s it can see.
    row_max = logits.amax(dim=2, keepdim=True)
    has_key = allowed.any(dim=2)  # (B, T)
    row_max = torch.where(has_key[:, :, None, None], row_max, torch.zeros_like(row_max))
    weights = torch.exp(logits - row_max)  # exactly 0 where not allowed

    numerator = (weights * v[:, None, :, :]).sum(dim=2)  # (B, T, D)
    denominator = weights.sum(dim=2)  # (B, T, D), >= 1 where has_key
    denominator = torch.where(has_key[..., None], denominator, torch.ones_like(denominator))
    average = numerator / denominator  # numerator is 0 where the row sees nothing

    return torch.sigmoid(q) * average


# --------------------------------------------------------------------------- #
# Dense bias matrices.
# --------------------------------------------------------------------------- #
def local_bias(w, window):
    """AFT-local bias: w[t, s] where |t - s| < window, 0 (not -inf) elsewhere."""
    w = _f64(w)
    T = w.shape[0]
    t = torch.arange(T)[:, None]
    s = torch.arange(T)[None, :]
    inside = (t - s).abs() < window
    return torch.where(inside, w, torch.zeros_like(w))


def dense_conv1d_bias(kernel, T, causal):
    """Dense (H, T, T) bias of AFT-conv (1-D) for a sequence of length T.

    causal:        kernel[h, j] is the bias of query t for key s = t - j.
    bidirectional: kernel[h, j] is the bias of query t for key s = t + j - S // 2.
    Pairs the kernel does not cover get bias 0.
    """
    kernel = _f64(kernel)
    H, S = kernel.shape
    bias = torch.zeros(H, T, T, dtype=DTYPE)
    for t in range(T):
        for j in range(S):
            s = t - j if causal else t + j - S // 2
            if 0 <= s < T:
                bias[:, t, s] = kernel[:, j]
    return bias


def dense_conv2d_bias(kernel, grid):
    """Dense (H, N, N) bias of AFT-conv (2-D) on a (gh, gw) grid, row-major tokens.

    kernel[h, i, j] is the bias of a query for the key at grid offset
    (i - S // 2, j - S // 2) (row offset, column offset) from it.
    Pairs the kernel does not cover get bias 0.
    """
    kernel = _f64(kernel)
    H, S, S2 = kernel.shape
    assert S == S2 and S % 2 == 1, kernel.shape
    gh, gw = grid
    N = gh * gw
    half = S // 2
    bias = torch.zeros(H, N, N, dtype=DTYPE)
    for n in range(N):
        row, col = divmod(n, gw)
        for m in range(N):
            key_row, key_col = divmod(m, gw)
            dr, dc = key_row - row, key_col - col
            if abs(dr) <= half and abs(dc) <= half:
                bias[:, n, m] = kernel[:, dr + half, dc + half]
    return bias


# --------------------------------------------------------------------------- #
# The operators.
# --------------------------------------------------------------------------- #
def ref_full(q, k, v, w, causal=False, key_padding_mask=None):
    """AFT-full (Eq. 2). q, k, v: (B, T, D); w: (T, T)."""
    return aft_dense(q, k, v, w, causal, key_padding_mask)


def ref_local(q, k, v, w, window, causal=False, key_padding_mask=None):
    """AFT-local (Eq. 4). Outside the window the bias is 0, not -inf."""
    return aft_dense(q, k, v, local_bias(w, window), causal, key_padding_mask)


def ref_simple(q, k, v, causal=False, key_padding_mask=None):
    """AFT-simple (Eq. 5): no position bias at all."""
    T = q.shape[1]
    return aft_dense(q, k, v, torch.zeros(T, T, dtype=DTYPE), causal, key_padding_mask)


def _per_head(q, k, v, bias, causal, key_padding_mask):
    """Run aft_dense separately for every head.

    q, v: (B, T, H, Dh); k: (B, T, H) (one key per head, broadcast over Dh);
    bias: (H, T, T).  Returns (B, T, H, Dh) float64.
    """
    B, T, H, Dh = q.shape
    outputs = []
    for h in range(H):
        k_h = k[:, :, h, None].expand(B, T, Dh)
        outputs.append(aft_dense(q[:, :, h], k_h, v[:, :, h], bias[h], causal, key_padding_mask))
    return torch.stack(outputs, dim=2)


def ref_conv1d(q, k, v, kernel, causal=False, key_padding_mask=None):
    """AFT-conv (1-D). q, v: (B, T, H, Dh); k: (B, T, H); kernel: (H, S)."""
    T = q.shape[1]
    return _per_head(q, k, v, dense_conv1d_bias(kernel, T, causal), causal, key_padding_mask)


def ref_conv2d(q, k, v, kernel, grid):
    """AFT-conv (2-D), bidirectional. q, v: (B, N, H, Dh); k: (B, N, H); kernel: (H, S, S)."""
    assert q.shape[1] == grid[0] * grid[1], (q.shape, grid)
    return _per_head(q, k, v, dense_conv2d_bias(kernel, grid), False, None)
