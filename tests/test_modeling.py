# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Tests of the AFT models in ``modeling_aft.modeling_aft`` and of ``AFTConfig``.

The checks follow what transformers' common model tests check (save/load, tuple outputs, hidden states, input
embeddings, resizing, gradient checkpointing, initialisation, training), plus the properties of the paper's models
through the whole network: causality, padding, batching, AFT-conv at init being AFT-simple, and Table 7's sizes.
Every expected value is computed independently of the code under test (by hand, by another model, by torch).
"""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForImageClassification
from transformers.cache_utils import Cache
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    BaseModelOutputWithPooling,
    CausalLMOutputWithPast,
    ImageClassifierOutput,
)

import modeling_aft  # noqa: F401  (registers "aft" with the Auto classes)
from modeling_aft import (
    AFT_VARIANTS,
    AFTConfig,
    AFTForCausalLM,
    AFTForImageClassification,
    AFTModel,
    AFTVisionModel,
)
from tests.helpers import randomize

VARIANTS = ("full", "local", "simple", "conv")
# Variants whose text model has no absolute position (no position bias, no position embedding).
RELATIVE_VARIANTS = ("simple", "conv")

HIDDEN = 32
HEADS = 4
LAYERS = 2
MAX_POSITIONS = 64
TEXT_KW = dict(
    hidden_size=HIDDEN,
    intermediate_size=64,
    num_hidden_layers=LAYERS,
    num_heads=HEADS,
    max_position_embeddings=MAX_POSITIONS,
    local_window=4,
    position_bias_dim=8,
    hidden_dropout_prob=0.0,
)
# 16 x 16 images in 4 x 4 patches: a 4 x 4 grid, 16 patches (17 tokens with the class token).
IMAGE_SIZE = 16
PATCH = 4
GRID_TOKENS = (IMAGE_SIZE // PATCH) ** 2
IMAGE_KW = dict(
    hidden_size=HIDDEN,
    intermediate_size=64,
    num_hidden_layers=LAYERS,
    num_heads=HEADS,
    image_size=IMAGE_SIZE,
    patch_size=PATCH,
    max_position_embeddings=GRID_TOKENS + 1,
    local_window=4,
    position_bias_dim=8,
    conv_kernel_size=3,
    hidden_dropout_prob=0.0,
)
VOCAB = 256
NUM_LABELS = 10

# Table 7 of the paper: parameter counts in millions.
TABLE7_PARAMS = {
    "imagenet-full-tiny": 6.3,
    "imagenet-full-small": 22.6,
    "imagenet-conv-tiny-32-11": 5.4,
    "imagenet-conv-tiny-192-11": 5.9,
    "imagenet-conv-small-16-11": 20.3,
    "imagenet-conv-small-384-11": 22.5,
    "imagenet-conv-small-384-15": 23.0,
}


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def text_config(variant: str, **overrides) -> AFTConfig:
    return AFTConfig.from_preset(f"cpu-text-{variant}", **{**TEXT_KW, **overrides})


def image_config(variant: str, **overrides) -> AFTConfig:
    return AFTConfig.from_preset(f"cpu-image-{variant}", **{**IMAGE_KW, **overrides})


def make_lm(variant: str, seed: int = 0, randomized: bool = True, **overrides) -> AFTForCausalLM:
    torch.manual_seed(seed)
    model = AFTForCausalLM(text_config(variant, **overrides))
    if randomized:
        randomize(model, seed)
    return model.eval()


def make_classifier(variant: str, seed: int = 0, randomized: bool = True, **overrides) -> AFTForImageClassification:
    torch.manual_seed(seed)
    model = AFTForImageClassification(image_config(variant, **overrides))
    if randomized:
        randomize(model, seed)
    return model.eval()


def token_ids(batch: int, length: int, seed: int = 0, vocab: int = VOCAB) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


def pixels(batch: int, seed: int = 0, channels: int = 1, size: int = IMAGE_SIZE) -> torch.Tensor:
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(seed))


def fixed_text_batch(batch: int = 4, length: int = 32) -> torch.Tensor:
    text = b"the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. " * 4
    rows = [list(text[i * length : (i + 1) * length]) for i in range(batch)]
    return torch.tensor(rows, dtype=torch.long)


def clear_init_flags(model: torch.nn.Module) -> None:
    """Forget transformers' "already initialised" marks, so that the init functions run again."""
    for module in model.modules():
        module.__dict__.pop("_is_hf_initialized", None)
    for param in model.parameters():
        if hasattr(param, "_is_hf_initialized"):
            del param._is_hf_initialized


def simple_state_dict_from_conv(conv_model: torch.nn.Module) -> dict:
    """The state dict of the AFT-simple model that AFT-conv with gamma = beta = 0 equals: conv_* dropped, and each
    head's single key (row of k_proj) repeated over the head's channels."""
    head_dim = conv_model.config.hidden_size // conv_model.config.num_heads
    state = {}
    for name, tensor in conv_model.state_dict().items():
        if ".conv_" in name:
            continue
        if ".k_proj." in name:
            tensor = tensor.repeat_interleave(head_dim, dim=0)
        state[name] = tensor.clone()
    return state


def assert_close(actual, expected, atol=1e-5, rtol=1e-5, msg=None):
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol, msg=msg)


def test_variant_list_is_the_papers():
    assert tuple(sorted(AFT_VARIANTS)) == tuple(sorted(VARIANTS))


# ----------------------------------------------------------------------------------------------------------------
# Save / load
# ----------------------------------------------------------------------------------------------------------------


