# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The recurrent form of every causal operator (ops.aft_*_recurrent) against the float64 reference and against
itself: one token at a time (query t reads the window of its last keys through their biases and every older key
through the running sums), a prompt read in chunks from the state each leaves, and one prefill of the whole text all
give the same outputs and the same state."""

import pytest
import torch

from modeling_aft import ops
from tests import reference as ref

F64 = torch.float64
POSITIONS = 64  # the position-bias tables of full and local cover more positions than any text here


def _inputs(seed, B=2, T=23, D=5, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (scale * torch.randn(B, T, D, generator=g, dtype=F64) for _ in range(3))
    return q, k, v, g


class Variant:
    """One causal variant: its recurrent operator on (B, T, D) inputs (conv: D = H * Dh, one key per head taken
    from the first H channels of k) and the float64 reference of the whole text."""

    def __init__(self, name, g, window=4, kernel_size=3, heads=1, factors=True):
        self.name, self.window, self.heads = name, window, heads
        u, w_v = (0.5 * torch.randn(POSITIONS, 4, generator=g, dtype=F64) for _ in range(2))
        self.w = u @ w_v.T  # (P, P)
        self.table = (u, w_v) if factors else self.w
        self.kernel = torch.randn(heads, kernel_size, generator=g, dtype=F64)

    def _heads(self, q, k, v):
        B, T, D = q.shape
        shape = (B, T, self.heads, D // self.heads)
        return q.reshape(shape), k[..., : self.heads], v.reshape(shape)

    def run(self, q, k, v, mask=None, state=None, final=True):
        kw = dict(key_padding_mask=mask, initial_state=state, output_final_state=final)
        if self.name == "full":
            return ops.aft_full_recurrent(q, k, v, self.table, **kw)
        if self.name == "local":
            return ops.aft_local_recurrent(q, k, v, self.table, self.window, **kw)
        if self.name == "simple":
            return ops.aft_simple_recurrent(q, k, v, **kw)
        y, state = ops.aft_conv1d_recurrent(*self._heads(q, k, v), self.kernel, **kw)
        return y.flatten(2), state

    def reference(self, q, k, v):
        T = q.shape[1]
        if self.name == "full":
            return ref.ref_full(q, k, v, self.w[:T, :T], causal=True)
        if self.name == "local":
            return ref.ref_local(q, k, v, self.w[:T, :T], self.window, causal=True)
        if self.name == "simple":
            return ref.ref_simple(q, k, v, causal=True)
        qh, kh, vh = self._heads(q, k, v)
        return ref.ref_conv1d(qh, kh, vh, self.kernel, causal=True).flatten(2)


def _in_pieces(variant, q, k, v, cuts, mask=None):
    """Outputs and final state of the text read in pieces [0, cuts[0]), [cuts[0], cuts[1]), ..., each from the state
    the pieces before left (a piece of one token is one step)."""
    state, outputs = None, []
    bounds = [0, *cuts, q.shape[1]]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        piece = slice(start, stop)
        y, state = variant.run(q[:, piece], k[:, piece], v[:, piece], None if mask is None else mask[:, piece], state)
        outputs.append(y)
    return torch.cat(outputs, dim=1), state


def _assert_same_state(got, want, rtol=1e-10, atol=1e-10):
    assert got.steps == want.steps
    assert torch.equal(got.count, want.count) and torch.equal(got.valid, want.valid)
    for name in ("keys", "values", "num", "den", "max"):
        a, b = getattr(got, name), getattr(want, name)
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=name)


VARIANTS = ["full", "local", "simple", "conv"]


# ----------------------------------------------------------------------------------------------------------------
# One token at a time equals the reference
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [1, 3, 8, 40])
def test_local_steps_equal_the_reference(window):
    q, k, v, g = _inputs(window)
    variant = Variant("local", g, window=window, factors=False)
    got, _ = _in_pieces(variant, q, k, v, cuts=range(1, q.shape[1]))
    torch.testing.assert_close(got, variant.reference(q, k, v), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["full", "simple"])
def test_full_and_simple_steps_equal_the_reference(name):
    q, k, v, g = _inputs(1)
    variant = Variant(name, g)
    got, _ = _in_pieces(variant, q, k, v, cuts=range(1, q.shape[1]))
    torch.testing.assert_close(got, variant.reference(q, k, v), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("S", [1, 3, 6])
def test_conv1d_steps_equal_the_reference(S):
    """Per head: the key is one scalar shared by the head's channels, the bias kernel[h, t - t']."""
    q, k, v, g = _inputs(S, T=19, D=12)
    variant = Variant("conv", g, kernel_size=S, heads=3)
    got, _ = _in_pieces(variant, q, k, v, cuts=range(1, q.shape[1]))
    torch.testing.assert_close(got, variant.reference(q, k, v), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------------------------------------------
# A prompt read in pieces from the state equals one prefill of the whole text
# ----------------------------------------------------------------------------------------------------------------

# Cuts inside the local window (4) and the conv kernel (3), across them, at the blocks of 16, and one-token steps.
CUTS = [(2,), (1, 2, 3), (3, 7), (5, 6, 20), (16, 17, 33), (4, 8, 12, 16, 20, 24, 28, 32)]


@pytest.mark.parametrize("variant_name", VARIANTS)
@pytest.mark.parametrize("cuts", CUTS, ids=str)
def test_prefill_from_a_state_equals_one_prefill(variant_name, cuts):
    """Outputs and the resulting state, batch of 3, no padding: and both equal the float64 reference."""
    q, k, v, g = _inputs(10 + len(cuts), B=3, T=37, D=6)
    variant = Variant(variant_name, g, heads=2)
    whole, whole_state = variant.run(q, k, v)
    pieces, state = _in_pieces(variant, q, k, v, cuts)
    torch.testing.assert_close(pieces, whole, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(whole, variant.reference(q, k, v), rtol=1e-10, atol=1e-10)
    _assert_same_state(state, whole_state)


@pytest.mark.parametrize("variant_name", VARIANTS)
@pytest.mark.parametrize("cuts", [(3,), (6, 9), (2, 11, 12, 25)], ids=str)
def test_padding_takes_no_position_in_any_piece(variant_name, cuts):
    """Sequences of a batch padded where generate() and multi-turn prompts pad them: on the left of the prompt (row 0
    wholly padding in the first pieces), and on the left of a later piece (row 1: a second turn's prompt padded to
    the batch's longest). Every real token's output and the final state equal those of the sequence's real tokens
    read alone in one prefill: padding takes no position and adds no key, wherever it falls."""
    B, T = 3, 30
    q, k, v, g = _inputs(20 + len(cuts), B=B, T=T, D=6)
    variant = Variant(variant_name, g, heads=2)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, :8] = False  # left padding longer than the first pieces
    mask[1, 9:14] = False  # padding between two turns
    mask[2, :1] = False
    got, state = _in_pieces(variant, q, k, v, cuts, mask)
    for b in range(B):
        real = mask[b]
        alone, alone_state = variant.run(q[b : b + 1, real], k[b : b + 1, real], v[b : b + 1, real])
        torch.testing.assert_close(got[b : b + 1, real], alone, rtol=1e-10, atol=1e-10)
        one = state._replace(**{name: getattr(state, name)[b : b + 1] for name in ("keys", "values", "valid", "count")},
                             **{name: getattr(state, name)[b : b + 1] for name in ("num", "den", "max")
                                if getattr(state, name) is not None}, steps=alone_state.steps)
        if variant_name == "full":  # full keeps every time step, padding flagged: compare its real tokens
            keep = one.valid[0]
            one = one._replace(keys=one.keys[:, keep], values=one.values[:, keep], valid=one.valid[:, keep])
        _assert_same_state(one, alone_state)


@pytest.mark.parametrize("variant_name", ["local", "simple", "conv"])
def test_the_state_after_a_long_prompt_in_pieces_keeps_its_size(variant_name):
    """The window and the running sums stay the same size however many pieces and tokens are read."""
    q, k, v, g = _inputs(30, B=2, T=60, D=6)
    variant = Variant(variant_name, g, heads=2)
    _, short = _in_pieces(variant, q[:, :10], k[:, :10], v[:, :10], (4,))
    _, long_ = _in_pieces(variant, q, k, v, (4, 20, 41))
    shapes = [[tuple(x.shape) for x in state if torch.is_tensor(x)] for state in (short, long_)]
    assert shapes[0] == shapes[1]


def test_the_recurrent_operators_check_their_state():
    q, k, v, g = _inputs(31)
    with pytest.raises(TypeError, match="initial_state must be an ops.AFTState"):
        ops.aft_simple_recurrent(q, k, v, initial_state=(q, k))


def test_without_a_state_and_without_output_the_operator_is_the_parallel_one():
    q, k, v, g = _inputs(32)
    y, state = ops.aft_simple_recurrent(q, k, v)
    assert state is None
    torch.testing.assert_close(y, ops.aft_simple(q, k, v, causal=True), rtol=0, atol=0)


def test_an_empty_piece_leaves_the_state_as_it_was():
    q, k, v, g = _inputs(33)
    variant = Variant("local", g)
    _, state = variant.run(q[:, :9], k[:, :9], v[:, :9])
    y, after = variant.run(q[:, 9:9], k[:, 9:9], v[:, 9:9], state=state)
    assert y.shape == (2, 0, 5)
    _assert_same_state(after, state, rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------------------------
# The step's building blocks: running sums and aft_step
# ----------------------------------------------------------------------------------------------------------------


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


def _prefill_then_steps(variant, q, k, v):
    """Every position t as one step after a prefill of the t tokens before it (the prompt's state taken at once)."""
    outputs = [variant.run(q[:, :1], k[:, :1], v[:, :1])[0]]
    for t in range(1, q.shape[1]):
        _, state = variant.run(q[:, :t], k[:, :t], v[:, :t])
        outputs.append(variant.run(q[:, t : t + 1], k[:, t : t + 1], v[:, t : t + 1], state=state)[0])
    return torch.cat(outputs, dim=1)


@pytest.mark.parametrize("window", [1, 3, 40])
def test_minus_infinite_keys_weigh_nothing_in_the_steps(window):
    """exp(-inf) = 0 in the window, in the folded running sums and in running sums taken at once (where keys that
    are all -inf sum to nothing, not to exp(-inf - -inf) = NaN). Sequence 0's first 10 keys are -inf, so its rows
    from 10 on see a finite key (rows before see none: 0/0, NaN in the reference too, not compared)."""
    q, k, v, g = _inputs(4, B=3)
    variant = Variant("local", g, window=window, factors=False)
    k[0, :10] = -float("inf")  # longer than the window: running sums of -inf keys alone
    k[1, 4:15] = -float("inf")
    k[2, 1:, 2] = -float("inf")  # one channel sees only its first key
    want = variant.reference(q, k, v)[:, 10:]
    assert torch.isfinite(want).all()
    steps, _ = _in_pieces(variant, q, k, v, cuts=range(1, q.shape[1]))
    torch.testing.assert_close(steps[:, 10:], want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(_prefill_then_steps(variant, q, k, v)[:, 10:], want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("poison", ["nan", "inf", "-inf"])
def test_a_non_finite_key_stays_in_its_sequence_in_the_steps(poison):
    q, k, v, g = _inputs(5, B=3)
    variant = Variant("simple", g)
    poisoned = k.clone()
    poisoned[0, 6] = float(poison)
    for cuts in (range(1, q.shape[1]), (4, 11)):
        got, _ = _in_pieces(variant, q, poisoned, v, cuts)
        alone, _ = _in_pieces(variant, q[1:], k[1:], v[1:], cuts)
        assert torch.equal(got[1:], alone)
    alone = _prefill_then_steps(variant, q[1:], k[1:], v[1:])
    assert torch.equal(_prefill_then_steps(variant, q, poisoned, v)[1:], alone)


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
