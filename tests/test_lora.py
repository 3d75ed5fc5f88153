# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""peft on AFT (issue 14): LoRA on every linear layer of the shipped model starts as the model itself and merges into
plain weights; the shipped folder's special ids are the tokenizer's, so Trainer (and TRL) have nothing to align; and
LoRA on the position-bias factors U, V still breaks generate() because peft's wrapper hides AFTMixer.state_counts,
which is why `training.finetune --lora` refuses them (when the pin below fails, lift that refusal)."""

import json
import logging
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.trainer_utils import align_special_tokens

from modeling_aft import AFTConfig, AFTForCausalLM  # importing it registers "aft" with the Auto classes
from training import finetune

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "pretrained" / "aft-local-wikipedia"
IDS = torch.tensor([list(b"The city of Paris is the capital of France.")])  # (1, 44)


# Tiny models on a shared 2-core machine: one thread (tests/conftest.py) runs them faster than two.
pytestmark = pytest.mark.usefixtures("one_thread")


def _logits(model, ids=IDS) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=ids, use_cache=False).logits


def test_the_shipped_folders_special_ids_are_the_tokenizers_and_change_no_logit():
    tokenizer = AutoTokenizer.from_pretrained(SHIPPED)
    names = ("bos_token_id", "eos_token_id", "pad_token_id")
    for file in ("config.json", "generation_config.json"):
        saved = json.loads((SHIPPED / file).read_text())
        assert {name: saved[name] for name in names} == {name: getattr(tokenizer, name) for name in names} == {
            name: 0 for name in names}, file
    model = AutoModelForCausalLM.from_pretrained(SHIPPED)
    # pad_token_id is no padding_idx of the embedding (id 0 is also the start token, whose row must train).
    without = AutoModelForCausalLM.from_pretrained(SHIPPED, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    assert model.model.embed_tokens.padding_idx is None and without.model.embed_tokens.padding_idx is None
    torch.testing.assert_close(_logits(model), _logits(without), atol=0, rtol=0)


def test_trainer_finds_nothing_to_align_in_the_shipped_folder(caplog):
    model, tokenizer = AutoModelForCausalLM.from_pretrained(SHIPPED), AutoTokenizer.from_pretrained(SHIPPED)
    with caplog.at_level(logging.WARNING, logger="transformers"):
        align_special_tokens(model, tokenizer)  # what Trainer (and TRL's SFTTrainer through it) runs first
    assert "PAD/BOS/EOS" not in caplog.text
    bare = AutoModelForCausalLM.from_pretrained(SHIPPED, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    bare.generation_config.bos_token_id = bare.generation_config.eos_token_id = None
    bare.generation_config.pad_token_id = None
    with caplog.at_level(logging.WARNING, logger="transformers"):
        align_special_tokens(bare, tokenizer)  # a config without them is what made TRL warn
    assert "PAD/BOS/EOS" in caplog.text


def test_lora_on_every_linear_layer_starts_as_the_model_and_merges_into_plain_weights():
    base = _logits(AutoModelForCausalLM.from_pretrained(SHIPPED))
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(SHIPPED),
                           LoraConfig(r=4, lora_alpha=8, target_modules=list(finetune.DEFAULT_LORA_TARGETS)))
    torch.testing.assert_close(_logits(model), base, atol=0, rtol=0)  # B = 0 at the start: the update is zero
    config = AFTConfig.from_pretrained(SHIPPED)
    expected = config.num_hidden_layers * 4 * (4 * (2 * config.hidden_size) + 2 * (
        config.hidden_size + config.intermediate_size))
    assert model.get_nb_trainable_parameters()[0] == expected
    torch.manual_seed(0)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(0, 0.02)
    adapted = _logits(model)
    assert (adapted - base).abs().max() > 1e-2
    merged = model.merge_and_unload()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    torch.testing.assert_close(_logits(merged), adapted, atol=1e-4, rtol=1e-4)
    generated = merged.generate(IDS[:, :10], max_new_tokens=5, do_sample=False)  # the recurrent state works
    assert generated.shape == (1, 15)


def test_lora_on_the_position_bias_factors_trains_and_its_wrapper_keeps_the_decoding_state():
    """peft's target_parameters replaces each AFTMixer by a ParamWrapper; the model reads the state through the
    wrapped mixer, so a cache works: the forward with a cache equals the one without, and generate() runs."""
    torch.manual_seed(0)
    config = AFTConfig.from_preset("cpu-text-local", num_hidden_layers=1, hidden_size=32, intermediate_size=64,
                                   max_position_embeddings=16, local_window=4)
    model = get_peft_model(AFTForCausalLM(config), LoraConfig(r=2, target_modules=[],
                                                              target_parameters=["position_bias_u", "position_bias_v"]))
    ids = IDS[:, :12]  # (1, 12)
    loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 1.0)  # B starts at 0: without this the adapter would change nothing to see
        model.eval()
        without = model(input_ids=ids, use_cache=False).logits
        with_cache = model(input_ids=ids).logits
        generated = model.generate(input_ids=ids, max_new_tokens=2, do_sample=False, pad_token_id=0)
    torch.testing.assert_close(with_cache, without)
    assert generated.shape == (1, 14) and int(generated[0, 12]) == int(without[0, -1].argmax())
