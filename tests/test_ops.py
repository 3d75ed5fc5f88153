# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Tests of the AFT operators in ``modeling_aft.ops``.

Every operator is checked against the slow float64 reference in
``tests/reference.py``, plus the paper's identities between the variants,
causality, padding, gradients, numerical stability, bf16 and input checking.
"""

import math
import random
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modeling_aft import ops
from tests import reference as ref
from tests.helpers import record_fast_path

F32 = torch.float32
F64 = torch.float64
BF16 = torch.bfloat16

LENGTHS = [1, 2, 7, 33, 70]
PADDING_SIDES = [None, "left", "right"]

TOL_F32 = 1e-5  # float32 inputs vs the float64 reference, relative to output scale
TOL_F64 = 1e-10  # float64 vs float64 (same maths, different summation order)
TOL_EXTREME = 1e-4  # float32 with keys in [-80, 80] and large biases
TOL_BF16 = 2e-2


# --------------------------------------------------------------------------- #
# Helpers.
# --------------------------------------------------------------------------- #
def generator(seed):
    return torch.Generator().manual_seed(seed)


def randn(shape, g, dtype=F32, scale=1.0):
    return (torch.randn(shape, generator=g, dtype=F64) * scale).to(dtype)


def uniform(shape, low, high, g, dtype=F32):
    return (low + (high - low) * torch.rand(shape, generator=g, dtype=F64)).to(dtype)


def padding_mask(B, T, side, g):
    """A (B, T) bool key padding mask (True = real token), or None when side is None.

    Every row keeps at least one real token; the padding length differs per row
    and row 0 is always padded when T > 1.
    """
    if side is None:
        return None
    mask = torch.ones(B, T, dtype=torch.bool)
    for b in range(B):
        n_pad = int(torch.randint(0, T, (1,), generator=g))
        if b == 0 and T > 1:
            n_pad = max(n_pad, 1)
        if side == "left":
            mask[b, :n_pad] = False
        else:
            mask[b, T - n_pad :] = False
    return mask


def explicit_mask(lengths_pad, T, side):
    """A (B, T) bool mask from a list of padding lengths per batch row."""
    mask = torch.ones(len(lengths_pad), T, dtype=torch.bool)
    for b, n_pad in enumerate(lengths_pad):
        if side == "left":
            mask[b, :n_pad] = False
        else:
            mask[b, T - n_pad :] = False
    return mask


def assert_close(got, expected, tol, rows=None):
    """Compare against a float64 expectation, relative to the output scale.

    |got - expected| <= tol * (|expected| + max|expected|) elementwise.
    The whole of ``got`` must be finite; only the (b, t) positions selected by
    the bool matrix ``rows`` (e.g. the real tokens of a padding mask) are compared.
    """
    assert got.shape == expected.shape, f"shape {tuple(got.shape)} != {tuple(expected.shape)}"
    got = got.detach().to(F64)
    expected = expected.detach().to(F64)
    if not torch.isfinite(got).all():
        bad = ~torch.isfinite(got)
        raise AssertionError(f"{int(bad.sum())} non-finite outputs, first at {torch.nonzero(bad)[:3].tolist()}")
    if rows is not None:
        got, expected = got[rows], expected[rows]
    if expected.numel() == 0:
        return
    scale = max(expected.abs().max().item(), 1e-6)
    err = (got - expected).abs()
    excess = err - tol * (expected.abs() + scale)
    if (excess > 0).any():
        worst = int(excess.flatten().argmax())
        raise AssertionError(
            f"max abs err {err.max().item():.3e} (output scale {scale:.3e}, tol {tol:.0e}); "
            f"{int((excess > 0).sum())} of {excess.numel()} elements off; worst flat index {worst}: "
            f"expected {expected.flatten()[worst].item():.8g}, got {got.flatten()[worst].item():.8g}"
        )


@dataclass(frozen=True)
class Case:
    op: str
    B: int
    T: int
    D: int = 1  # channels (full / local / simple) or per-head channels Dh (conv)
    H: int = 1
    window: int = 0
    S: int = 0
    grid: tuple = ()
    causal: bool = False
    pad: str = None
    seed: int = 0

    def __str__(self):
        parts = [self.op, f"B{self.B}", f"T{self.T}"]
        if self.op in ("conv1d", "conv2d"):
            parts += [f"H{self.H}", f"Dh{self.D}", f"S{self.S}"]
        else:
            parts.append(f"D{self.D}")
        if self.op == "local":
            parts.append(f"win{self.window}")
        if self.grid:
            parts.append(f"grid{self.grid[0]}x{self.grid[1]}")
        parts.append("causal" if self.causal else "bidir")
        parts.append(f"pad-{self.pad}" if self.pad else "nopad")
        return "-".join(parts)


def _sweep_cases():
    rng = random.Random("aft-ops-sweep")  # str seeds are deterministic (sha512)
    cases = []
    for T in LENGTHS:
        for causal in (False, True):
            for pad in PADDING_SIDES:
                for op in ("full", "simple"):
                    cases.append(Case(op, rng.randint(1, 3), T, rng.randint(1, 6), causal=causal, pad=pad,
                                      seed=rng.randrange(2**31)))
                for window in (1, 2, 5, 32, T + rng.randint(1, 5)):
                    cases.append(Case("local", rng.randint(1, 3), T, rng.randint(1, 6), window=window,
                                      causal=causal, pad=pad, seed=rng.randrange(2**31)))
                for S in ((1, 2, 3, 5, 11) if causal else (1, 3, 5, 11)):
                    cases.append(Case("conv1d", rng.randint(1, 3), T, rng.randint(1, 4), H=rng.randint(1, 4),
                                      S=S, causal=causal, pad=pad, seed=rng.randrange(2**31)))
    for grid in ((1, 1), (1, 6), (5, 1), (3, 4), (5, 5), (6, 9)):
        for S in (1, 3, 5, 11):
            cases.append(Case("conv2d", rng.randint(1, 3), grid[0] * grid[1], rng.randint(1, 4),
                              H=rng.randint(1, 4), S=S, grid=grid, seed=rng.randrange(2**31)))
    return cases


SWEEP = _sweep_cases()


def make_inputs(case, dtype=F32, key_range=None, bias_range=None):
    """Random (q, k, v, bias, mask) for a case. bias is w, kernel, or None (simple)."""
    g = generator(case.seed)
    B, T = case.B, case.T
    if case.op in ("conv1d", "conv2d"):
        qv_shape, k_shape = (B, T, case.H, case.D), (B, T, case.H)
        bias_shape = (case.H, case.S) if case.op == "conv1d" else (case.H, case.S, case.S)
    else:
        qv_shape, k_shape = (B, T, case.D), (B, T, case.D)
        bias_shape = (T, T)
    q = randn(qv_shape, g, dtype)
    v = randn(qv_shape, g, dtype)
    k = randn(k_shape, g, dtype, 2.0) if key_range is None else uniform(k_shape, *key_range, g, dtype)
    if case.op == "simple":
        bias = None
    elif bias_range is None:
        bias = randn(bias_shape, g, dtype, 2.0)
    else:
        bias = uniform(bias_shape, *bias_range, g, dtype)
    mask = padding_mask(B, T, case.pad, g) if case.op != "conv2d" else None
    return q, k, v, bias, mask


def run_op(case, q, k, v, bias, mask=None, causal=None, algorithm="auto"):
    causal = case.causal if causal is None else causal
    kw = dict(algorithm=algorithm)
    if case.op == "full":
        return ops.aft_full(q, k, v, bias, causal=causal, key_padding_mask=mask, **kw)
    if case.op == "local":
        return ops.aft_local(q, k, v, bias, window=case.window, causal=causal, key_padding_mask=mask, **kw)
    if case.op == "simple":
        return ops.aft_simple(q, k, v, causal=causal, key_padding_mask=mask, **kw)
    if case.op == "conv1d":
        return ops.aft_conv1d(q, k, v, bias, causal=causal, key_padding_mask=mask, **kw)
    if case.op == "conv2d":
        assert mask is None and not causal
        return ops.aft_conv2d(q, k, v, bias, grid=case.grid, **kw)
    raise AssertionError(case.op)


def run_ref(case, q, k, v, bias, mask=None, causal=None):
    causal = case.causal if causal is None else causal
    if case.op == "full":
        return ref.ref_full(q, k, v, bias, causal, mask)
    if case.op == "local":
        return ref.ref_local(q, k, v, bias, case.window, causal, mask)
    if case.op == "simple":
        return ref.ref_simple(q, k, v, causal, mask)
    if case.op == "conv1d":
        return ref.ref_conv1d(q, k, v, bias, causal, mask)
    if case.op == "conv2d":
        return ref.ref_conv2d(q, k, v, bias, case.grid)
    raise AssertionError(case.op)


# Small fixed cases used by the focused tests below.
def small_case(op, causal=False, pad=None, B=2, T=9, seed=0):
    if op == "conv1d":
        return Case("conv1d", B, T, 3, H=2, S=3 if not causal else 4, causal=causal, pad=pad, seed=seed)
    if op == "conv2d":
        return Case("conv2d", B, 12, 3, H=2, S=3, grid=(3, 4), seed=seed)
    if op == "local":
        return Case("local", B, T, 4, window=3, causal=causal, pad=pad, seed=seed)
    return Case(op, B, T, 4, causal=causal, pad=pad, seed=seed)


MASKABLE_OPS = ["full", "local", "simple", "conv1d"]
OP_MODES = [(op, c) for op in MASKABLE_OPS for c in (False, True)] + [("conv2d", False)]
# (op, causal, padding side): aft_conv2d takes no key padding mask
OP_MODES_PADDED = [(op, c, side) for op, c in OP_MODES for side in (None, "right") if op != "conv2d" or side is None]


def op_mode_id(p):
    name = f"{p[0]}-{'causal' if p[1] else 'bidir'}"
    return name if len(p) == 2 else f"{name}-pad-{p[2]}" if p[2] else f"{name}-nopad"


@pytest.fixture(params=["fast", "blocked"])
def path(request, monkeypatch):
    """Run a test on each of the operators' two algorithms, asked for by name (algorithm=path): the fast path (one
    reference per channel, hand-written backward) that ordinary inputs take, and the blocked algorithm that inputs
    beyond its range take. algorithm="fast" refuses what it cannot compute, so a run that returns took it;
    afterwards, check that "blocked" never entered the fast path."""
    taken = record_fast_path(monkeypatch)
    yield request.param
    if request.param == "fast":
        assert all(taken), "an ordinary input fell back to the blocked algorithm"
    else:
        assert not any(taken), "the fast path ran although the blocked algorithm was asked for"


# --------------------------------------------------------------------------- #
# The reference itself.
# --------------------------------------------------------------------------- #
def _scalar_loop_full(q, k, v, w, causal, mask):
    """Eq. 2 with plain Python scalars (no max subtraction; use small inputs)."""
    B, T, D = q.shape
    out = torch.zeros(B, T, D, dtype=F64)
    for b in range(B):
        for t in range(T):
            for d in range(D):
                num = den = 0.0
                for s in range(T):
                    if (causal and s > t) or (mask is not None and not mask[b, s]):
                        continue
                    e = math.exp(float(k[b, s, d]) + float(w[t, s]))
                    num += e * float(v[b, s, d])
                    den += e
                gate = 1.0 / (1.0 + math.exp(-float(q[b, t, d])))
                out[b, t, d] = gate * num / den if den > 0 else 0.0
    return out


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("side", [None, "left"])
def test_reference_matches_scalar_loops(causal, side):
    g = generator(1)
    q, k, v, w = (randn(s, g, F64) for s in [(2, 5, 3), (2, 5, 3), (2, 5, 3), (5, 5)])
    mask = None if side is None else explicit_mask([2, 0], 5, side)
    torch.testing.assert_close(ref.ref_full(q, k, v, w, causal, mask), _scalar_loop_full(q, k, v, w, causal, mask))


def test_reference_dense_biases_by_hand():
    kernel = torch.tensor([[1.0, 2.0, 3.0]])
    causal = ref.dense_conv1d_bias(kernel, 4, causal=True)[0]
    # kernel[j] is the bias of key t - j
    expected = torch.tensor([[1, 0, 0, 0], [2, 1, 0, 0], [3, 2, 1, 0], [0, 3, 2, 1]], dtype=F64)
    torch.testing.assert_close(causal, expected)
    bidir = ref.dense_conv1d_bias(kernel, 4, causal=False)[0]
    # kernel[j] is the bias of key t + j - 1
    expected = torch.tensor([[2, 3, 0, 0], [1, 2, 3, 0], [0, 1, 2, 3], [0, 0, 1, 2]], dtype=F64)
    torch.testing.assert_close(bidir, expected)

    kernel2d = torch.arange(1.0, 10.0).reshape(1, 3, 3)  # kernel[i, j] = 3 i + j + 1
    dense = ref.dense_conv2d_bias(kernel2d, (2, 3))[0]  # tokens (r, c) -> 3 r + c
    # query (0, 0): key (0, 0) offset (0, 0) -> 5, key (0, 1) -> (0, +1) -> 6, key (1, 1) -> (+1, +1) -> 9,
    # key (0, 2) is 2 columns away -> 0.
    assert dense[0].tolist() == [5, 6, 0, 8, 9, 0]
    # query (1, 2) = token 5: key (0, 1) -> (-1, -1) -> 1, key (1, 1) -> (0, -1) -> 4, key (0, 0) -> 0.
    assert dense[5].tolist() == [0, 1, 2, 0, 4, 5]
    local = ref.local_bias(torch.full((4, 4), 7.0), 2)
    assert local.tolist() == [[7, 7, 0, 0], [7, 7, 7, 0], [0, 7, 7, 7], [0, 0, 7, 7]]


def test_reference_identities():
    g = generator(2)
    q, k, v = (randn((2, 6, 3), g, F64) for _ in range(3))
    w = randn((6, 6), g, F64)
    for causal in (False, True):
        simple = ref.ref_simple(q, k, v, causal)
        torch.testing.assert_close(ref.ref_local(q, k, v, torch.zeros(6, 6), 2, causal), simple)
        torch.testing.assert_close(ref.ref_local(q, k, v, w, 6, causal), ref.ref_full(q, k, v, w, causal))
    # the reference stays exact with keys far outside exp's float64 range
    big = ref.ref_simple(q, k + 1000.0, v, causal=True)
    torch.testing.assert_close(big, ref.ref_simple(q, k, v, causal=True))


# --------------------------------------------------------------------------- #
# Every operator against the reference: a seeded sweep.
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("case", SWEEP, ids=str)
def test_matches_reference(case, path):
    q, k, v, bias, mask = make_inputs(case)
    got = run_op(case, q, k, v, bias, mask, algorithm=path)
    assert got.dtype == F32
    expected = run_ref(case, q, k, v, bias, mask)
    assert_close(got, expected, TOL_F32, rows=mask)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    B=st.integers(1, 3),
    T=st.integers(1, 40),
    D=st.integers(1, 5),
    window=st.integers(1, 45),
    causal=st.booleans(),
    pad=st.sampled_from(PADDING_SIDES),
    seed=st.integers(0, 2**31 - 1),
)
def test_local_matches_reference_hypothesis(B, T, D, window, causal, pad, seed):
    case = Case("local", B, T, D, window=window, causal=causal, pad=pad, seed=seed)
    q, k, v, w, mask = make_inputs(case)
    assert_close(run_op(case, q, k, v, w, mask), run_ref(case, q, k, v, w, mask), TOL_F32, rows=mask)


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(
    B=st.integers(1, 2),
    T=st.integers(1, 30),
    H=st.integers(1, 3),
    Dh=st.integers(1, 3),
    half=st.integers(0, 8),
    causal=st.booleans(),
    pad=st.sampled_from(PADDING_SIDES),
    seed=st.integers(0, 2**31 - 1),
)
def test_conv1d_matches_reference_hypothesis(B, T, H, Dh, half, causal, pad, seed):
    S = half + 1 if causal else 2 * half + 1
    case = Case("conv1d", B, T, Dh, H=H, S=S, causal=causal, pad=pad, seed=seed)
    q, k, v, kernel, mask = make_inputs(case)
    assert_close(run_op(case, q, k, v, kernel, mask), run_ref(case, q, k, v, kernel, mask), TOL_F32, rows=mask)


def test_mask_dtypes_are_equivalent():
    """A 0/1 integer or float mask means the same as a bool mask."""
    case = small_case("full", causal=True, pad="right", seed=3)
    q, k, v, w, mask = make_inputs(case)
    expected = run_op(case, q, k, v, w, mask)
    for dtype in (torch.int64, torch.float32):
        torch.testing.assert_close(run_op(case, q, k, v, w, mask.to(dtype)), expected)


@pytest.mark.parametrize("op", ["full", "conv1d"])
def test_non_contiguous_inputs(op):
    case = small_case(op, causal=True, pad="left", seed=4)
    q, k, v, bias, mask = make_inputs(case)
    expected = run_op(case, q, k, v, bias, mask)
    # same values, laid out time-last / transposed in memory
    nc = [x.movedim(1, -1).contiguous().movedim(-1, 1) for x in (q, k, v)]
    bias_nc = bias.t().contiguous().t() if bias.dim() == 2 else bias
    assert not nc[0].is_contiguous()
    torch.testing.assert_close(run_op(case, *nc, bias_nc, mask), expected)


# --------------------------------------------------------------------------- #
# Padding: real tokens see exactly what the unpadded sequence would give.
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("op", MASKABLE_OPS)
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_equals_unpadded_run(op, causal, side):
    case = small_case(op, causal=causal, B=3, T=10, seed=5)
    q, k, v, bias, _ = make_inputs(case, dtype=F64)
    mask = explicit_mask([3, 0, 7], 10, side)
    padded = run_op(case, q, k, v, bias, mask)
    assert torch.isfinite(padded).all()
    for b in range(3):
        idx = torch.nonzero(mask[b]).squeeze(1)
        sliced_bias = bias[idx][:, idx] if op in ("full", "local") else bias
        alone = run_op(case, q[b : b + 1, idx], k[b : b + 1, idx], v[b : b + 1, idx], sliced_bias)
        assert_close(padded[b : b + 1, idx], alone, TOL_F64)


@pytest.mark.parametrize("op", MASKABLE_OPS)
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
def test_padded_keys_contribute_nothing(op, causal):
    """Changing q/k/v (and w) at padded positions changes no real output."""
    case = small_case(op, causal=causal, seed=6)
    q, k, v, bias, _ = make_inputs(case, dtype=F64)
    mask = explicit_mask([2, 4], case.T, "left") & explicit_mask([1, 0], case.T, "right")
    out = run_op(case, q, k, v, bias, mask)
    pad = ~mask
    g = generator(7)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    k2[pad] = 50.0 + randn(k2[pad].shape, g, F64)
    v2[pad] = 1e3 * randn(v2[pad].shape, g, F64)
    q2[pad] = randn(q2[pad].shape, g, F64)
    bias2 = bias
    if op in ("full", "local"):
        bias2 = bias.clone()
        bias2[:, :2] += 30.0  # keys 0 and 1 are padding in both batch rows
    out2 = run_op(case, q2, k2, v2, bias2, mask)
    assert_close(out2, out, TOL_F64, rows=mask)


@pytest.mark.parametrize("op", MASKABLE_OPS)
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
def test_non_finite_padding_does_not_leak(op, causal):
    """Padded positions holding NaN or inf (uninitialised buffers, say) leave the real outputs untouched."""
    case = small_case(op, causal=causal, seed=9)
    q, k, v, bias, _ = make_inputs(case, dtype=F64)
    mask = explicit_mask([2, 0], case.T, "left") & explicit_mask([0, 3], case.T, "right")
    out = run_op(case, q, k, v, bias, mask)
    pad = ~mask
    k2, v2 = k.clone(), v.clone()
    k2[pad] = float("nan")
    v2[pad] = float("inf")
    out2 = run_op(case, q, k2, v2, bias, mask)
    assert_close(out2, out, TOL_F64, rows=mask)


@pytest.mark.parametrize("op", MASKABLE_OPS)
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
def test_rows_without_keys_are_finite(op, causal):
    """Left padding under causal masking, and a fully padded sequence."""
    case = small_case(op, causal=causal, seed=8)
    q, k, v, bias, _ = make_inputs(case)
    mask = explicit_mask([4, case.T], case.T, "left")  # batch row 1 is all padding
    for tensor in (q, k, v) + ((bias,) if bias is not None else ()):
        tensor.requires_grad_(True)
    out = run_op(case, q, k, v, bias, mask)
    assert torch.isfinite(out).all()
    # gradients stay finite both through the real outputs and through all outputs
    (out[mask].sum() + out.sum()).backward()
    for tensor in (q, k, v) + ((bias,) if bias is not None else ()):
        assert torch.isfinite(tensor.grad).all()


@pytest.mark.parametrize("op", MASKABLE_OPS)
def test_rows_without_keys_are_zero(op):
    """The implementation's documented choice: 0 where a query sees no real key."""
    case = small_case(op, causal=True, seed=9)
    q, k, v, bias, _ = make_inputs(case)
    mask = explicit_mask([4, case.T], case.T, "left")
    out = run_op(case, q, k, v, bias, mask)
    assert torch.all(out[0, :4] == 0)
    assert torch.all(out[1] == 0)


