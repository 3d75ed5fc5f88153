# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""aft-transformers: the Attention Free Transformer (Zhai et al., 2021) as a Hugging Face model family.

Importing this package registers the model type "aft" with AutoConfig, AutoModel, AutoModelForCausalLM and
AutoModelForImageClassification, and AFTByteTokenizer (the enwik8 byte tokenizer) with AutoTokenizer.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
)

from . import ops
from .configuration_aft import AFT_VARIANTS, PRESETS, AFTConfig
from .modeling_aft import (
    AFTBlock,
    AFTForCausalLM,
    AFTForImageClassification,
    AFTMixer,
    AFTModel,
    AFTPreTrainedModel,
    AFTVisionModel,
)
from .tokenization_aft import AFTByteTokenizer, register_tokenizer

__version__ = "0.1.0"

AutoConfig.register(AFTConfig.model_type, AFTConfig, exist_ok=True)
AutoModel.register(AFTConfig, AFTModel, exist_ok=True)
AutoModelForCausalLM.register(AFTConfig, AFTForCausalLM, exist_ok=True)
AutoModelForImageClassification.register(AFTConfig, AFTForImageClassification, exist_ok=True)
register_tokenizer()

__all__ = [
    "AFTConfig",
    "AFTModel",
    "AFTForCausalLM",
    "AFTVisionModel",
    "AFTForImageClassification",
    "AFTPreTrainedModel",
    "AFTMixer",
    "AFTBlock",
    "AFTByteTokenizer",
    "AFT_VARIANTS",
    "PRESETS",
    "ops",
]
