# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The operators' fast path (one reference per channel, hand-written backward) beyond what test_ops checks on both
paths: when it is taken, what autograd keeps of it, and per-sequence biases."""

import threading

import pytest
import torch

from modeling_aft import ops, ops_fast
from tests import reference as ref
from tests.helpers import record_fast_path

F32, F64 = torch.float32, torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def taken(monkeypatch):
    """A list that records, for every operator call, whether the fast path ran."""
    return record_fast_path(monkeypatch)


def _inputs(B, T, D, seed, key_spread=4.0, dtype=F32):
    g = _gen(seed)
    q = torch.randn(B, T, D, generator=g, dtype=F64)
    k = (torch.rand(B, T, D, generator=g, dtype=F64) - 0.5) * key_spread
    v = torch.randn(B, T, D, generator=g, dtype=F64)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def _close(got, expected, tol):
    scale = expected.abs().max().item()
    err = (got.to(F64) - expected).abs().max().item()
    assert err <= tol * scale, f"max err {err:.3e} at output scale {scale:.3e}"


# --------------------------------------------------------------------------- #
# Which path runs.
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize("dtype, spread, fast", [(F32, 50.0, True), (F32, 70.0, False), (F64, 500.0, True),
                                                 (F64, 700.0, False)])
def test_range_decides_the_path_and_both_are_accurate(taken, causal, dtype, spread, fast):
    """Keys spanning less than the dtype's range take the fast path, wider ones the blocked algorithm; both agree
    with the float64 reference near the boundary."""
    B, T, D, window = 2, 40, 3, 5
    q, k, v = _inputs(B, T, D, 1, key_spread=spread, dtype=dtype)
    k[:, 0, :] = spread / 2  # the extremes are there for sure
    k[:, -1, :] = -spread / 2
    w = torch.randn(T, T, generator=_gen(2), dtype=F64).to(dtype)
    kernel = torch.randn(2, 5, generator=_gen(3), dtype=F64).to(dtype)
    tol = 1e-4 if dtype == F32 else 1e-10
    _close(ops.aft_simple(q, k, v, causal), ref.ref_simple(q, k, v, causal), tol)
    _close(ops.aft_local(q, k, v, w, window, causal), ref.ref_local(q, k, v, w, window, causal), tol)
    _close(ops.aft_full(q, k, v, w, causal), ref.ref_full(q, k, v, w, causal), tol)
    qh, vh = q[..., :2].reshape(B, T, 2, 1), v[..., :2].reshape(B, T, 2, 1)
    _close(ops.aft_conv1d(qh, k[..., :2], vh, kernel, causal), ref.ref_conv1d(qh, k[..., :2], vh, kernel, causal), tol)
    assert taken == [fast] * 4


def test_biases_count_towards_the_range(taken):
    q, k, v = _inputs(1, 20, 2, 4, key_spread=30.0)
    w = torch.zeros(20, 20)
    ops.aft_full(q, k, v, w)
    w[3, 5] = -40.0  # 30 + 40 > 60
    _close(ops.aft_full(q, k, v, w), ref.ref_full(q, k, v, w), 1e-4)
    assert taken == [True, False]


def test_non_finite_keys_do_not_decide_the_path(taken):
    """The range is that of the finite keys: a NaN (or inf) key in one sequence neither sends the whole batch to
    the blocked algorithm nor reaches the other sequence, whose reference is its own largest finite key; -inf keys
    (weight exp(-inf) = 0) give the float64 reference."""
    q, k, v = _inputs(2, 40, 2, 5)
    alone = ops.aft_simple(q[1:], k[1:], v[1:], causal=True)
    poisoned = k.clone()
    poisoned[0, 3, 1] = float("nan")
    got = ops.aft_simple(q, poisoned, v, causal=True)
    assert torch.isnan(got[0, 3:, 1]).all() and torch.equal(got[1:], alone)
    k[1, 7:30, 0] = -float("inf")
    _close(ops.aft_simple(q, k, v, causal=True), ref.ref_simple(q, k, v, causal=True), 1e-5)
    k[1, 2, 1] = 100.0  # finite keys beyond the range still decide it
    _close(ops.aft_simple(q, k, v, causal=True), ref.ref_simple(q, k, v, causal=True), 1e-5)
    assert taken == [True, True, True, False]


def test_the_algorithm_is_asked_for_by_name(taken):
    """algorithm="blocked" runs the blocked algorithm on ordinary inputs, "fast" refuses keys beyond its range
    (naming the spread, the limit and the fix) instead of falling back, and an unknown name is refused."""
    q, k, v = _inputs(1, 20, 2, 4, key_spread=4.0, dtype=F64)
    expected = ref.ref_simple(q, k, v, causal=True)
    for algorithm in ("auto", "fast", "blocked"):
        _close(ops.aft_simple(q, k, v, causal=True, algorithm=algorithm), expected, 1e-10)
    assert taken == [True, True]  # "blocked" never entered the fast path
    wide = k.clone()
    wide[0, 3, 0] = 700.0
    with pytest.raises(ValueError, match=r"span 7\d\d\.\d, beyond the fast path's limit of 600.*algorithm='auto'"):
        ops.aft_simple(q, wide, v, causal=True, algorithm="fast")
    with pytest.raises(ValueError, match=r"algorithm must be one of 'auto', 'fast', 'blocked'; got 'exact'"):
        ops.aft_local(q, k, v, torch.zeros(20, 20, dtype=F64), 3, algorithm="exact")


# --------------------------------------------------------------------------- #
# What autograd keeps.
# --------------------------------------------------------------------------- #
def _saved_bytes(fn, *inputs):
    """Bytes of the tensors autograd saves for backward while fn runs (each storage counted once)."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*inputs)
    return out, sum(seen.values())