def _comparable_config(config) -> dict:
    data = config.to_dict()
    for key in ("transformers_version", "architectures", "auto_map", "_name_or_path", "dtype", "torch_dtype"):
        data.pop(key, None)
    return data


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_load_round_trip_causal_lm(variant, tmp_path):
    model = make_lm(variant)
    ids = token_ids(2, 23)
    with torch.no_grad():
        expected = model(ids).logits
        expected_hidden = model.model(ids).last_hidden_state
    model.save_pretrained(tmp_path)

    assert (tmp_path / "model.safetensors").is_file()
    for code_file in ("configuration_aft.py", "modeling_aft.py", "ops.py"):
        assert (tmp_path / code_file).is_file(), f"{code_file} was not copied next to the weights"
    config_json = json.loads((tmp_path / "config.json").read_text())
    assert config_json["model_type"] == "aft"
    assert config_json["aft_variant"] == variant
    assert config_json["auto_map"]["AutoConfig"] == "configuration_aft.AFTConfig"
    assert config_json["auto_map"]["AutoModelForCausalLM"] == "modeling_aft.AFTForCausalLM"

    # The safetensors file holds every tensor of the model (the tied head at most once) with its exact values.
    saved = load_file(tmp_path / "model.safetensors")
    state = model.state_dict()
    assert set(saved) <= set(state)
    assert set(state) - set(saved) <= {"lm_head.weight"}
    for name, tensor in saved.items():
        assert torch.equal(tensor, state[name]), name

    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config) is AFTConfig
    assert _comparable_config(config) == _comparable_config(model.config)

    loaded, info = AutoModelForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    assert type(loaded) is AFTForCausalLM
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    loaded.eval()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, expected)

    base = AutoModel.from_pretrained(tmp_path).eval()
    assert type(base) is AFTModel
    with torch.no_grad():
        assert torch.equal(base(ids).last_hidden_state, expected_hidden)


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_load_round_trip_image_classifier(variant, tmp_path):
    model = make_classifier(variant)
    images = pixels(3)
    with torch.no_grad():
        expected = model(images).logits
    model.save_pretrained(tmp_path)

    assert (tmp_path / "model.safetensors").is_file()
    config_json = json.loads((tmp_path / "config.json").read_text())
    assert config_json["model_type"] == "aft"
    assert config_json["auto_map"]["AutoConfig"] == "configuration_aft.AFTConfig"
    assert config_json["auto_map"]["AutoModelForImageClassification"] == "modeling_aft.AFTForImageClassification"
    saved = load_file(tmp_path / "model.safetensors")
    state = model.state_dict()
    assert set(saved) == set(state)
    for name, tensor in saved.items():
        assert torch.equal(tensor, state[name]), name

    loaded, info = AutoModelForImageClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert type(loaded) is AFTForImageClassification
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert loaded.config.num_labels == NUM_LABELS
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(loaded(images).logits, expected)