# --------------------------------------------------------------------------- #
# The paper's identities between the variants.
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize("window", [1, 3, 20])
@pytest.mark.parametrize("side", [None, "right"])
def test_local_with_zero_bias_is_simple(causal, window, side):
    case = Case("local", 2, 17, 5, window=window, causal=causal, pad=side, seed=10)
    q, k, v, _, mask = make_inputs(case)
    got = ops.aft_local(q, k, v, torch.zeros(17, 17), window=window, causal=causal, key_padding_mask=mask)
    simple = ops.aft_simple(q, k, v, causal=causal, key_padding_mask=mask)
    assert_close(got, simple.to(F64), TOL_F32, rows=mask)


@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize("extra", [0, 1, 50])
@pytest.mark.parametrize("side", [None, "left"])
def test_local_with_window_at_least_T_is_full(causal, extra, side):
    T = 13
    case = Case("local", 2, T, 3, window=T + extra, causal=causal, pad=side, seed=11)
    q, k, v, w, mask = make_inputs(case)
    full = ops.aft_full(q, k, v, w, causal=causal, key_padding_mask=mask)
    assert_close(run_op(case, q, k, v, w, mask), full.to(F64), TOL_F32, rows=mask)


@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
def test_full_with_row_constant_bias_is_simple(causal):
    """A bias that only depends on the query cancels between numerator and denominator."""
    case = Case("full", 2, 11, 4, causal=causal, seed=12)
    q, k, v, _, _ = make_inputs(case)
    w = randn((11, 1), generator(13), F32, 3.0).expand(11, 11).contiguous()
    full = ops.aft_full(q, k, v, w, causal=causal)
    assert_close(full, ops.aft_simple(q, k, v, causal=causal).to(F64), TOL_F32)


