# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The attention baselines an AFT is measured against: the same trainer, data, batches and schedule, another model.

`--baseline gpt2` replaces an AFT language model (text or pixels) by transformers' `GPT2LMHeadModel`, and
`--baseline vit` an AFT image classifier by `ViTForImageClassification`, each of the same width, depth, MLP size,
vocabulary or image layout, dropout and layer-norm epsilon. Everything else in the run stays the same: the seed
(so the same batches in the same order), the optimizer and schedule, the augmentations, the evaluation. Attention
takes heads of 64 channels for text (GPT-2's own head size) and of 32 for the small image models.

A baseline run ends with the same folder as an AFT run (weights, tokenizer or image processor, results.json, loss
curves) but without an AFT model card; `training.ship` puts the two side by side in the AFT model's card.
"""

from __future__ import annotations

import dataclasses

BASELINES = {"text": ("gpt2",), "pixels": ("gpt2",), "image": ("vit",)}


def gpt2_like(config):
    """A GPT2LMHeadModel config of the AFT LM's shape (eager-free SDPA attention, GELU as AFT's MLP)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel, GPT2Config(
        n_embd=config.hidden_size,
        n_layer=config.num_hidden_layers,
        n_head=max(1, config.hidden_size // 64),
        n_inner=config.intermediate_size,
        vocab_size=config.vocab_size,
        n_positions=config.max_position_embeddings,
        activation_function=config.hidden_act,
        resid_pdrop=config.hidden_dropout_prob,
        embd_pdrop=config.hidden_dropout_prob,
        attn_pdrop=0.0,
        layer_norm_epsilon=config.layer_norm_eps,
        initializer_range=config.initializer_range,
        bos_token_id=config.bos_token_id,
        eos_token_id=None,
        pad_token_id=None,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )


def vit_like(config):
    """A ViTForImageClassification config of the AFT classifier's shape (a class token, as DeiT)."""
    from transformers import ViTConfig, ViTForImageClassification

    return ViTForImageClassification, ViTConfig(
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=max(1, config.hidden_size // 32),
        intermediate_size=config.intermediate_size,
        hidden_act=config.hidden_act,
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=config.layer_norm_eps,
        initializer_range=config.initializer_range,
        image_size=config.image_size,
        patch_size=config.patch_size,
        num_channels=config.num_channels,
        num_labels=config.num_labels,
        id2label=dict(config.id2label),
        label2id=dict(config.label2id),
        attn_implementation="sdpa",
    )


BUILDERS = {"gpt2": gpt2_like, "vit": vit_like}


def with_baseline(task, name: str | None):
    """The task with its AFT replaced by the named baseline (the task itself when name is None)."""
    if name is None:
        return task
    if name not in BASELINES.get(task.name, ()):
        from .engine import TrainingError

        raise TrainingError(f"--baseline {name!r} does not fit the {task.name} trainer; choose one of: "
                            f"{', '.join(BASELINES.get(task.name, ()))}.")
    model_class, config = BUILDERS[name](task.config)
    return dataclasses.replace(task, config=config, model_class=model_class)


def is_baseline(config) -> bool:
    return getattr(config, "model_type", None) != "aft"