# ----------------------------------------------------------------------------------------------------------------
# Outputs: tuples, hidden states, input embeddings
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_tuple_outputs_equal_dict_outputs(variant):
    model = make_lm(variant)
    ids = token_ids(2, 11)
    with torch.no_grad():
        out = model(ids, labels=ids, output_hidden_states=True)
        as_tuple = model(ids, labels=ids, output_hidden_states=True, return_dict=False)
        no_labels = model(ids, return_dict=False)
        base_dict = model.model(ids)
        base_tuple = model.model(ids, return_dict=False)
    assert isinstance(out, CausalLMOutputWithPast)
    # In eval mode the model returns its decoding state (config.use_cache), as GPT-2 returns past_key_values.
    assert isinstance(out.cache, Cache)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 4
    assert torch.equal(as_tuple[0], out.loss)
    assert torch.equal(as_tuple[1], out.logits)
    assert isinstance(as_tuple[2], Cache)
    assert len(as_tuple[3]) == len(out.hidden_states)
    for a, b in zip(as_tuple[3], out.hidden_states):
        assert torch.equal(a, b)
    assert isinstance(no_labels, tuple) and len(no_labels) == 2
    assert torch.equal(no_labels[0], out.logits)
    assert isinstance(base_dict, BaseModelOutputWithPast)
    assert isinstance(base_tuple, tuple) and len(base_tuple) == 2
    assert torch.equal(base_tuple[0], base_dict.last_hidden_state)
    with torch.no_grad():
        without_cache = model(ids, use_cache=False, return_dict=False)
    assert len(without_cache) == 1 and torch.equal(without_cache[0], out.logits)

    # return_dict from the config when the call does not say.
    model.config.return_dict = False
    with torch.no_grad():
        from_config = model(ids)
    assert isinstance(from_config, tuple) and torch.equal(from_config[0], out.logits)

    classifier = make_classifier(variant)
    images, labels = pixels(2), torch.tensor([1, 7])
    with torch.no_grad():
        out = classifier(images, labels=labels, output_hidden_states=True)
        as_tuple = classifier(images, labels=labels, output_hidden_states=True, return_dict=False)
        vision = classifier.model(images)
        vision_tuple = classifier.model(images, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 3
    assert torch.equal(as_tuple[0], out.loss)
    assert torch.equal(as_tuple[1], out.logits)
    for a, b in zip(as_tuple[2], out.hidden_states, strict=True):
        assert torch.equal(a, b)
    assert isinstance(vision, BaseModelOutputWithPooling)
    assert len(vision_tuple) == 2
    assert torch.equal(vision_tuple[0], vision.last_hidden_state)
    assert torch.equal(vision_tuple[1], vision.pooler_output)


@pytest.mark.parametrize("variant", VARIANTS)
def test_hidden_states_causal_lm(variant):
    model = make_lm(variant)
    ids = token_ids(2, 13)
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        plain = model(ids)
        # An independent walk through the layers.
        expected = [model.model.embed_tokens(ids)]
        for layer in model.model.layers:
            expected.append(layer(expected[-1]))
        final = model.model.norm(expected[-1])
    hidden = out.hidden_states
    assert isinstance(hidden, tuple) and len(hidden) == LAYERS + 1
    for i, state in enumerate(hidden):
        assert state.shape == (2, 13, HIDDEN)
        assert_close(state, expected[i], atol=1e-6, rtol=1e-6, msg=f"hidden state {i}")
    assert_close(model.lm_head(final), out.logits, atol=1e-5, rtol=1e-5)
    assert plain.hidden_states is None
    assert torch.equal(plain.logits, out.logits)


@pytest.mark.parametrize("variant", VARIANTS)
def test_hidden_states_image_classifier(variant):
    model = make_classifier(variant)
    images = pixels(2)
    with torch.no_grad():
        out = model(images, output_hidden_states=True)
        backbone = model.model(images)
    uses_cls = variant != "conv"  # the paper's layout: DeiT's class token, mean pooling for AFT-conv
    tokens = GRID_TOKENS + int(uses_cls)
    assert isinstance(out, ImageClassifierOutput)
    assert isinstance(out.hidden_states, tuple) and len(out.hidden_states) == LAYERS + 1
    for state in out.hidden_states:
        assert state.shape == (2, tokens, HIDDEN)
    # The last hidden state, normalised and pooled, is what the classifier reads.
    final = model.model.norm(out.hidden_states[-1])
    assert_close(final, backbone.last_hidden_state, atol=1e-6, rtol=1e-6)
    pooled = final[:, 0] if uses_cls else final.mean(dim=1)
    assert_close(model.classifier(pooled), out.logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_inputs_embeds_equal_input_ids(variant):
    model = make_lm(variant)
    ids = token_ids(3, 17)
    with torch.no_grad():
        from_ids = model(ids).logits
        embeds = model.get_input_embeddings()(ids)
        from_embeds = model(inputs_embeds=embeds).logits
    assert torch.equal(from_embeds, from_ids)
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        model(ids, inputs_embeds=embeds)


# ----------------------------------------------------------------------------------------------------------------
# Token embeddings: resizing, tying
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("new_size", [VOCAB + 44, VOCAB - 56])
def test_resize_token_embeddings_keeps_the_head_tied(new_size, tmp_path):
    model = make_lm("local")
    old = model.get_input_embeddings().weight.detach().clone()
    assert model.lm_head.weight is model.model.embed_tokens.weight

    returned = model.resize_token_embeddings(new_size, mean_resizing=False)
    embed = model.get_input_embeddings()
    assert returned is embed
    assert embed.weight.shape == (new_size, HIDDEN)
    assert model.config.vocab_size == new_size
    kept = min(new_size, VOCAB)
    assert torch.equal(embed.weight[:kept], old[:kept])
    assert model.lm_head.weight is embed.weight
    assert model.lm_head.weight.data_ptr() == embed.weight.data_ptr()

    ids = token_ids(2, 9, vocab=new_size)
    with torch.no_grad():
        logits = model(ids).logits
        # The head is the embedding matrix: logits = final hidden state @ E^T.
        manual = model.model(ids).last_hidden_state @ embed.weight.T
    assert logits.shape == (2, 9, new_size)
    assert_close(logits, manual, atol=1e-5, rtol=1e-5)

    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.vocab_size == new_size
    assert loaded.get_input_embeddings().weight.shape == (new_size, HIDDEN)
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, logits)


def test_untied_head_is_a_separate_matrix(tmp_path):
    model = make_lm("simple", tie_word_embeddings=False)
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    model.save_pretrained(tmp_path)
    assert "lm_head.weight" in load_file(tmp_path / "model.safetensors")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)
    assert not torch.equal(loaded.lm_head.weight, loaded.model.embed_tokens.weight)


# ----------------------------------------------------------------------------------------------------------------
# Gradient checkpointing, training
# ----------------------------------------------------------------------------------------------------------------


def _loss_and_grads(model, inputs):
    model.zero_grad(set_to_none=True)
    loss = model(**inputs).loss
    loss.backward()
    grads = {name: param.grad.detach().clone() for name, param in model.named_parameters()}
    return loss.detach(), grads


def _count_mixer_calls(model):
    counter = {"calls": 0}

    def hook(*_):
        counter["calls"] += 1

    handles = [layer.mixer.register_forward_hook(hook) for layer in model.model.layers]
    return counter, handles