def _heads_to_channels(q, k, v):
    B, T, H, Dh = q.shape
    k_rep = k[..., None].expand(B, T, H, Dh)
    return q.reshape(B, T, H * Dh), k_rep.reshape(B, T, H * Dh), v.reshape(B, T, H * Dh)


@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize("S", [1, 3, 7])
@pytest.mark.parametrize("side", [None, "left", "right"])
def test_conv1d_with_zero_kernel_is_simple(causal, S, side):
    case = Case("conv1d", 2, 15, 3, H=3, S=S, causal=causal, pad=side, seed=14)
    q, k, v, _, mask = make_inputs(case)
    got = ops.aft_conv1d(q, k, v, torch.zeros(3, S), causal=causal, key_padding_mask=mask)
    simple = ops.aft_simple(*_heads_to_channels(q, k, v), causal=causal, key_padding_mask=mask)
    assert_close(got, simple.reshape(got.shape).to(F64), TOL_F32, rows=mask)


@pytest.mark.parametrize("grid", [(1, 1), (3, 4), (5, 5)])
@pytest.mark.parametrize("S", [1, 3, 5])
def test_conv2d_with_zero_kernel_is_simple(grid, S):
    N = grid[0] * grid[1]
    case = Case("conv2d", 2, N, 2, H=3, S=S, grid=grid, seed=15)
    q, k, v, _, _ = make_inputs(case)
    got = ops.aft_conv2d(q, k, v, torch.zeros(3, S, S), grid=grid)
    simple = ops.aft_simple(*_heads_to_channels(q, k, v), causal=False)
    assert_close(got, simple.reshape(got.shape).to(F64), TOL_F32)


