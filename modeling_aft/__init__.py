# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""aft-transformers: the Attention Free Transformer (Zhai et al., 2021) as a Hugging Face model family.

Importing this package registers the model type "aft" with AutoConfig, AutoModel, AutoModelForCausalLM and
AutoModelForImageClassification, AFTByteTokenizer (the enwik8 byte tokenizer) with AutoTokenizer, and
AFTImageProcessorPil (the processor saved next to an image classifier) with AutoImageProcessor, so that
`pipeline("image-classification", model=folder)` finds it.
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
)

from . import ops
from .configuration_aft import AFT_VARIANTS, PRESETS, AFTConfig
from .image_processing_aft import AFTImageProcessorPil
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
# Resolves the saved image_processor_type "AFTImageProcessor" (transformers drops the "Pil") to this class without
# trust_remote_code: for new folders (whose auto_map names the copied code) and for folders saved before the
# processor moved here (which have no auto_map).
AutoImageProcessor.register(AFTConfig, image_processor_classes={"pil": AFTImageProcessorPil}, exist_ok=True)

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
    "AFTImageProcessorPil",
    "AFT_VARIANTS",
    "PRESETS",
    "ops",
]