@pytest.mark.filterwarnings("ignore:`gradient_checkpointing_enable` is deprecated:FutureWarning")
@pytest.mark.parametrize("kind", ["lm", "image"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(variant, kind):
    if kind == "lm":
        model = make_lm(variant)
        ids = token_ids(2, 19)
        inputs = dict(input_ids=ids, labels=ids)
    else:
        model = make_classifier(variant)
        inputs = dict(pixel_values=pixels(2), labels=torch.tensor([3, 5]))
    model.train()
    counter, handles = _count_mixer_calls(model)
    loss, grads = _loss_and_grads(model, inputs)
    assert counter["calls"] == LAYERS

    model.gradient_checkpointing_enable()
    assert model.is_activation_checkpointing
    assert all(layer.gradient_checkpointing for layer in model.model.layers)
    counter["calls"] = 0
    loss_ckpt, grads_ckpt = _loss_and_grads(model, inputs)
    # Checkpointing recomputes every block in the backward pass: each mixer runs twice.
    assert counter["calls"] == 2 * LAYERS
    for handle in handles:
        handle.remove()

    assert_close(loss_ckpt, loss, atol=1e-6, rtol=1e-6)
    assert set(grads_ckpt) == set(grads)
    for name in grads:
        assert_close(grads_ckpt[name], grads[name], atol=1e-6, rtol=1e-5, msg=name)


def test_activation_checkpointing_enable_gives_the_same_gradients():
    model = make_lm("conv").train()
    ids = token_ids(2, 19)
    loss, grads = _loss_and_grads(model, dict(input_ids=ids, labels=ids))
    model.activation_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.model.layers)
    loss_ckpt, grads_ckpt = _loss_and_grads(model, dict(input_ids=ids, labels=ids))
    assert_close(loss_ckpt, loss, atol=1e-6, rtol=1e-6)
    for name in grads:
        assert_close(grads_ckpt[name], grads[name], atol=1e-6, rtol=1e-5, msg=name)


def _check_first_gradients(model, variant):
    """After the first backward pass from the initialisation: every parameter has a finite gradient, non-zero
    except AFT-conv's raw kernel, whose kernel gamma * norm(w) + beta does not depend on w while gamma = 0."""
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} received no gradient"
        assert torch.isfinite(param.grad).all(), name
        if ".conv_weight" in name:
            assert torch.count_nonzero(param.grad) == 0, f"{name}: expected a zero gradient while gamma = 0"
        else:
            assert torch.count_nonzero(param.grad) > 0, f"{name} received an all-zero gradient"
    if variant == "conv":
        names = [name for name, _ in model.named_parameters()]
        assert any(".conv_gamma" in n for n in names) and any(".conv_beta" in n for n in names)


def _train_steps(model, inputs, variant, steps=6, lr=1e-2):
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        model(**inputs).loss.backward()
        if step == 0:
            _check_first_gradients(model, variant)
        elif step == 1 and variant == "conv":
            for name, param in model.named_parameters():
                if ".conv_weight" in name:
                    assert torch.count_nonzero(param.grad) > 0, f"{name}: still no gradient once gamma != 0"
        optimizer.step()
    model.eval()


@pytest.mark.parametrize("variant", VARIANTS)
def test_training_lowers_the_loss_causal_lm(variant):
    torch.manual_seed(0)
    model = AFTForCausalLM(text_config(variant)).eval()  # the initialisation itself: conv has gamma = beta = 0
    batch = fixed_text_batch()
    inputs = dict(input_ids=batch, labels=batch)
    with torch.no_grad():
        before = model(**inputs).loss.item()
    assert math.isclose(before, math.log(VOCAB), rel_tol=0.05)  # a fresh model predicts ~uniformly
    _train_steps(model, inputs, variant)
    with torch.no_grad():
        after = model(**inputs).loss.item()
    assert after < before - 0.2, (before, after)


@pytest.mark.parametrize("variant", VARIANTS)
def test_training_lowers_the_loss_image_classifier(variant):
    torch.manual_seed(0)
    model = AFTForImageClassification(image_config(variant)).eval()
    inputs = dict(pixel_values=pixels(8, seed=3), labels=torch.arange(8) % NUM_LABELS)
    with torch.no_grad():
        before = model(**inputs).loss.item()
    _train_steps(model, inputs, variant)
    with torch.no_grad():
        after = model(**inputs).loss.item()
    assert after < before - 0.2, (before, after)


# ----------------------------------------------------------------------------------------------------------------
# Determinism, batching
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_eval_mode_is_deterministic_and_dropout_free(variant):
    model = make_lm(variant, hidden_dropout_prob=0.3)
    ids = token_ids(2, 21)
    with torch.no_grad():
        first = model(ids).logits
        second = model(ids).logits
        model.train()
        train_a = model(ids).logits
        train_b = model(ids).logits
    assert torch.equal(first, second)
    assert not torch.equal(train_a, train_b), "dropout should act in train mode"
    # In eval mode the model equals the same weights without dropout.
    reference = AFTForCausalLM(text_config(variant, hidden_dropout_prob=0.0)).eval()
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(reference(ids).logits, first)

    classifier = make_classifier(variant, hidden_dropout_prob=0.3)
    images = pixels(2)
    with torch.no_grad():
        assert torch.equal(classifier(images).logits, classifier(images).logits)