def test_conv1d_is_full_with_dense_bias_per_head():
    """AFT-conv is AFT-full per head with the dense relative bias matrix."""
    for causal in (False, True):
        case = Case("conv1d", 2, 12, 3, H=2, S=5, causal=causal, seed=16)
        q, k, v, kernel, _ = make_inputs(case, dtype=F64)
        got = ops.aft_conv1d(q, k, v, kernel, causal=causal)
        dense = ref.dense_conv1d_bias(kernel, 12, causal)
        for h in range(2):
            k_h = k[:, :, h, None].expand(2, 12, 3)
            full = ops.aft_full(q[:, :, h], k_h, v[:, :, h], dense[h], causal=causal)
            assert_close(got[:, :, h], full, TOL_F64)


# --------------------------------------------------------------------------- #
# Causality.
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("op", MASKABLE_OPS)
@pytest.mark.parametrize("side", [None, "left", "right"])
def test_causal_outputs_ignore_the_future(op, side):
    T = 12
    case = small_case(op, causal=True, T=T, pad=side, seed=17)
    q, k, v, bias, mask = make_inputs(case, dtype=F64)
    base = run_op(case, q, k, v, bias, mask)
    g = generator(18)
    for t in (0, 4, 10):
        for name in ("q", "k", "v"):
            q2, k2, v2 = q.clone(), k.clone(), v.clone()
            x = {"q": q2, "k": k2, "v": v2}[name]
            # large changes: keys pushed far up so that a global max would move
            x[:, t + 1 :] += 40.0 + 5 * randn(x[:, t + 1 :].shape, g, F64)
            out = run_op(case, q2, k2, v2, bias, mask)
            assert_close(out[:, : t + 1], base[:, : t + 1], TOL_F64)
            if side is None:
                assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :]), "the change should be visible"
    if op in ("full", "local"):
        # the bias of keys in the future of each query must not matter either
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        bias2 = bias.masked_fill(future, 25.0)
        assert_close(run_op(case, q, k, v, bias2, mask), base, TOL_F64)


