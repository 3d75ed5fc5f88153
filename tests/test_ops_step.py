# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The recurrent form of every causal operator (ops.aft_step with running sums) against the float64 reference:
query t reads the window of its last keys through their biases and every older key through the running sums."""

import pytest
import torch

from modeling_aft import ops
from tests import reference as ref

F64 = torch.float64


def _inputs(seed, B=2, T=23, D=5, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (scale * torch.randn(B, T, D, generator=g, dtype=F64) for _ in range(3))
    return q, k, v, g


def _step_by_step(q, k, v, bias_of, window):
    """Outputs of every position through aft_step: keys t-window+1..t in the window, older ones folded."""
    B, T, D = q.shape
    running = ops.empty_running_sums((B, D), (B, D), dtype=F64)
    outputs = []
    for t in range(T):
        start = max(0, t - window + 1)
        if start > 0:  # key start-1 just left the window
            running = ops.fold_running_sums(running, k[:, start - 1], v[:, start - 1])
        keys = torch.arange(start, t + 1)
        valid = torch.ones(B, len(keys), dtype=torch.bool)
        outputs.append(ops.aft_step(q[:, t], k[:, keys], v[:, keys], bias_of(t, keys), valid, running))
    return torch.stack(outputs, dim=1)


@pytest.mark.parametrize("window", [1, 3, 8, 40])
def test_local_steps_equal_the_reference(window):
    q, k, v, g = _inputs(window)
    w = 2.0 * torch.randn(q.shape[1], q.shape[1], generator=g, dtype=F64)
    got = _step_by_step(q, k, v, lambda t, keys: w[t, keys].expand(q.shape[0], -1), window)
    torch.testing.assert_close(got, ref.ref_local(q, k, v, w, window, causal=True), rtol=1e-10, atol=1e-10)


def test_full_steps_equal_the_reference():
    q, k, v, g = _inputs(1)
    T = q.shape[1]
    w = 2.0 * torch.randn(T, T, generator=g, dtype=F64)
    got = _step_by_step(q, k, v, lambda t, keys: w[t, keys].expand(q.shape[0], -1), window=T)
    torch.testing.assert_close(got, ref.ref_full(q, k, v, w, causal=True), rtol=1e-10, atol=1e-10)


def test_simple_steps_equal_the_reference():
    q, k, v, _ = _inputs(2)
    got = _step_by_step(q, k, v, lambda t, keys: torch.zeros(q.shape[0], len(keys), dtype=F64), window=1)
    torch.testing.assert_close(got, ref.ref_simple(q, k, v, causal=True), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("S", [1, 3, 6])
def test_conv1d_steps_equal_the_reference(S):
    """Per head: the key is one scalar shared by the head's channels, the bias kernel[h, t - t']."""
    B, T, H, Dh = 2, 19, 3, 4
    g = torch.Generator().manual_seed(S)
    q, v = (torch.randn(B, T, H, Dh, generator=g, dtype=F64) for _ in range(2))
    k = 3.0 * torch.randn(B, T, H, generator=g, dtype=F64)
    kernel = torch.randn(H, S, generator=g, dtype=F64)
    running = ops.empty_running_sums((B, H, Dh), (B, H, 1), dtype=F64)
    outputs = []
    for t in range(T):
        start = max(0, t - S + 1)
        if start > 0:
            running = ops.fold_running_sums(running, k[:, start - 1].unsqueeze(-1), v[:, start - 1])
        keys = torch.arange(start, t + 1)
        bias = kernel[:, t - keys]  # (H, s)
        valid = torch.ones(B, 1, len(keys), dtype=torch.bool)
        window_k = k[:, keys].transpose(1, 2).unsqueeze(-1)  # (B, H, s, 1)
        window_v = v[:, keys].transpose(1, 2)  # (B, H, s, Dh)
        outputs.append(ops.aft_step(q[:, t], window_k, window_v, bias, valid, running))
    got = torch.stack(outputs, dim=1)  # (B, T, H, Dh)
    want = ref.ref_conv1d(q, k, v, kernel, causal=True)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_folding_keys_one_by_one_equals_running_sums_at_once():
    """Including keys far apart in scale (|k| up to 80), where a single shared maximum would underflow."""
    _, k, v, g = _inputs(3, scale=1.0)
    k = k * 80.0 / k.abs().max()
    valid = torch.rand(k.shape[:2], generator=g) > 0.3
    at_once = ops.running_sums(k, v, valid)
    running = ops.empty_running_sums(v.shape[::2], k.shape[::2], dtype=F64)
    for t in range(k.shape[1]):
        running = ops.fold_running_sums(running, k[:, t], v[:, t], valid[:, t])
    # Compare the normalised sums (num / den) and the maxima where any key was folded.
    torch.testing.assert_close(running[0] / running[1], at_once[0] / at_once[1], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(running[2], at_once[2])


def test_a_step_with_no_key_gives_zero():
    q = torch.randn(2, 4, dtype=F64)
    k, v = torch.randn(2, 3, 4, dtype=F64), torch.randn(2, 3, 4, dtype=F64)
    y = ops.aft_step(q, k, v, torch.zeros(2, 3, dtype=F64), torch.zeros(2, 3, dtype=torch.bool))
    assert torch.equal(y, torch.zeros_like(y))


def _steps_with_prefix(q, k, v, bias_of, window):
    """As _step_by_step, but the keys before the window summed at once by running_sums (as a prompt's state is)."""
    B, T, D = q.shape
    outputs = []
    for t in range(T):
        start = max(0, t - window + 1)
        running = ops.running_sums(k[:, :start], v[:, :start])
        keys = torch.arange(start, t + 1)
        valid = torch.ones(B, len(keys), dtype=torch.bool)
        outputs.append(ops.aft_step(q[:, t], k[:, keys], v[:, keys], bias_of(t, keys), valid, running))
    return torch.stack(outputs, dim=1)


@pytest.mark.parametrize("window", [1, 3, 40])
def test_minus_infinite_keys_weigh_nothing_in_the_steps(window):
    """exp(-inf) = 0 in the window, in the folded running sums and in running sums taken at once (where keys that
    are all -inf sum to nothing, not to exp(-inf - -inf) = NaN). Sequence 0's first 10 keys are -inf, so its rows
    from 10 on see a finite key (rows before see none: 0/0, NaN in the reference too, not compared)."""
    q, k, v, g = _inputs(4, B=3)
    w = 2.0 * torch.randn(q.shape[1], q.shape[1], generator=g, dtype=F64)
    k[0, :10] = -float("inf")  # longer than the window: running sums of -inf keys alone
    k[1, 4:15] = -float("inf")
    k[2, 1:, 2] = -float("inf")  # one channel sees only its first key
    want = ref.ref_local(q, k, v, w, window, causal=True)[:, 10:]
    assert torch.isfinite(want).all()
    bias_of = lambda t, keys: w[t, keys]  # noqa: E731
    torch.testing.assert_close(_step_by_step(q, k, v, bias_of, window)[:, 10:], want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(_steps_with_prefix(q, k, v, bias_of, window)[:, 10:], want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("poison", ["nan", "inf", "-inf"])
def test_a_non_finite_key_stays_in_its_sequence_in_the_steps(poison):
    q, k, v, g = _inputs(5, B=3)
    bias_of = lambda t, keys: torch.zeros(len(keys), dtype=F64)  # noqa: E731
    poisoned = k.clone()
    poisoned[0, 6] = float(poison)
    for steps in (_step_by_step, _steps_with_prefix):
        assert torch.equal(steps(q, poisoned, v, bias_of, 4)[1:], steps(q[1:], k[1:], v[1:], bias_of, 4))


def test_empty_steps():
    """No sequence (B = 0), and a window of no key with only the running sums (AFT-simple's step)."""
    q, k, v, _ = _inputs(6)
    empty = ops.aft_step(q[:0, 0], k[:0, :3], v[:0, :3], torch.zeros(0, 3, dtype=F64),
                         torch.ones(0, 3, dtype=torch.bool), ops.running_sums(k[:0], v[:0]))
    assert empty.shape == (0, q.shape[-1])
    running = ops.running_sums(k, v)
    y = ops.aft_step(q[:, -1], k[:, :0], v[:, :0], torch.zeros(2, 0, dtype=F64), torch.ones(2, 0, dtype=torch.bool),
                     running)
    want = ref.ref_simple(q, k, v, causal=False)[:, -1]  # the last query reads every key, all through the sums
    torch.testing.assert_close(y, want, rtol=1e-10, atol=1e-10)