@pytest.mark.parametrize("variant", VARIANTS)
def test_batch_rows_equal_single_rows(variant):
    model = make_lm(variant)
    ids = token_ids(3, 37)
    classifier = make_classifier(variant)
    images = pixels(3)
    with torch.no_grad():
        batched = model(ids).logits
        batched_images = classifier(images).logits
        for row in range(3):
            assert_close(model(ids[row : row + 1]).logits[0], batched[row], atol=1e-5, rtol=1e-5)
            assert_close(classifier(images[row : row + 1]).logits[0], batched_images[row], atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# Causality and padding through the whole language model
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_causal_lm_is_causal(variant):
    model = make_lm(variant)
    length = MAX_POSITIONS
    ids = token_ids(2, length)
    with torch.no_grad():
        reference = model(ids).logits
        for t in (0, 1, 15, 16, 40, length - 2):
            changed = ids.clone()
            changed[:, t + 1 :] = (ids[:, t + 1 :] + 1 + token_ids(2, length - t - 1, seed=t)) % VOCAB
            logits = model(changed).logits
            assert_close(logits[:, : t + 1], reference[:, : t + 1], atol=1e-5, rtol=1e-5, msg=f"t = {t}")
            # The test can see a change: the next position does depend on its own (changed) token.
            assert (logits[:, t + 1] - reference[:, t + 1]).abs().max() > 1e-3


def _pad_rows(rows, side, pad_id_seed=99):
    """Pad token-id rows of different lengths to one length with random (not zero) padding ids."""
    length = max(len(r) for r in rows)
    ids = token_ids(len(rows), length, seed=pad_id_seed)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(0, len(row)) if side == "right" else slice(length - len(row), length)
        ids[i, span] = row
        mask[i, span] = 1
    return ids, mask


@pytest.mark.parametrize("variant", VARIANTS)
def test_right_padding_with_attention_mask(variant):
    model = make_lm(variant)
    lengths = (40, 29, 13)
    rows = [token_ids(1, n, seed=n)[0] for n in lengths]
    ids, mask = _pad_rows(rows, "right")
    with torch.no_grad():
        padded = model(ids, attention_mask=mask).logits
        for i, row in enumerate(rows):
            alone = model(row.unsqueeze(0)).logits[0]
            assert_close(padded[i, : len(row)], alone, atol=1e-5, rtol=1e-5, msg=f"row {i}")


@pytest.mark.parametrize("variant", RELATIVE_VARIANTS)
def test_left_padding_with_attention_mask(variant):
    model = make_lm(variant)
    lengths = (40, 29, 13)
    rows = [token_ids(1, n, seed=n)[0] for n in lengths]
    ids, mask = _pad_rows(rows, "left")
    with torch.no_grad():
        padded = model(ids, attention_mask=mask).logits
        unmasked = model(ids).logits
        for i, row in enumerate(rows):
            alone = model(row.unsqueeze(0)).logits[0]
            start = ids.shape[1] - len(row)
            assert_close(padded[i, start:], alone, atol=1e-5, rtol=1e-5, msg=f"row {i}")
            if start:
                # Without the mask the padding is read: the mask is what makes the rows match.
                assert (unmasked[i, start:] - alone).abs().max() > 1e-3


@pytest.mark.parametrize("variant", VARIANTS)
def test_all_ones_attention_mask_changes_nothing(variant):
    model = make_lm(variant)
    ids = token_ids(2, 30)
    with torch.no_grad():
        assert torch.equal(model(ids, attention_mask=torch.ones_like(ids)).logits, model(ids).logits)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("poison", ["nan", "inf", "-inf"])
def test_a_non_finite_input_stays_in_its_sequence(variant, poison):
    """A NaN or inf embedding in sequence 0 of a padded batch leaves sequences 1 and 2 as they are alone: in the
    parallel forward, in the state it leaves and in the next decoding step; and an image does not reach another."""
    model = make_lm(variant)
    sides = ("right", "left") if variant in RELATIVE_VARIANTS else ("right",)
    for side in sides:
        ids, mask = _pad_rows([token_ids(1, n, seed=n)[0] for n in (40, 29, 13)], side)
        nxt = token_ids(3, 1, seed=5)
        with torch.no_grad():
            embeds = model.get_input_embeddings()(ids)
            embeds[0, 20, :3] = float(poison)  # a real token of sequence 0
            out = model(inputs_embeds=embeds, attention_mask=mask, use_cache=True)
            step = model(nxt, attention_mask=F.pad(mask, (0, 1), value=1), cache=out.cache).logits
            alone = model(inputs_embeds=embeds[1:], attention_mask=mask[1:], use_cache=True)
            alone_step = model(nxt[1:], attention_mask=F.pad(mask[1:], (0, 1), value=1), cache=alone.cache).logits
        assert torch.isfinite(out.logits[1:]).all() and torch.isfinite(step[1:]).all(), side
        assert_close(out.logits[1:], alone.logits, msg=side)
        assert_close(step[1:], alone_step, msg=side)
    classifier = make_classifier(variant)
    images = pixels(3)
    images[0, 0, 5, 5] = float(poison)
    with torch.no_grad():
        assert_close(classifier(images).logits[1:], classifier(images[1:]).logits)


@pytest.mark.parametrize("variant", VARIANTS)
def test_empty_inputs(variant):
    """(1, 0) and (0, T) token ids (and no image) give empty outputs of the right shape, with and without a state,
    and backward runs; an empty chunk leaves a decoding state as it is."""
    model = make_lm(variant)
    for shape in ((1, 0), (0, 5), (0, 0)):
        for use_cache in (False, True):
            out = model(torch.zeros(shape, dtype=torch.long), use_cache=use_cache)
            assert out.logits.shape == (*shape, VOCAB), (shape, use_cache)
    model.train()
    model(torch.zeros(2, 0, dtype=torch.long)).logits.sum().backward()
    model.eval()
    ids = token_ids(2, 9)
    with torch.no_grad():
        whole = model(ids).logits
        state = model(ids[:, :5], use_cache=True).cache
        assert model(ids[:, :0], cache=state).logits.shape == (2, 0, VOCAB)
        rest = model(ids[:, 5:], cache=state).logits
    assert_close(rest, whole[:, 5:])
    classifier = make_classifier(variant)
    with torch.no_grad():
        assert classifier(pixels(0)).logits.shape == (0, NUM_LABELS)


# ----------------------------------------------------------------------------------------------------------------
# The paper's identity at model level: AFT-conv with gamma = beta = 0 is AFT-simple
# ----------------------------------------------------------------------------------------------------------------


def test_conv_at_init_equals_simple_causal_lm():
    torch.manual_seed(0)
    conv = AFTForCausalLM(text_config("conv")).eval()
    for name, param in conv.named_parameters():
        if ".conv_gamma" in name or ".conv_beta" in name:
            assert torch.count_nonzero(param) == 0, f"{name} is not 0 at init"
    randomize(conv, keep=(".conv_gamma", ".conv_beta"))  # everything else away from its init
    simple = AFTForCausalLM(text_config("simple")).eval()
    simple.load_state_dict(simple_state_dict_from_conv(conv), strict=True)

    ids = token_ids(3, 50)
    mask = torch.ones_like(ids)
    mask[1, :7] = 0  # left padding
    mask[2, 41:] = 0  # right padding
    with torch.no_grad():
        for kwargs in ({}, {"attention_mask": mask}):
            conv_out = conv(ids, output_hidden_states=True, **kwargs)
            simple_out = simple(ids, output_hidden_states=True, **kwargs)
            for a, b in zip(conv_out.hidden_states, simple_out.hidden_states, strict=True):
                assert_close(a, b, atol=1e-5, rtol=1e-5)
            assert_close(conv_out.logits, simple_out.logits, atol=1e-5, rtol=1e-5)

        # The identity needs gamma = beta = 0: a non-zero kernel in one layer breaks it.
        conv.model.layers[0].mixer.conv_beta.fill_(1.0)
        conv.model.layers[0].mixer.conv_gamma.fill_(1.0)
        assert (conv(ids).logits - simple(ids).logits).abs().max() > 1e-3


def test_conv_at_init_equals_simple_image_classifier():
    torch.manual_seed(0)
    conv = AFTForImageClassification(image_config("conv")).eval()
    randomize(conv, keep=(".conv_gamma", ".conv_beta"))
    # AFT-conv's image layout: no class token (mean pooling), no position embedding.
    simple = AFTForImageClassification(image_config("simple", pooling="mean", use_position_embeddings=False)).eval()
    simple.load_state_dict(simple_state_dict_from_conv(conv), strict=True)
    images = pixels(3)
    with torch.no_grad():
        assert_close(conv(images).logits, simple(images).logits, atol=1e-5, rtol=1e-5)
        conv.model.layers[1].mixer.conv_gamma.fill_(2.0)
        assert (conv(images).logits - simple(images).logits).abs().max() > 1e-4


# ----------------------------------------------------------------------------------------------------------------
# Initialisation
# ----------------------------------------------------------------------------------------------------------------


def _build(kind, variant, **overrides):
    torch.manual_seed(0)
    if kind == "lm":
        return AFTForCausalLM(text_config(variant, **overrides))
    return AFTForImageClassification(image_config(variant, **overrides))


@pytest.mark.parametrize("method", ["initialize_weights", "init_weights", "apply__init_weights"])
@pytest.mark.parametrize("kind", ["lm", "image"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_init_weights_covers_every_parameter(variant, kind, method):
    model = _build(kind, variant)
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(float("nan"))
    clear_init_flags(model)
    if method == "apply__init_weights":
        model.apply(model._init_weights)
    else:
        getattr(model, method)()
    not_initialised = [name for name, param in model.named_parameters() if torch.isnan(param).any()]
    assert not not_initialised, f"_init_weights leaves these parameters alone: {not_initialised}"


def test_dense_position_bias_is_initialised():
    model = _build("lm", "full", position_bias_dim=0)
    names = [name for name, _ in model.named_parameters()]
    assert "model.layers.0.mixer.position_bias" in names
    with torch.no_grad():
        for param in model.parameters():
            param.fill_(float("nan"))
    clear_init_flags(model)
    model.initialize_weights()
    assert not any(torch.isnan(p).any() for p in model.parameters())


def _assert_std(tensor, std, name, rel=0.1):
    measured = tensor.detach().float().std().item()
    assert abs(measured - std) <= rel * std, f"{name}: std {measured:.5f}, expected {std}"
    assert abs(tensor.detach().float().mean().item()) <= 5 * std / math.sqrt(tensor.numel()), f"{name}: mean"


@pytest.mark.parametrize("variant", VARIANTS)
def test_initial_distributions(variant):
    # The cpu presets at full size: 256 positions and d' = 64, so the statistics are tight.
    torch.manual_seed(0)
    config = AFTConfig.from_preset(f"cpu-text-{variant}")
    model = AFTForCausalLM(config)
    for name, param in model.named_parameters():
        if "position_bias" in name:
            _assert_std(param, config.position_bias_init_std, name)
        elif ".conv_gamma" in name or ".conv_beta" in name:
            assert torch.count_nonzero(param) == 0, f"{name} must be exactly 0 at init"
        elif name.endswith("_proj.weight") or (".fc" in name and name.endswith("weight")) or "embed_tokens" in name:
            _assert_std(param, config.initializer_range, name, rel=0.15)
        elif name.endswith(".bias") and ("_proj" in name or ".fc" in name or "ln_" in name or "norm" in name):
            assert torch.count_nonzero(param) == 0, f"{name} should start at 0"
        elif ("ln_" in name or "norm" in name) and name.endswith("weight"):
            assert torch.equal(param, torch.ones_like(param)), name
    assert config.position_bias_init_std == 0.01

    image_config_ = AFTConfig.from_preset(f"cpu-image-{variant}")
    classifier = AFTForImageClassification(image_config_)
    embeddings = classifier.model.embeddings
    if embeddings.cls_token is not None:
        assert torch.count_nonzero(embeddings.cls_token) == image_config_.hidden_size
    if embeddings.position_embeddings is not None:
        _assert_std(embeddings.position_embeddings, image_config_.initializer_range, "position_embeddings")


# ----------------------------------------------------------------------------------------------------------------
# Logits to keep, losses
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_to_keep(variant):
    model = make_lm(variant)
    ids = token_ids(3, 20)
    with torch.no_grad():
        full = model(ids).logits
        last = model(ids, logits_to_keep=1).logits
        last_three = model(ids, logits_to_keep=3).logits
        chosen = model(ids, logits_to_keep=torch.tensor([2, 5, 19])).logits
    assert full.shape == (3, 20, VOCAB)
    assert last.shape == (3, 1, VOCAB)
    assert_close(last, full[:, -1:], atol=1e-6, rtol=1e-6)
    assert last_three.shape == (3, 3, VOCAB)
    assert_close(last_three, full[:, -3:], atol=1e-6, rtol=1e-6)
    assert_close(chosen, full[:, [2, 5, 19]], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_causal_lm_loss_is_shifted_cross_entropy(variant):
    model = make_lm(variant)
    ids = token_ids(3, 25)
    labels = ids.clone()
    labels[0, :5] = -100
    labels[2, 17:] = -100
    with torch.no_grad():
        out = model(ids, labels=labels)
        logits = model(ids).logits
    manual = F.cross_entropy(
        logits[:, :-1].reshape(-1, VOCAB).double(), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    assert_close(out.loss.double(), manual, atol=1e-5, rtol=1e-5)
    # The labels are shifted inside the model: unshifted cross entropy is a different number.
    unshifted = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
    assert abs(unshifted.item() - out.loss.item()) > 1e-3


@pytest.mark.parametrize("variant", VARIANTS)
def test_image_classifier_loss_and_outputs(variant):
    labels_map = {i: f"kind-{i}" for i in range(7)}
    model = make_classifier(variant, num_labels=7, id2label=labels_map, label2id={v: k for k, v in labels_map.items()})
    assert model.config.num_labels == 7
    assert model.classifier.out_features == 7
    images = pixels(5)
    labels = torch.tensor([0, 6, 3, 3, 1])
    with torch.no_grad():
        out = model(images, labels=labels)
        plain = model(images)
    assert isinstance(out, ImageClassifierOutput)
    assert out.logits.shape == (5, 7)
    assert out.hidden_states is None and out.attentions is None
    assert plain.loss is None
    assert torch.equal(plain.logits, out.logits)
    assert_close(out.loss, F.cross_entropy(out.logits, labels), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("variant, pooling", [("full", "cls"), ("local", "mean"), ("simple", "mean"), ("conv", "mean")])
def test_vision_backbone_pooling(variant, pooling):
    torch.manual_seed(0)
    config = image_config(variant, pooling=pooling)
    model = randomize(AFTVisionModel(config)).eval()
    with torch.no_grad():
        out = model(pixels(2))
    tokens = GRID_TOKENS + int(pooling == "cls")
    assert out.last_hidden_state.shape == (2, tokens, HIDDEN)
    expected = out.last_hidden_state[:, 0] if pooling == "cls" else out.last_hidden_state.mean(dim=1)
    assert_close(out.pooler_output, expected, atol=1e-6, rtol=1e-6)


def test_conv_with_class_token_pooling_is_rejected():
    """AFT-conv's 2-D kernel mixes the patch grid, where a class token has no cell: the config refuses the pair
    with an error that names it, instead of a model that fails at its first forward."""
    with pytest.raises(ValueError, match=r"pooling='cls'.*aft_variant='conv'"):
        image_config("conv", pooling="cls")
    assert image_config("conv", pooling="mean").image_pooling == "mean"


# ----------------------------------------------------------------------------------------------------------------
# Bad input: every error names the offending value
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(aft_variant="linear"), r"aft_variant='linear'"),
        (dict(aft_variant="local", local_window=0), r"local_window=0"),
        (dict(aft_variant="local", local_window=65, max_position_embeddings=64), r"local_window=65.*64"),
        (dict(aft_variant="conv", hidden_size=30, num_heads=4), r"num_heads=4.*hidden_size=30"),
        (dict(aft_variant="conv", causal=False, conv_kernel_size=4), r"conv_kernel_size=4"),
        (dict(image_size=30, patch_size=4), r"image_size=30.*patch_size=4"),
        (dict(causal="false"), r"causal='false' must be true or false"),
        (dict(hidden_size="32"), r"hidden_size='32' must be an integer, not str"),
        (dict(hidden_size=32.0), r"hidden_size=32.0 must be an integer, not float"),
        (dict(num_hidden_layers=True), r"num_hidden_layers=True must be an integer, not bool"),
        (dict(hidden_act="nope"), r"hidden_act='nope' is not an activation"),
        (dict(layer_norm_eps=-1), r"layer_norm_eps=-1 must be > 0"),
        (dict(layer_norm_eps="1e-5"), r"layer_norm_eps='1e-5' must be a finite number"),
        (dict(hidden_dropout_prob=float("nan")), r"hidden_dropout_prob=nan must be a finite number"),
        (dict(position_bias_init_std=-0.1), r"position_bias_init_std=-0.1 must be >= 0"),
        (dict(use_position_embeddings="yes"), r"use_position_embeddings='yes' must be true or false"),
    ],
    ids=["unknown-variant", "window-0", "window-too-long", "heads-not-dividing", "even-kernel", "image-size",
         "bool-as-text", "int-as-text", "int-as-float", "int-as-bool", "unknown-activation", "negative-eps",
         "float-as-text", "nan", "negative-std", "optional-bool-as-text"],
)
def test_bad_config_raises_value_error(overrides, match):
    with pytest.raises(ValueError, match=match):
        AFTConfig(**overrides)


def test_a_misspelt_preset_override_is_refused_with_the_close_field():
    """`--config-overrides hidden_sise=32` used to be kept silently while the run trained at the default width."""
    with pytest.raises(ValueError, match=r"'hidden_sise' \(did you mean 'hidden_size'\?\)"):
        AFTConfig.from_preset("cpu-text-local", hidden_sise=32)
    config = AFTConfig.from_preset("cpu-image-conv", num_labels=3, hidden_dropout_prob=0.1, bos_token_id=1)
    assert config.num_labels == 3 and config.hidden_dropout_prob == 0.1


def test_good_configs_pass_the_checks():
    AFTConfig(aft_variant="local", local_window=64, max_position_embeddings=64)
    AFTConfig(aft_variant="local", local_window=1)
    AFTConfig(aft_variant="conv", hidden_size=30, num_heads=5)
    AFTConfig(aft_variant="conv", causal=True, conv_kernel_size=4)
    AFTConfig(aft_variant="full", local_window=0)  # the window only matters to AFT-local
    AFTConfig(image_size=32, patch_size=4)


def test_bad_preset_override_raises_value_error():
    with pytest.raises(ValueError, match=r"local_window=0"):
        AFTConfig.from_preset("cpu-text-local", local_window=0)


def test_unknown_preset_raises_value_error():
    with pytest.raises(ValueError, match=r"'cpu-text-linear'"):
        AFTConfig.from_preset("cpu-text-linear")


@pytest.mark.parametrize("variant", VARIANTS)
def test_sequence_longer_than_the_positions(variant):
    model = make_lm(variant)
    too_long = token_ids(1, MAX_POSITIONS + 1)
    if variant in ("full", "local"):
        with pytest.raises(ValueError, match=rf"{MAX_POSITIONS + 1} tokens.*max_position_embeddings={MAX_POSITIONS}"):
            model(too_long)
    else:
        # No position biases and no position embeddings: any length works.
        with torch.no_grad():
            logits = model(too_long).logits
        assert logits.shape == (1, MAX_POSITIONS + 1, VOCAB)
        assert torch.isfinite(logits).all()
    with torch.no_grad():
        assert model(token_ids(1, MAX_POSITIONS)).logits.shape == (1, MAX_POSITIONS, VOCAB)


def test_text_position_embeddings_bound_the_length():
    model = make_lm("simple", use_position_embeddings=True)
    assert model.model.embed_positions is not None
    with pytest.raises(ValueError, match=rf"{MAX_POSITIONS + 1} tokens"):
        model(token_ids(1, MAX_POSITIONS + 1))


@pytest.mark.parametrize("variant", VARIANTS)
def test_bad_model_inputs(variant):
    model = make_lm(variant)
    ids = token_ids(2, 10)
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 9\)"):
        model(ids, attention_mask=torch.ones(2, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 1, 10\)"):
        model(ids, attention_mask=torch.ones(2, 1, 10, dtype=torch.long))
    with pytest.raises(ValueError, match=r"input_ids .*\(2, 10, 3\)"):
        model(torch.zeros(2, 10, 3, dtype=torch.long))
    with pytest.raises(TypeError, match=r"torch.float32"):
        model(ids.float())
    with pytest.raises(ValueError, match=rf"inputs_embeds .*\(2, 10, {HIDDEN + 1}\)"):
        model(inputs_embeds=torch.zeros(2, 10, HIDDEN + 1))

    classifier = make_classifier(variant)
    with pytest.raises(ValueError, match=rf"pixel_values has shape \(2, 3, {IMAGE_SIZE}, {IMAGE_SIZE}\)"):
        classifier(pixels(2, channels=3))
    with pytest.raises(ValueError, match=r"pixel_values has shape \(2, 1, 20, 20\)"):
        classifier(pixels(2, size=20))
    with pytest.raises(ValueError, match=rf"pixel_values has shape \(1, {IMAGE_SIZE}, {IMAGE_SIZE}\)"):
        classifier(pixels(1)[0])


def test_models_reject_the_wrong_direction():
    with pytest.raises(ValueError, match=r"causal=False"):
        AFTForCausalLM(image_config("local"))
    with pytest.raises(ValueError, match=r"causal=True"):
        AFTForImageClassification(text_config("local"))
    with pytest.raises(ValueError, match=rf"{GRID_TOKENS + 1} tokens.*max_position_embeddings={GRID_TOKENS}"):
        AFTForImageClassification(image_config("full", max_position_embeddings=GRID_TOKENS))


# ----------------------------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(TABLE7_PARAMS))
def test_imagenet_presets_match_table_7(preset):
    config = AFTConfig.from_preset(preset)
    with torch.device("meta"):
        model = AFTForImageClassification(config)
    params = list(model.parameters())
    assert all(p.device.type == "meta" for p in params)
    count = sum(p.numel() for p in params) / 1e6
    expected = TABLE7_PARAMS[preset]
    assert abs(count - expected) <= 0.02 * expected, f"{preset}: {count:.3f}M parameters, Table 7 says {expected}M"
    assert config.image_size == 224 and config.patch_size == 16 and config.num_labels == 1000
    assert config.num_hidden_layers == 12
    assert config.aft_variant == preset.split("-")[1]
    if config.aft_variant == "conv":
        _, _, _, heads, kernel = preset.split("-")
        assert config.num_heads == int(heads) and config.conv_kernel_size == int(kernel)
        assert config.image_pooling == "mean" and not config.image_position_embeddings
    else:
        assert config.image_pooling == "cls" and config.max_position_embeddings == 197


def test_enwik8_preset():
    config = AFTConfig.from_preset("enwik8-local-32")
    assert config.aft_variant == "local"
    assert config.num_hidden_layers == 24
    assert config.hidden_size == 256
    assert config.max_position_embeddings == 1024
    assert config.local_window == 32
    assert config.position_bias_dim == 256
    assert config.causal and config.vocab_size == 256
    with torch.device("meta"):
        model = AFTForCausalLM(config)
    u = model.model.layers[0].mixer.position_bias_u
    assert u.shape == (1024, 256)
    assert len(model.model.layers) == 24


def test_every_preset_builds_a_config_and_overrides_apply():
    names = AFTConfig.preset_names()
    for required in ["enwik8-local-32", *TABLE7_PARAMS, *(f"cpu-text-{v}" for v in VARIANTS)]:
        assert required in names
    for name in names:
        config = AFTConfig.from_preset(name, initializer_range=0.03)
        assert config.initializer_range == 0.03
        assert config.model_type == "aft"