@pytest.mark.parametrize("op", ["local", "simple", "conv1d", "full"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
def test_the_fast_path_saves_only_its_inputs(op, causal):
    """Autograd keeps q, k, v and the band (AFT-full: w and its (num, den) too) and nothing else of the fast path;
    the blocked algorithm keeps more (so the probe can see the difference)."""
    B, T, D, H = 1, 512, 32, 4
    g = _gen(6)
    q, k, v = (torch.randn(B, T, D, generator=g) for _ in range(3))
    u, w_v = torch.randn(T, 8, generator=g), torch.randn(T, 8, generator=g)
    band = ops.factorized_local_bias_blocks(u, w_v, 32, causal)
    kernel = torch.randn(H, 11 if not causal else 8, generator=g)
    w = 0.1 * torch.randn(T, T, generator=g)
    kh = k[..., :H].contiguous()

    def run(q, k, v, bias=None, algorithm="auto"):
        kw = dict(algorithm=algorithm)
        if op == "local":
            return ops.aft_local_blocked(q, k, v, bias, causal, **kw)
        if op == "simple":
            return ops.aft_simple(q, k, v, causal, **kw)
        if op == "full":
            return ops.aft_full(q, k, v, bias, causal, **kw)
        return ops.aft_conv1d(q.view(B, T, H, D // H), k, v.view(B, T, H, D // H), bias, causal, **kw)

    bias = {"local": band, "simple": None, "full": w, "conv1d": kernel}[op]
    keys = kh if op == "conv1d" else k
    inputs = [x.clone().requires_grad_(True) for x in (q, keys, v)] + ([] if bias is None else [bias.clone()])
    if bias is not None:
        inputs[3].requires_grad_(True)
    # the inputs, plus less than one more (T, D) tensor: the references, conv's (H, 1, C, nK*C) band and its indices
    allowed = sum(x.numel() for x in inputs) * 4 + B * T * D * 4 // 2
    if op == "full":
        allowed += 2 * B * T * D * 4  # num and den
    out, fast_bytes = _saved_bytes(run, *inputs)
    out.sum().backward()
    assert fast_bytes <= allowed, (fast_bytes, allowed)
    _, blocked_bytes = _saved_bytes(lambda *xs: run(*xs, algorithm="blocked"), *inputs)
    assert blocked_bytes > fast_bytes + B * T * D * 4, (blocked_bytes, fast_bytes)


# --------------------------------------------------------------------------- #
# Biases per sequence (left padding gives every sequence its own positions).
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
def test_per_sequence_biases(taken, causal):
    B, T, D, window = 3, 37, 2, 6
    q, k, v = _inputs(B, T, D, 7, dtype=F64)
    g = _gen(8)
    u, w_v = torch.randn(B, T, 4, generator=g, dtype=F64), torch.randn(B, T, 4, generator=g, dtype=F64)
    w = u @ w_v.transpose(-1, -2)  # (B, T, T)
    band = ops.factorized_local_bias_blocks(u, w_v, window, causal)  # (B, nb, C, nK*C)
    inputs = [x.clone().requires_grad_(True) for x in (q, k, v, u, w_v)]

    def local(q, k, v, u, w_v):
        return ops.aft_local_blocked(q, k, v, ops.factorized_local_bias_blocks(u, w_v, window, causal), causal)

    def full(q, k, v, u, w_v):
        return ops.aft_full(q, k, v, u @ w_v.transpose(-1, -2), causal)

    for b in range(B):
        one = slice(b, b + 1)
        _close(ops.aft_local_blocked(q, k, v, band, causal)[one], ref.ref_local(q[one], k[one], v[one], w[b], window,
                                                                                 causal), 1e-10)
        _close(ops.aft_full(q, k, v, w, causal)[one], ref.ref_full(q[one], k[one], v[one], w[b], causal), 1e-10)
    assert torch.autograd.gradcheck(local, tuple(inputs), eps=1e-6, atol=1e-6, rtol=1e-4)
    assert torch.autograd.gradcheck(full, tuple(inputs), eps=1e-6, atol=1e-6, rtol=1e-4)
    assert all(taken)


@pytest.mark.parametrize("per_sequence", [False, True], ids=["shared-w", "w-per-sequence"])
def test_full_in_several_row_blocks(taken, monkeypatch, per_sequence):
    """AFT-full's causal products run by blocks of rows (512 in use); blocks of 4 make T = 11 take three, the last
    one partial, so every slice of the block-triangular products is checked against the reference."""
    monkeypatch.setattr(ops_fast, "_DENSE_BLOCK", 4)
    B, T, D = 2, 11, 2
    q, k, v = _inputs(B, T, D, 9, dtype=F64)
    w = torch.randn(*((B,) if per_sequence else ()), T, T, generator=_gen(10), dtype=F64)
    got = ops.aft_full(q, k, v, w, causal=True)
    for b in range(B):
        _close(got[b : b + 1], ref.ref_full(q[b : b + 1], k[b : b + 1], v[b : b + 1], w[b] if per_sequence else w,
                                            True), 1e-10)
    inputs = tuple(x.clone().requires_grad_(True) for x in (q, k, v, w))
    assert torch.autograd.gradcheck(lambda *xs: ops.aft_full(*xs, causal=True), inputs, eps=1e-6, atol=1e-6,
                                    rtol=1e-4)
    assert all(taken)


def test_the_fallback_is_announced_once(taken, monkeypatch, caplog):
    monkeypatch.setattr(ops_fast, "_FALLBACK_ANNOUNCED", threading.Event())  # as in a fresh process
    q, k, v = _inputs(1, 12, 2, 11, key_spread=100.0)
    with caplog.at_level("WARNING", logger="modeling_aft.ops"):
        ops.aft_simple(q, k, v, causal=True)
        ops.aft_simple(q, k, v, causal=True)
        ops.aft_simple(q, k, v * 0, causal=True)
    notices = [r.getMessage() for r in caplog.records if "blocked algorithm" in r.getMessage()]
    assert len(notices) == 1 and "span" in notices[0], notices
    assert taken == [False, False, False]


# --------------------------------------------------------------------------- #
# AFT-full from the factors of w = U V^T, a block of rows at a time.
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize("per_sequence", [False, True], ids=["shared-factors", "factors-per-sequence"])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_full_from_factors_equals_the_reference(monkeypatch, causal, per_sequence, masked):
    monkeypatch.setattr(ops_fast, "_DENSE_BLOCK", 4)  # T = 11: three blocks of rows, the last one partial
    taken = []
    original = ops_fast._FastFactorizedFull.apply
    monkeypatch.setattr(ops_fast._FastFactorizedFull, "apply", lambda *a: taken.append(True) or original(*a))
    B, T, D, d = 2, 11, 3, 5
    q, k, v = _inputs(B, T, D, 12, dtype=F64)
    g = _gen(13)
    shape = (B, T, d) if per_sequence else (T, d)
    u, w_v = (0.5 * torch.randn(*shape, generator=g, dtype=F64) for _ in range(2))
    mask = torch.tensor([[0, 0] + [1] * 9, [1] * 10 + [0]], dtype=torch.bool) if masked else None
    got = ops.aft_full_factorized(q, k, v, u, w_v, causal, mask)
    w = u @ w_v.transpose(-1, -2)
    for b in range(B):
        one = slice(b, b + 1)
        expected = ref.ref_full(q[one], k[one], v[one], w[b] if per_sequence else w, causal,
                                None if mask is None else mask[one])
        rows = slice(None) if mask is None else mask[b]
        _close(got[one][:, rows], expected[:, rows], 1e-10)
    inputs = tuple(x.clone().requires_grad_(True) for x in (q, k, v, u, w_v))
    assert torch.autograd.gradcheck(lambda *xs: ops.aft_full_factorized(*xs, causal, mask), inputs, eps=1e-6,
                                    atol=1e-6, rtol=1e-4)
    assert taken


def test_full_from_factors_falls_back_when_the_bound_is_too_wide(taken):
    """Factors whose norms bound |w| above the range (here w = 0, the factors orthogonal) form w and take aft_full,
    whose own check then sees w exactly."""
    B, T, D = 1, 16, 2
    q, k, v = _inputs(B, T, D, 14)
    u = torch.zeros(T, 2)
    w_v = torch.zeros(T, 2)
    u[:, 0] = 8.0
    w_v[:, 1] = 8.0  # |U_t| |V_s| = 64, yet U V^T = 0
    got = ops.aft_full_factorized(q, k, v, u, w_v, causal=True)
    _close(got, ref.ref_full(q, k, v, torch.zeros(T, T), True), 1e-5)
    assert taken == [True]  # the dense fast path, after forming w


def test_full_from_factors_keeps_nothing_quadratic():
    B, T, D, d = 1, 512, 32, 16
    g = _gen(15)
    inputs = [torch.randn(B, T, D, generator=g).requires_grad_(True) for _ in range(3)]
    inputs += [(0.1 * torch.randn(T, d, generator=g)).requires_grad_(True) for _ in range(2)]
    out, saved = _saved_bytes(lambda *xs: ops.aft_full_factorized(*xs, causal=True), *inputs)
    out.sum().backward()
    inputs_bytes = sum(x.numel() for x in inputs) * 4
    assert saved <= inputs_bytes + 2 * B * T * D * 4 + 4096, (saved, inputs_bytes)  # + its (num, den)
    _, dense_saved = _saved_bytes(lambda q, k, v, u, w_v: ops.aft_full(q, k, v, u @ w_v.T, causal=True), *inputs)
    assert dense_saved >= saved + T * T * 4  # the probe sees a (T, T) tensor where one is kept


def test_full_from_factors_rejects_mismatched_factors():
    q, k, v = _inputs(1, 8, 2, 16)
    with pytest.raises(ValueError, match=r"u and w_v must both have shape \(T, d'\)"):
        ops.aft_full_factorized(q, k, v, torch.zeros(8, 3), torch.zeros(7, 3))
