# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The fast path: one reference per channel, matrix products and cumulative sums, a hand-written backward.

ops.py takes it (algorithm="auto" or "fast") whenever the finite keys of every channel, with the biases, span less
than 60 in float32 or 600 in float64; otherwise "auto" takes the blocked algorithm (ops_blocked.py) and "fast"
refuses the input. Entry points (inputs already in float32/64, valid (..., T, 1) bool or None): fast_aft (full with
a dense w, local, simple, conv-1d) and fast_full_factorized (full from the factors of w = U V^T).
"""

from __future__ import annotations

import logging
import math
import threading

import torch

from .ops_common import _next_pow2, _pad_time, _shift, _to_blocks

logger = logging.getLogger(__name__.rsplit(".", 1)[0] + ".ops")  # the notice comes from the operators


# How the fast path takes the sums, and why
# ---------------------------------------
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
# tens of units apart, as in the stability tests) take the blocked algorithm (ops_blocked.py), which has no such
# limit.

# exp(-range) stays a normal number with room to spare for the gradient factors 1 / den (float32: exp(60) ~ 1e26).
_FAST_RANGE = {torch.float32: 60.0, torch.float64: 600.0}
_FALLBACK_ANNOUNCED = threading.Event()  # set once "auto" has logged its first fallback: the notice shows once


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


def _fast_references(kappa, band, valid, dense: bool = False, extra_spread=None, algorithm: str = "auto"):
    """Per sequence and channel key reference (..., 1, Dk), the largest finite real key, and bias reference (a 0-dim
    tensor; for a band >= 0, since keys beyond the band have bias 0), or None unless every exponent of a finite key
    lies within _FAST_RANGE of them (algorithm="fast" then raises instead). Which path runs is decided for the whole
    batch, but each row only ever reads its own reference."""
    if kappa.shape[-2] == 0:
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
    if bool(spread < limit):  # False for NaN and inf (of the biases) too: those take the blocked path
        return k_hi, w_ref
    if algorithm == "fast":
        raise ValueError(
            f"algorithm='fast' was asked for, but the keys and position biases span {float(spread):.1f}, beyond the "
            f"fast path's limit of {limit:.0f} for {kappa.dtype}; pass algorithm='auto' (or 'blocked'), which is "
            "exact for any input."
        )
    if bool(torch.isfinite(spread)) and not _FALLBACK_ANNOUNCED.is_set():
        _FALLBACK_ANNOUNCED.set()
        logger.warning(
            "AFT: keys and position biases span %.1f (limit %.0f for %s), so the operators take the slower "
            "blocked algorithm, which also keeps more memory for backward; results are exact either way. "
            "(Shown once per process.)",
            float(spread),
            limit,
            kappa.dtype,
        )
    return None


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


def fast_aft(q, kappa, v, band, causal: bool, valid, dense: bool = False, algorithm: str = "auto"):
    """The fast path when the inputs allow it (see above), else None ("fast": a ValueError). Shapes as _FastAFT."""
    refs = _fast_references(kappa.detach(), None if band is None else band.detach(), valid, dense, algorithm=algorithm)
    if refs is None:
        return None
    return _FastAFT.apply(q, kappa, v, band, valid, refs[0], refs[1], causal, dense)


def fast_full_factorized(q, kappa, v, u, w_v, causal: bool, valid, algorithm: str = "auto"):
    """AFT-full from the factors U, V on the fast path, or None when the factors' norms and the keys do not bound
    every exponent within its range ("fast": a ValueError)."""
    with torch.no_grad():  # |U_t . V_s| <= |U_t| |V_s|: a bound on every bias without forming w
        bound = u.norm(dim=-1).amax() * w_v.norm(dim=-1).amax()
    refs = _fast_references(kappa.detach(), None, valid, extra_spread=2 * bound, algorithm=algorithm)
    if refs is None:
        return None
    return _FastFactorizedFull.apply(q, kappa, v, u, w_v, valid, refs[0], bound, causal)
