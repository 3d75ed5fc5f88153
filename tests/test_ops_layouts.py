# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The entry points the layers use (bias bands built without the T x T matrix, the conv re-parameterisation)
against the dense contract form, and the operators' memory promise: no T*T*D or T*S*D tensor."""

import pytest
import torch

from modeling_aft import ops
from tests import reference as ref

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize("T, window", [(1, 1), (7, 2), (33, 5), (70, 32), (40, 64)])
def test_factorized_band_equals_dense_band(causal, T, window):
    """The band of w = U V^T computed from U and V equals the band cut out of the dense product."""
    g = _gen(T * 100 + window)
    u = torch.randn(T, 6, generator=g, dtype=F64)
    w_v = torch.randn(T, 6, generator=g, dtype=F64)
    direct = ops.factorized_local_bias_blocks(u, w_v, window, causal)
    dense = ops.local_bias_blocks(u @ w_v.T, window, causal)
    torch.testing.assert_close(direct, dense, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize("T, window", [(9, 3), (70, 32), (130, 17)])
def test_local_from_factors_equals_reference(causal, T, window):
    """aft_local_blocked on the factorised band equals the float64 reference on the dense w = U V^T."""
    g = _gen(T + window)
    q, k, v = (torch.randn(2, T, 5, generator=g, dtype=F64) for _ in range(3))
    u = torch.randn(T, 4, generator=g, dtype=F64)
    w_v = torch.randn(T, 4, generator=g, dtype=F64)
    got = ops.aft_local_blocked(q, k, v, ops.factorized_local_bias_blocks(u, w_v, window, causal), causal)
    want = ref.ref_local(q, k, v, u @ w_v.T, window, causal=causal)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
@pytest.mark.parametrize("T, S", [(5, 1), (20, 3), (70, 11)])
def test_conv1d_blocks_hold_the_dense_kernel_bias(causal, T, S):
    """Every entry of the block layout is the dense per-head conv bias of its (row, key) pair, 0 outside."""
    g = _gen(T * S)
    kernel = torch.randn(3, S, generator=g, dtype=F64)
    blocks = ops.conv1d_bias_blocks(kernel, T, causal)  # (H, 1, C, nK*C)
    block = blocks.shape[-2]
    dense = ref.dense_conv1d_bias(kernel, T, causal)  # (H, T, T)
    neighbours = [-1, 0] if causal else [-1, 0, 1]
    for i in range(-(-T // block)):
        for r in range(block):
            t = i * block + r
            if t >= T:
                continue
            for n, off in enumerate(neighbours):
                for c in range(block):
                    key = (i + off) * block + c
                    if 0 <= key < T:
                        assert torch.equal(blocks[:, 0, r, n * block + c], dense[:, t, key])


def test_conv_reparameterisation_is_gamma_standardised_plus_beta():
    """Eq. 6's w' = gamma (w - mean) / std + beta per head; gamma = beta = 0 gives a zero kernel."""
    g = _gen(3)
    w = torch.randn(4, 5, 5, generator=g, dtype=F64)
    gamma = torch.randn(4, generator=g, dtype=F64)
    beta = torch.randn(4, generator=g, dtype=F64)
    got = ops.reparameterize_conv_kernel(w, gamma, beta)
    for h in range(4):
        flat = w[h].flatten()
        expected = gamma[h] * (flat - flat.mean()) / (flat.std(unbiased=False) + 1e-5) + beta[h]
        torch.testing.assert_close(got[h].flatten(), expected)
    zero = ops.reparameterize_conv_kernel(w, torch.zeros(4, dtype=F64), torch.zeros(4, dtype=F64))
    assert torch.count_nonzero(zero) == 0


# ----------------------------------------------------------------------------------------------------------------
# Memory: the largest single allocation of an operator, read from the profiler.
# ----------------------------------------------------------------------------------------------------------------


def _largest_allocation_elements(fn) -> int:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    biggest = max((event.self_cpu_memory_usage for event in prof.events()), default=0)
    return biggest // 4  # float32 elements


def test_the_memory_probe_sees_a_naive_T_by_S_by_D_tensor():
    """The probe itself can fail: a broadcast (T, S, D) exponential is seen."""
    T, S, D = 1024, 32, 64
    k = torch.randn(T, D)
    w = torch.randn(T, S)
    biggest = _largest_allocation_elements(lambda: torch.exp(k.unsqueeze(1) + w.unsqueeze(-1)))
    assert biggest >= T * S * D


@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
def test_local_simple_conv_allocate_less_than_T_S_D(causal):
    B, T, D, S, H = 1, 2048, 64, 32, 4
    g = _gen(11)
    q, k, v = (torch.randn(B, T, D, generator=g) for _ in range(3))
    u, w_v = torch.randn(T, 16, generator=g), torch.randn(T, 16, generator=g)
    band = ops.factorized_local_bias_blocks(u, w_v, S, causal)
    limit = T * S * D // 4  # a quarter of one (T, S, D) tensor
    assert _largest_allocation_elements(lambda: ops.aft_local_blocked(q, k, v, band, causal)) < limit
    assert _largest_allocation_elements(lambda: ops.aft_simple(q, k, v, causal)) < limit
    qh, vh = q.view(B, T, H, D // H), v.view(B, T, H, D // H)
    kh = k[..., :H].contiguous()
    kernel = torch.randn(H, S - 1, generator=g)  # odd, as a bidirectional kernel must be
    assert _largest_allocation_elements(lambda: ops.aft_conv1d(qh, kh, vh, kernel, causal)) < limit


@pytest.mark.parametrize("causal", [False, True], ids=["bidir", "causal"])
def test_full_allocates_less_than_T_T_D(causal):
    B, T, D = 1, 512, 64
    g = _gen(12)
    q, k, v = (torch.randn(B, T, D, generator=g) for _ in range(3))
    w = torch.randn(T, T, generator=g)
    assert _largest_allocation_elements(lambda: ops.aft_full(q, k, v, w, causal)) < T * T * D // 8