@pytest.mark.parametrize("op", MASKABLE_OPS)
def test_causal_flag_matters(op):
    """Bidirectional outputs do depend on later tokens (the flag is not ignored)."""
    case = small_case(op, causal=False, seed=19)
    q, k, v, bias, _ = make_inputs(case, dtype=F64)
    bidir = run_op(case, q, k, v, bias)
    causal = run_op(case, q, k, v, bias, causal=True)
    k2 = k.clone()
    k2[:, 1] += 5.0
    assert not torch.allclose(run_op(case, q, k2, v, bias)[:, 0], bidir[:, 0])
    assert not torch.allclose(causal[:, 0], bidir[:, 0])


# --------------------------------------------------------------------------- #
# Gradients.
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("op_mode", OP_MODES_PADDED, ids=op_mode_id)
def test_gradcheck(op_mode, path):
    op, causal, side = op_mode
    masked = side is not None
    if op == "conv2d":
        case = Case("conv2d", 2, 6, 2, H=2, S=3, grid=(2, 3), seed=20)
    elif op == "conv1d":
        case = Case("conv1d", 2, 5, 2, H=2, S=3, causal=causal, seed=20)
    elif op == "local":
        case = Case("local", 2, 5, 2, window=2, causal=causal, seed=20)
    else:
        case = Case(op, 2, 5, 2, causal=causal, seed=20)
    q, k, v, bias, _ = make_inputs(case, dtype=F64)
    # row 0: two left pads (so under causal masking its first rows see no key); row 1: one right pad
    # (the "right" parameter only means "with a mask" here)
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]], dtype=torch.bool) if masked else None
    inputs = [q, k, v] + ([bias] if bias is not None else [])
    for x in inputs:
        x.requires_grad_(True)

    def fn(*args):
        return run_op(case, *args[:3], args[3] if len(args) > 3 else None, mask, algorithm=path)

    out = fn(*inputs)
    assert out.dtype == F64
    # aft_conv2d's float64 grouped convolution takes the slow CPU path (~0.1 s a call), so it is checked with
    # gradcheck's fast mode (random projections of the Jacobian); its full gradients are compared to the
    # reference in test_gradients_match_reference.
    fast = op == "conv2d"
    assert torch.autograd.gradcheck(fn, tuple(inputs), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=fast)


@pytest.mark.parametrize("op_mode", OP_MODES, ids=op_mode_id)
def test_gradients_match_reference(op_mode, path):
    """Analytic gradients equal those of the reference (float32 vs float64)."""
    op, causal = op_mode
    case = small_case(op, causal=causal, pad="left" if op != "conv2d" else None, T=11, seed=21)
    q, k, v, bias, mask = make_inputs(case)
    inputs = [q, k, v] + ([bias] if bias is not None else [])
    grad_out = randn((case.B, case.T) + tuple(q.shape[2:]), generator(22))
    rows = mask if mask is not None else torch.ones(case.B, case.T, dtype=torch.bool)
    grad_out = grad_out * rows.reshape(rows.shape + (1,) * (grad_out.dim() - 2))  # only real rows matter

    def grads(fn, xs):
        xs = [x.detach().clone().requires_grad_(True) for x in xs]
        out = fn(*xs)
        torch.autograd.backward(out, grad_out.to(out.dtype))
        return [x.grad for x in xs]

    got = grads(lambda *xs: run_op(case, *xs[:3], xs[3] if len(xs) > 3 else None, mask, algorithm=path), inputs)
    expected = grads(lambda *xs: run_ref(case, *xs[:3], xs[3] if len(xs) > 3 else None, mask),
                     [x.to(F64) for x in inputs])
    for name, g_got, g_exp in zip("qkvb", got, expected):
        assert g_got.dtype == F32, name
        g_got, g_exp = g_got.to(F64), g_exp
        err = (g_got - g_exp).abs().max().item()
        assert err <= 1e-4 * max(g_exp.abs().max().item(), 1e-3), f"grad {name}: max err {err:.3e}"


