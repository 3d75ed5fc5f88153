# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Decoding with AFT's recurrent state: the step form equals the parallel form at every position, and generate()
with the state equals generate() re-reading the whole text, for every strategy."""

import pytest
import torch
from transformers import DynamicCache

from modeling_aft import AFTConfig, AFTForCausalLM
from tests.helpers import randomize

VARIANTS = ["full", "local", "simple", "conv"]
WINDOW, KERNEL = 4, 3


def make_lm(variant, seed=0, **overrides):
    kwargs = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_heads=4,
        max_position_embeddings=128,
        local_window=WINDOW,
        position_bias_dim=8,
        conv_kernel_size=KERNEL,
        hidden_dropout_prob=0.0,
        pad_token_id=0,
    )
    kwargs.update(overrides)
    torch.manual_seed(seed)
    return randomize(AFTForCausalLM(AFTConfig.from_preset(f"cpu-text-{variant}", **kwargs)), seed=seed).eval()


def ids(batch, length, seed=0):
    return torch.randint(1, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


def cache_tensors(cache):
    """Every tensor a cache holds, layer by layer, in a fixed order."""
    out = []
    for layer in cache.layers:
        for name in ("keys", "values"):
            if getattr(layer, name, None) is not None and getattr(layer, "is_initialized", False):
                out.append(getattr(layer, name))
        for states in (getattr(layer, "conv_states", {}), getattr(layer, "recurrent_states", {})):
            out.extend(t for t in states.values() if t is not None)
    return out


def cache_bytes(cache):
    return sum(t.numel() * t.element_size() for t in cache_tensors(cache))


# ----------------------------------------------------------------------------------------------------------------
# The step form equals the parallel form
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("length, prefill", [(1, 1), (9, 1), (9, 4), (37, 5), (70, 33)])
def test_steps_equal_the_parallel_forward(variant, length, prefill):
    """Prefill `prefill` tokens in parallel, then one token at a time: the logits of every position equal those of
    one parallel forward over the whole text (crossing the window, the kernel and the 16- and 32-token blocks)."""
    model = make_lm(variant)
    x = ids(2, length, seed=length)
    with torch.no_grad():
        reference = model(x, use_cache=False).logits
        out = model(x[:, :prefill], use_cache=True)
        logits, cache = [out.logits], out.cache
        for t in range(prefill, length):
            out = model(x[:, t : t + 1], cache=cache, use_cache=True)
            logits.append(out.logits)
    torch.testing.assert_close(torch.cat(logits, dim=1), reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_chunked_prefill_gives_the_same_state(variant):
    """A prompt fed in pieces with the cache carried over leaves the same state as one parallel prefill."""
    model = make_lm(variant)
    x = ids(2, 30, seed=1)
    with torch.no_grad():
        whole = model(x, use_cache=True)
        first = model(x[:, :7], use_cache=True)
        second = model(x[:, 7:19], cache=first.cache, use_cache=True)
        third = model(x[:, 19:], cache=second.cache, use_cache=True)
    torch.testing.assert_close(torch.cat([first.logits, second.logits, third.logits], 1), whole.logits)
    a, b = cache_tensors(whole.cache), cache_tensors(third.cache)
    assert len(a) == len(b) > 0
    for x_whole, x_chunked in zip(a, b):
        torch.testing.assert_close(x_chunked, x_whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["local", "simple", "conv"])
def test_recurrent_state_has_constant_size(variant):
    """simple, local and conv hold the same number of bytes after 20 and after 300 tokens; full grows."""
    model = make_lm(variant, max_position_embeddings=512)
    sizes = {}
    with torch.no_grad():
        out = model(ids(1, 4), use_cache=True)
        cache = out.cache
        for t in range(4, 300):
            out = model(ids(1, 1, seed=t), cache=cache, use_cache=True)
            if t + 1 in (20, 300):
                sizes[t + 1] = cache_bytes(cache)
    assert sizes[20] == sizes[300] > 0


@pytest.mark.parametrize("variant", ["local", "simple", "conv"])
def test_state_after_100_and_after_100000_tokens_has_the_same_size(variant):
    """The issue's numbers: a 100,000-token prompt (read in parallel) leaves as many bytes as a 100-token one, and
    a step after it still matches the parallel form."""
    model = make_lm(variant, max_position_embeddings=100_016, num_hidden_layers=1)
    sizes = []
    with torch.no_grad():
        for length in (100, 100_000):
            text = ids(1, length + 1, seed=length)
            cache = model(text[:, :length], use_cache=True, logits_to_keep=1).cache
            step = model(text[:, length:], cache=cache, use_cache=True).logits[:, -1]
            sizes.append(cache_bytes(cache))
        parallel = model(text, use_cache=False, logits_to_keep=1).logits[:, -1]
    assert sizes[0] == sizes[1] > 0
    torch.testing.assert_close(step, parallel, rtol=1e-5, atol=1e-5)


def test_full_state_grows_like_a_kv_cache():
    model = make_lm("full")
    with torch.no_grad():
        short = model(ids(1, 10), use_cache=True).cache
        long_ = model(ids(1, 40), use_cache=True).cache
    assert cache_bytes(long_) == 4 * cache_bytes(short)


# ----------------------------------------------------------------------------------------------------------------
# generate(): with the state equals without it
# ----------------------------------------------------------------------------------------------------------------


def generate_both(model, prompt, seed=0, **kwargs):
    results = []
    for use_cache in (True, False):
        torch.manual_seed(seed)
        with torch.no_grad():
            results.append(model.generate(prompt, use_cache=use_cache, pad_token_id=0, **kwargs))
    return results


@pytest.mark.parametrize("variant", VARIANTS)
def test_sampling_with_the_state_equals_sampling_without(variant):
    model = make_lm(variant)
    prompt = ids(2, 6, seed=2)
    with_state, without = generate_both(
        model, prompt, do_sample=True, temperature=0.8, top_k=50, top_p=0.9, max_new_tokens=15
    )
    assert with_state.shape == (2, 21)
    assert torch.equal(with_state, without)


@pytest.mark.parametrize("variant", VARIANTS)
def test_beam_search_with_the_state_equals_beam_search_without(variant):
    """Beam search reorders the state between steps (the cache layers' reorder_cache)."""
    model = make_lm(variant)
    prompt = ids(2, 5, seed=3)
    with_state, without = generate_both(
        model, prompt, num_beams=3, num_return_sequences=2, max_new_tokens=8, do_sample=False
    )
    assert with_state.shape == (4, 13)
    assert torch.equal(with_state, without)


@pytest.mark.parametrize("variant", VARIANTS)
def test_scores_repetition_penalty_and_eos(variant):
    model = make_lm(variant)
    prompt = ids(1, 6, seed=4)
    kwargs = dict(
        do_sample=False,
        max_new_tokens=10,
        repetition_penalty=1.3,
        return_dict_in_generate=True,
        output_scores=True,
    )
    with_state, without = generate_both(model, prompt, **kwargs)
    assert torch.equal(with_state.sequences, without.sequences)
    assert len(with_state.scores) == len(without.scores) == 10
    for a, b in zip(with_state.scores, without.scores):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # Stop on EOS: the first generated token that did not occur before it becomes the end of the text.
    generated = with_state.sequences[0, 6:].tolist()
    stop = next((i for i in range(1, len(generated)) if generated[i] not in generated[:i]), 0)
    with torch.no_grad():
        stopped = model.generate(
            prompt,
            do_sample=False,
            max_new_tokens=10,
            repetition_penalty=1.3,
            eos_token_id=generated[stop],
            pad_token_id=0,
        )
    assert stopped[0, 6:].tolist() == generated[: stop + 1]


@pytest.mark.parametrize("variant", VARIANTS)
def test_left_padded_rows_equal_prompts_generated_alone(variant):
    """Padding is masked out of the state, and full/local read their position biases at each row's own positions."""
    model = make_lm(variant)
    short, long_ = ids(1, 4, seed=5), ids(1, 9, seed=6)
    batch = torch.cat([torch.cat([torch.zeros(1, 5, dtype=torch.long), short], 1), long_])
    mask = (torch.arange(9) >= torch.tensor([[5], [0]])).long()
    with torch.no_grad():
        together = model.generate(batch, attention_mask=mask, max_new_tokens=7, do_sample=False, pad_token_id=0)
        alone_short = model.generate(short, max_new_tokens=7, do_sample=False, pad_token_id=0)
        alone_long = model.generate(long_, max_new_tokens=7, do_sample=False, pad_token_id=0)
    assert torch.equal(together[0, 5:], alone_short[0])
    assert torch.equal(together[1], alone_long[0])


@pytest.mark.parametrize("variant", VARIANTS)
def test_generate_from_inputs_embeds(variant):
    model = make_lm(variant)
    prompt = ids(1, 7, seed=7)
    with torch.no_grad():
        from_ids = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0)
        embeds = model.get_input_embeddings()(prompt)
        from_embeds = model.generate(inputs_embeds=embeds, max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert torch.equal(from_embeds[0], from_ids[0, 7:])


@pytest.mark.parametrize("variant", VARIANTS)
def test_continue_from_a_returned_cache(variant):
    model = make_lm(variant)
    prompt = ids(2, 5, seed=8)
    greedy = dict(do_sample=False, pad_token_id=0)
    with torch.no_grad():
        in_one_go = model.generate(prompt, max_new_tokens=12, **greedy)
        first = model.generate(prompt, max_new_tokens=5, return_dict_in_generate=True, **greedy)
        assert first.cache is not None
        second = model.generate(first.sequences, cache=first.cache, max_new_tokens=7, **greedy)
    assert torch.equal(second, in_one_go)


@pytest.mark.parametrize("variant", VARIANTS)
def test_continue_from_inputs_embeds_and_a_returned_cache(variant):
    """3 tokens from a prompt's embeddings, then the prompt's and those tokens' embeddings with the returned cache
    and 1 more: generate() feeds a continuation's inputs_embeds whole, so the model must read only what its state
    has not. Tokens and state equal generating 4 at once, and both equal the parallel forward of the same text (its
    greedy choices, and the state its prefill leaves)."""
    model = make_lm(variant)
    prompt = ids(2, 6, seed=9)
    embed = model.get_input_embeddings()
    greedy = dict(do_sample=False, pad_token_id=0, return_dict_in_generate=True)
    with torch.no_grad():
        embeds = embed(prompt)
        at_once = model.generate(inputs_embeds=embeds, max_new_tokens=4, **greedy)
        first = model.generate(inputs_embeds=embeds, max_new_tokens=3, **greedy)
        more = torch.cat([embeds, embed(first.sequences)], dim=1)
        second = model.generate(inputs_embeds=more, cache=first.cache, max_new_tokens=1, **greedy)
        tokens = torch.cat([first.sequences, second.sequences], dim=1)
        parallel = model(torch.cat([prompt, tokens[:, :-1]], dim=1), use_cache=True)
    assert torch.equal(tokens, at_once.sequences)
    assert torch.equal(parallel.logits[:, 5:].argmax(-1), tokens)  # position 5 + i predicts token i
    continued, expected, prefilled = (cache_tensors(c) for c in (second.cache, at_once.cache, parallel.cache))
    assert len(continued) == len(expected) == len(prefilled) > 0
    for got, want, read in zip(continued, expected, prefilled):
        assert torch.equal(got, want)
        torch.testing.assert_close(got, read, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_an_empty_prompt_is_refused_naming_the_fix(variant):
    """Nothing to predict from: a ValueError that names the shape and the fix (GPT-2 fails deep inside a reshape)."""
    model = make_lm(variant)
    greedy = dict(max_new_tokens=3, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        with pytest.raises(ValueError, match=r"at least one prompt token.*input_ids has shape \(1, 0\).*bos_token_id"):
            model.generate(torch.zeros(1, 0, dtype=torch.long), **greedy)
        with pytest.raises(ValueError, match=r"at least one prompt token.*inputs_embeds has shape \(2, 0, 32\)"):
            model.generate(inputs_embeds=torch.zeros(2, 0, 32), **greedy)
        from_bos = model.generate(bos_token_id=5, **greedy)  # the fix the message names
        from_token = model.generate(torch.tensor([[5]]), **greedy)
    assert torch.equal(from_bos, from_token) and from_bos.shape == (1, 4)


def test_a_cache_without_the_model_layout_is_refused():
    model = make_lm("simple")
    with pytest.raises(ValueError, match="DynamicCache\\(config=model.config\\)"):
        model(ids(1, 3), cache=DynamicCache(), use_cache=True)


# ----------------------------------------------------------------------------------------------------------------
# Length: relative variants run past their training length, absolute ones stop with a clear error
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["simple", "conv"])
def test_relative_variants_generate_past_max_positions(variant):
    model = make_lm(variant, max_position_embeddings=16)
    with torch.no_grad():
        out = model.generate(ids(1, 10), max_new_tokens=30, do_sample=False, pad_token_id=0)
    assert out.shape == (1, 40)


@pytest.mark.parametrize("variant", ["full", "local"])
def test_absolute_variants_stop_at_max_positions(variant):
    """16 positions read give a 17th token; reading a 17th position is refused, naming the limit."""
    model = make_lm(variant, max_position_embeddings=16)
    with torch.no_grad():
        ok = model.generate(ids(1, 10), max_new_tokens=7, do_sample=False, pad_token_id=0)
        assert ok.shape == (1, 17)
        with pytest.raises(ValueError, match="max_position_embeddings=16"):
            model.generate(ids(1, 10), max_new_tokens=8, do_sample=False, pad_token_id=0)


# ----------------------------------------------------------------------------------------------------------------
# Several tokens on an existing state: the parallel prefill from the state, and long prompts read in pieces
# ----------------------------------------------------------------------------------------------------------------


def left_padded(seed=11):
    """Two prompts of 23 and 31 tokens, the shorter one left-padded, and their mask."""
    x = ids(2, 31, seed=seed)
    mask = torch.ones(2, 31, dtype=torch.long)
    mask[0, :8] = 0
    x[0, :8] = 0
    return x, mask


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("chunk", [1, 3, 4, 8, 16])
def test_a_prompt_read_in_pieces_equals_one_prefill(variant, chunk):
    """prefill_chunk_size splits a long prompt inside forward (pieces inside and across the window of 4 and the
    kernel of 3, and one token at a time); logits and the state left behind equal one parallel prefill, with a
    left-padded row whose padding fills the first pieces."""
    model = make_lm(variant)
    x, mask = left_padded()
    with torch.no_grad():
        model.model.prefill_chunk_size = None
        whole = model(x, attention_mask=mask, use_cache=True)
        model.model.prefill_chunk_size = chunk
        pieces = model(x, attention_mask=mask, use_cache=True)
    real = mask.bool()
    torch.testing.assert_close(pieces.logits[real], whole.logits[real], rtol=1e-5, atol=1e-5)
    a, b = cache_tensors(whole.cache), cache_tensors(pieces.cache)
    assert len(a) == len(b) > 0
    for x_whole, x_pieces in zip(a, b):
        torch.testing.assert_close(x_pieces, x_whole, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", ["local", "simple", "conv"])
def test_pieces_keep_only_the_logits_asked_for(variant):
    """With logits_to_keep=1 (what generate() asks for) a prompt read in pieces returns the last logits only."""
    model = make_lm(variant)
    x = ids(2, 40, seed=12)
    with torch.no_grad():
        whole = model(x, use_cache=True).logits[:, -1:]
        model.model.prefill_chunk_size = 16
        out = model(x, use_cache=True, logits_to_keep=1)
        hidden = model.model(x, use_cache=True, output_hidden_states=True)
    assert out.logits.shape == (2, 1, model.config.vocab_size)
    torch.testing.assert_close(out.logits, whole, rtol=1e-5, atol=1e-5)
    assert hidden.last_hidden_state.shape[1] == 40 and all(h.shape[1] == 40 for h in hidden.hidden_states)


@pytest.mark.parametrize("variant", VARIANTS)
def test_several_tokens_on_a_state_run_in_parallel(variant, monkeypatch):
    """A prompt fed to an existing state does not run token by token: no one-token step is taken."""
    from modeling_aft import ops

    model = make_lm(variant)
    x = ids(2, 30, seed=13)
    steps = []
    original = ops.recurrent_step
    monkeypatch.setattr(ops, "recurrent_step", lambda *a: steps.append(1) or original(*a))
    with torch.no_grad():
        cache = model(x[:, :10], use_cache=True).cache
        model(x[:, 10:], cache=cache, use_cache=True)
        assert steps == []
        model(x[:, :1], cache=cache, use_cache=True)
    assert len(steps) == model.config.num_hidden_layers


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_second_turn_on_a_returned_cache_equals_generating_from_the_whole_text(variant):
    """Multi-turn: generate, then append a new multi-token prompt to the returned sequences and continue with the
    returned cache. generate() hands the model the unread tokens (the last generated one and the new prompt), which
    it reads in parallel from the state: tokens, scores and state equal generating from the whole text at once."""
    model = make_lm(variant)
    greedy = dict(do_sample=False, pad_token_id=0, return_dict_in_generate=True, output_scores=True)
    prompt, second = ids(2, 6, seed=14), ids(2, 9, seed=15)
    with torch.no_grad():
        first = model.generate(prompt, max_new_tokens=5, **greedy)
        text = torch.cat([first.sequences, second], dim=1)
        continued = model.generate(text, cache=first.cache, max_new_tokens=6, **greedy)
        at_once = model.generate(text, max_new_tokens=6, **greedy)
    assert torch.equal(continued.sequences, at_once.sequences)
    for a, b in zip(continued.scores, at_once.scores):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for got, want in zip(cache_tensors(continued.cache), cache_tensors(at_once.cache)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_left_padded_second_turn_equals_each_conversation_alone(variant):
    """A batch of two conversations: the first turn left-padded, the second turn's prompts padded to the same length
    (padding between the turns). Every real token's logits equal those of its conversation read alone, unpadded."""
    model = make_lm(variant)
    x, mask = left_padded(seed=16)
    turn2 = ids(2, 7, seed=17)
    mask2 = torch.ones(2, 7, dtype=torch.long)
    mask2[1, :3] = 0
    turn2[1, :3] = 0
    with torch.no_grad():
        first = model(x, attention_mask=mask, use_cache=True)
        second = model(turn2, attention_mask=torch.cat([mask, mask2], dim=1), cache=first.cache, use_cache=True)
        for b in range(2):
            text = torch.cat([x[b][mask[b].bool()], turn2[b][mask2[b].bool()]]).unsqueeze(0)
            alone = model(text, use_cache=False).logits[0, -int(mask2[b].sum()):]
            torch.testing.assert_close(second.logits[b][mask2[b].bool()], alone, rtol=1e-5, atol=1e-5)