# --------------------------------------------------------------------------- #
# Numerical stability.
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("op_mode", OP_MODES, ids=op_mode_id)
@pytest.mark.parametrize("T", [33, 70])
def test_extreme_keys_and_biases(op_mode, T):
    op, causal = op_mode
    if op == "conv2d":
        grid = (5, T // 5)
        case = Case("conv2d", 2, grid[0] * grid[1], 3, H=2, S=5, grid=grid, seed=23 + T)
    elif op == "conv1d":
        case = Case("conv1d", 2, T, 3, H=2, S=5, causal=causal, seed=23 + T)
    elif op == "local":
        case = Case("local", 2, T, 4, window=6, causal=causal, seed=23 + T)
    else:
        case = Case(op, 2, T, 4, causal=causal, seed=23 + T)
    q, k, v, bias, _ = make_inputs(case, key_range=(-80.0, 80.0), bias_range=(-10.0, 10.0))
    assert_close(run_op(case, q, k, v, bias), run_ref(case, q, k, v, bias), TOL_EXTREME)


@pytest.mark.parametrize("op", MASKABLE_OPS)
@pytest.mark.parametrize("side", [None, "right"])
def test_adversarial_causal_underflow(op, side):
    """Early keys at -80, later keys at +80: a max over the whole sequence
    (instead of over the keys each row can see) underflows the early rows."""
    case = small_case(op, causal=True, T=16, pad=side, seed=24)
    q, k, v, bias, mask = make_inputs(case, bias_range=(-10.0, 10.0))
    k = torch.full_like(k, -80.0)
    k[:, 8:] = 80.0
    expected = run_ref(case, q, k, v, bias, mask)
    assert_close(run_op(case, q, k, v, bias, mask), expected, TOL_EXTREME, rows=mask)
    # and the other way round: a huge key first, tiny keys later
    k2 = torch.full_like(k, -80.0)
    k2[:, 0] = 80.0
    assert_close(run_op(case, q, k2, v, bias, mask), run_ref(case, q, k2, v, bias, mask), TOL_EXTREME, rows=mask)


@pytest.mark.parametrize("op_mode", OP_MODES, ids=op_mode_id)
def test_adversarial_channels(op_mode):
    """One channel (head) has all keys near -80, another near +80: the maximum
    must be taken per channel, not over all channels at once."""
    op, causal = op_mode
    case = small_case(op, causal=causal, T=10, seed=25)
    q, k, v, bias, _ = make_inputs(case, bias_range=(-10.0, 10.0))
    g = generator(26)
    k = uniform(k.shape, -1.0, 1.0, g)
    k[..., 0] -= 80.0
    k[..., 1] += 80.0
    assert_close(run_op(case, q, k, v, bias), run_ref(case, q, k, v, bias), TOL_EXTREME)


BIASED_OP_MODES = [p for p in OP_MODES if p[0] != "simple"]


@pytest.mark.parametrize("op_mode", BIASED_OP_MODES, ids=op_mode_id)
@pytest.mark.parametrize("value", [-10.0, -20.0, -40.0])
@pytest.mark.parametrize("keys", ["flat", "one-huge"])
def test_strongly_negative_biases(op_mode, value, keys):
    """Every bias (inside the window / kernel) equal to a large negative value.

    The weights of all biased keys are tiny next to 1, so an implementation that
    forms them as a difference (e.g. sum over all keys + sum of (exp(w) - 1) over
    the kernel) cancels catastrophically.
    """
    op, causal = op_mode
    if op == "conv2d":
        case = Case("conv2d", 2, 25, 3, H=2, S=5, grid=(5, 5), seed=31)
    elif op == "conv1d":
        case = Case("conv1d", 2, 16, 3, H=2, S=9, causal=causal, seed=31)
    elif op == "local":
        case = Case("local", 2, 16, 3, window=7, causal=causal, seed=31)
    else:
        case = Case(op, 2, 16, 3, causal=causal, seed=31)
    q, k, v, bias, _ = make_inputs(case)
    k = uniform(k.shape, -1.0, 1.0, generator(32))
    if keys == "one-huge":
        k[:, case.T // 2] = 80.0
    bias = torch.full_like(bias, value)
    assert_close(run_op(case, q, k, v, bias), run_ref(case, q, k, v, bias), TOL_EXTREME)


@pytest.mark.parametrize("op", MASKABLE_OPS)
@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
def test_huge_padded_keys(op, causal):
    """Padded keys at +80 and real keys near -80: the padding must be masked
    before the maximum is taken."""
    case = small_case(op, causal=causal, T=12, seed=27)
    q, k, v, bias, _ = make_inputs(case, bias_range=(-10.0, 10.0))
    mask = explicit_mask([3, 5], 12, "right")
    k = uniform(k.shape, -81.0, -79.0, generator(28))
    k[~mask] = 80.0
    expected = run_ref(case, q, k, v, bias, mask)
    assert_close(run_op(case, q, k, v, bias, mask), expected, TOL_EXTREME, rows=mask)


# --------------------------------------------------------------------------- #
# Non-finite keys: each sequence keeps its own references.
# --------------------------------------------------------------------------- #
# Left padding too: under causal masking its rows see only padding first, then real keys.
OP_MODES_ANY_PADDING = [(op, c, side) for op, c in OP_MODES for side in (None, "left", "right")
                        if op != "conv2d" or side is None]


def _poison_case(op, causal, side):
    """Three sequences of 40 tokens (conv2d: a 5 x 8 grid), float64; sequences 0 and 2 padded on `side`."""
    if op == "conv2d":
        case = Case("conv2d", 3, 40, 3, H=2, S=3, grid=(5, 8), seed=41)
    else:
        case = small_case(op, causal=causal, pad=side, B=3, T=40, seed=41)
    q, k, v, bias, _ = make_inputs(case, dtype=F64)
    mask = None if side is None else explicit_mask([3, 0, 5], case.T, side)
    return case, q, k, v, bias, mask


@pytest.mark.parametrize("op_mode", OP_MODES_ANY_PADDING, ids=op_mode_id)
@pytest.mark.parametrize("poison", ["nan", "+inf", "-inf"])
def test_a_non_finite_key_stays_in_its_sequence(op_mode, poison, path):
    """A NaN or inf key in sequence 0 leaves sequences 1 and 2 as they are without sequence 0: every maximum or
    minimum that picks a reference (the padding floor included) is per sequence and channel. Sequence 0 itself may
    be NaN for NaN and +inf (inf / inf in Eq. 2, NaN in the reference too); -inf is checked further below."""
    op, causal, side = op_mode
    case, q, k, v, bias, mask = _poison_case(op, causal, side)
    k[0, 20] = float(poison)
    got = run_op(case, q, k, v, bias, mask, algorithm=path)
    alone = run_op(case, q[1:], k[1:], v[1:], bias, None if mask is None else mask[1:], algorithm=path)
    assert_close(got[1:], alone, TOL_F64)


@pytest.mark.parametrize("op_mode", OP_MODES_ANY_PADDING, ids=op_mode_id)
def test_minus_infinite_keys_weigh_nothing(op_mode, path):
    """exp(-inf) = 0: a row that also sees a finite key gets the float64 reference's finite value, and so do the
    gradients, on both paths. Sequence 0 has a whole 16-key block of -inf (a block maximum of -inf) and a lone
    -inf key, sequence 1 one -inf key; each sequence's first keys stay finite, so every row sees a finite key."""
    op, causal, side = op_mode
    case, q, k, v, bias, mask = _poison_case(op, causal, side)
    k[0, 16:32] = -math.inf
    k[0, 9] = -math.inf
    k[1, 30] = -math.inf
    inputs = [x.clone().requires_grad_(True) for x in (q, k, v) + ((bias,) if bias is not None else ())]
    weights = randn(q.shape, generator(42), F64)

    def value_and_grads(fn, xs):
        out = fn(*xs[:3], xs[3] if len(xs) > 3 else None, mask)
        (out * weights).sum().backward()
        grads = [x.grad.clone() for x in xs]
        for x in xs:
            x.grad = None
        return out, grads

    got, got_grads = value_and_grads(lambda *a: run_op(case, *a, algorithm=path), inputs)
    expected, expected_grads = value_and_grads(lambda *a: run_ref(case, *a), inputs)
    assert_close(got, expected, TOL_F64, rows=mask)
    for name, g_got, g_exp in zip("qkvb", got_grads, expected_grads):
        assert torch.isfinite(g_exp).all(), name  # the reference is finite: the test compares numbers
        assert_close(g_got, g_exp, 1e-8)


def test_minus_infinite_keys_in_full_from_factors():
    """aft_full_factorized (the models' AFT-full) too: a -inf key weighs 0, a NaN stays in its sequence."""
    g = generator(43)
    B, T, D, d = 3, 40, 4, 5
    q, k, v = (randn((B, T, D), g, F64) for _ in range(3))
    u, w_v = (0.3 * randn((T, d), g, F64) for _ in range(2))
    k[0, 16:32] = -math.inf
    k[1, 5] = -math.inf
    for causal in (False, True):
        expected = ref.ref_full(q, k, v, u @ w_v.T, causal)
        assert_close(ops.aft_full_factorized(q, k, v, u, w_v, causal), expected, TOL_F64)
        poisoned = k.clone()
        poisoned[0, 3] = math.nan
        got = ops.aft_full_factorized(q, poisoned, v, u, w_v, causal)
        assert_close(got[1:], expected[1:], TOL_F64)


# --------------------------------------------------------------------------- #
# Empty inputs: B = 0 or T = 0.
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("op_mode", OP_MODES_PADDED, ids=op_mode_id)
@pytest.mark.parametrize("B, T", [(2, 0), (0, 9), (0, 0)])
def test_empty_inputs_give_empty_outputs(op_mode, B, T, path):
    """No sequence, or sequences without a token: an empty Y of the right shape and dtype, and backward gives every
    input a zero gradient of its shape (no reduction over an empty axis fails)."""
    op, causal, side = op_mode
    if op == "conv2d":
        case = Case("conv2d", B, T, 3, H=2, S=3, grid=(3, 3) if T else (0, 4), seed=44)
    else:
        case = small_case(op, causal=causal, B=B, T=T, seed=44)
    q, k, v, bias, _ = make_inputs(case)
    mask = None if side is None else torch.ones(B, T, dtype=torch.bool)
    inputs = [x.requires_grad_(True) for x in (q, k, v) + ((bias,) if bias is not None else ())]
    out = run_op(case, *inputs[:3], bias, mask, algorithm=path)
    assert out.shape == q.shape and out.dtype == q.dtype
    out.sum().backward()
    for x in inputs:
        assert x.grad is not None and x.grad.shape == x.shape and not x.grad.any()


@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize("B, T", [(2, 0), (0, 9)])
def test_empty_inputs_of_the_models_forms(causal, B, T):
    """The forms the models call: AFT-full from its factors and AFT-local from its band (built for T = 0 too)."""
    q = torch.randn(B, T, 4)
    u, w_v = torch.randn(T, 2), torch.randn(T, 2)
    assert ops.aft_full_factorized(q, q, q, u, w_v, causal).shape == (B, T, 4)
    band = ops.factorized_local_bias_blocks(u, w_v, 3, causal)
    assert ops.aft_local_blocked(q, q, q, band, causal).shape == (B, T, 4)


# --------------------------------------------------------------------------- #
# bfloat16.
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("op_mode", OP_MODES_PADDED, ids=op_mode_id)
def test_bf16_inputs(op_mode):
    op, causal, side = op_mode
    case = small_case(op, causal=causal, T=20, pad=side, seed=29)
    q, k, v, bias, mask = make_inputs(case, dtype=BF16)
    got = run_op(case, q, k, v, bias, mask)
    assert got.dtype == BF16
    assert_close(got, run_ref(case, q, k, v, bias, mask), TOL_BF16, rows=mask)


@pytest.mark.parametrize("op_mode", OP_MODES_PADDED, ids=op_mode_id)
def test_bf16_autocast(op_mode):
    op, causal, side = op_mode
    case = small_case(op, causal=causal, T=20, pad=side, seed=30)
    q, k, v, bias, mask = make_inputs(case)
    with torch.autocast("cpu", dtype=BF16):
        got = run_op(case, q, k, v, bias, mask)
    assert got.dtype in (F32, BF16)
    assert_close(got, run_ref(case, q, k, v, bias, mask), TOL_BF16, rows=mask)


# --------------------------------------------------------------------------- #
# Input checking.
# --------------------------------------------------------------------------- #
# Standard valid shapes: B=3, T=5, D=6 (full family); H=2, Dh=6 (conv); conv2d N=12 on a (3, 4) grid.
def _x(*shape, dtype=F32):
    return torch.randn(*shape).to(dtype)


QKV = lambda: (_x(3, 5, 6), _x(3, 5, 6), _x(3, 5, 6))  # noqa: E731
HEADS = lambda T=5: (_x(3, T, 2, 6), _x(3, T, 2), _x(3, T, 2, 6))  # noqa: E731

BAD_INPUTS = {
    # rank
    "full-q-rank4": (lambda: ops.aft_full(_x(3, 5, 6, 1), _x(3, 5, 6), _x(3, 5, 6), _x(5, 5)),
                     ValueError, r"3,\s*5,\s*6,\s*1|\b4\b"),
    "simple-k-rank2": (lambda: ops.aft_simple(_x(3, 5, 6), _x(15, 6), _x(3, 5, 6)), ValueError, r"15,\s*6|\b2\b"),
    "local-v-rank2": (lambda: ops.aft_local(_x(3, 5, 6), _x(3, 5, 6), _x(15, 6), _x(5, 5), window=2),
                      ValueError, r"15,\s*6|\b2\b"),
    "conv1d-q-rank3": (lambda: ops.aft_conv1d(_x(3, 5, 12), _x(3, 5, 2), _x(3, 5, 2, 6), _x(2, 3)),
                       ValueError, r"3,\s*5,\s*12|\b12\b"),
    # mismatched shapes
    "full-k-length": (lambda: ops.aft_full(_x(3, 5, 6), _x(3, 7, 6), _x(3, 5, 6), _x(5, 5)),
                      ValueError, r"3,\s*7,\s*6|\b7\b"),
    "simple-v-channels": (lambda: ops.aft_simple(_x(3, 5, 6), _x(3, 5, 6), _x(3, 5, 8)),
                          ValueError, r"3,\s*5,\s*8|\b8\b"),
    "local-k-batch": (lambda: ops.aft_local(_x(3, 5, 6), _x(4, 5, 6), _x(3, 5, 6), _x(5, 5), window=2),
                      ValueError, r"4,\s*5,\s*6|\b4\b"),
    "conv1d-k-per-channel": (lambda: ops.aft_conv1d(_x(3, 5, 2, 6), _x(3, 5, 2, 7), _x(3, 5, 2, 6), _x(2, 3)),
                             ValueError, r"3,\s*5,\s*2,\s*7|\b7\b"),
    "conv1d-kernel-heads": (lambda: ops.aft_conv1d(*HEADS(), _x(7, 3)), ValueError, r"7,\s*3|\b7\b"),
    "conv1d-kernel-rank": (lambda: ops.aft_conv1d(*HEADS(), _x(2, 3, 3)), ValueError, r"2,\s*3,\s*3|\b3\b"),
    "conv2d-kernel-heads": (lambda: ops.aft_conv2d(*HEADS(12), _x(7, 3, 3), grid=(3, 4)),
                            ValueError, r"7,\s*3,\s*3|\b7\b"),
    "conv2d-kernel-not-square": (lambda: ops.aft_conv2d(*HEADS(12), _x(2, 3, 5), grid=(3, 4)),
                                 ValueError, r"2,\s*3,\s*5|\b5\b"),
    # integer dtype
    "full-int-q": (lambda: ops.aft_full(torch.ones(3, 5, 6, dtype=torch.int64), _x(3, 5, 6), _x(3, 5, 6), _x(5, 5)),
                   (TypeError, ValueError), r"int"),
    "simple-int-all": (lambda: ops.aft_simple(*(torch.ones(3, 5, 6, dtype=torch.int32),) * 3),
                       (TypeError, ValueError), r"int"),
    "conv1d-int-kernel": (lambda: ops.aft_conv1d(*HEADS(), torch.ones(2, 3, dtype=torch.int64)),
                          (TypeError, ValueError), r"int"),
    # w of the wrong shape
    "full-w-shape": (lambda: ops.aft_full(*QKV(), _x(5, 7)), ValueError, r"5,\s*7|\b7\b"),
    "full-w-rank": (lambda: ops.aft_full(*QKV(), _x(25)), ValueError, r"\b25\b|\b1\b"),
    "local-w-shape": (lambda: ops.aft_local(*QKV(), _x(9, 9), window=2), ValueError, r"9,\s*9|\b9\b"),
    # window < 1
    "local-window-0": (lambda: ops.aft_local(*QKV(), _x(5, 5), window=0), ValueError, r"\b0\b"),
    "local-window-negative": (lambda: ops.aft_local(*QKV(), _x(5, 5), window=-2), ValueError, r"-2"),
    # mask of the wrong shape
    "full-mask-length": (lambda: ops.aft_full(*QKV(), _x(5, 5), key_padding_mask=torch.ones(3, 9, dtype=torch.bool)),
                         ValueError, r"3,\s*9|\b9\b"),
    "simple-mask-batch": (lambda: ops.aft_simple(*QKV(), key_padding_mask=torch.ones(4, 5, dtype=torch.bool)),
                          ValueError, r"4,\s*5|\b4\b"),
    "local-mask-rank": (lambda: ops.aft_local(*QKV(), _x(5, 5), window=2,
                                              key_padding_mask=torch.ones(3, 5, 1, dtype=torch.bool)),
                        ValueError, r"3,\s*5,\s*1|\b3\b"),
    "conv1d-mask-length": (lambda: ops.aft_conv1d(*HEADS(), _x(2, 3), key_padding_mask=torch.ones(3, 8)),
                           ValueError, r"3,\s*8|\b8\b"),
    # even bidirectional kernels
    "conv1d-even-bidir": (lambda: ops.aft_conv1d(*HEADS(), _x(2, 4), causal=False), ValueError, r"\b4\b"),
    "conv2d-even": (lambda: ops.aft_conv2d(*HEADS(12), _x(2, 4, 4), grid=(3, 4)), ValueError, r"\b4\b"),
    # grid not matching N
    "conv2d-grid": (lambda: ops.aft_conv2d(*HEADS(12), _x(2, 3, 3), grid=(3, 5)), ValueError, r"3,\s*5|\b15\b"),
    "conv2d-grid-transposed-size": (lambda: ops.aft_conv2d(*HEADS(12), _x(2, 3, 3), grid=(2, 7)),
                                    ValueError, r"2,\s*7|\b14\b"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_raises(name):
    call, exc, pattern = BAD_INPUTS[name]
    with pytest.raises(exc, match=pattern):
        call()


def test_valid_edge_inputs_do_not_raise():
    """The checks must not reject valid corner cases."""
    ops.aft_local(*QKV(), _x(5, 5), window=1)
    ops.aft_local(*QKV(), _x(5, 5), window=100)
    ops.aft_conv1d(*HEADS(), _x(2, 4), causal=True)  # even kernels are fine when causal
    ops.aft_conv1d(*HEADS(), _x(2, 11), causal=False)  # kernel longer than the sequence
    ops.aft_conv2d(*HEADS(12), _x(2, 9, 9), grid=(4, 3))
    ops.aft_full(*(x.to(F64) for x in QKV()), _x(5, 5, dtype=F64))
