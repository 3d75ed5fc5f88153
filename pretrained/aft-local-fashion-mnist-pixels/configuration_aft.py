# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""AFTConfig: one configuration class for every Attention Free Transformer (text and image), with named presets."""

from __future__ import annotations

import copy
import difflib
import math

import torch
from huggingface_hub.dataclasses import strict
from transformers.activations import ACT2FN
from transformers.configuration_utils import PreTrainedConfig

AFT_VARIANTS = ("full", "local", "simple", "conv")
POOLING_TYPES = ("cls", "mean")
# The types of the fields, checked on every construction (a JSON or command-line "32" or "false" is not taken).
INT_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size", "local_window",
              "position_bias_dim", "num_heads", "conv_kernel_size", "max_position_embeddings", "image_size",
              "patch_size", "num_channels")
FLOAT_FIELDS = ("hidden_dropout_prob", "layer_norm_eps", "initializer_range", "position_bias_init_std")
BOOL_FIELDS = ("causal", "tie_word_embeddings", "use_cache")

_TEXT = dict(vocab_size=256, causal=True, hidden_act="gelu", tie_word_embeddings=True)
_IMAGENET = dict(
    causal=False,
    image_size=224,
    patch_size=16,
    num_channels=3,
    num_labels=1000,
    layer_norm_eps=1e-6,
    num_hidden_layers=12,
)
_DEIT_TINY = dict(_IMAGENET, hidden_size=192, intermediate_size=768)
_DEIT_SMALL = dict(_IMAGENET, hidden_size=384, intermediate_size=1536)

# The paper's models (Zhai et al., 2021, Sections 4.1-4.3, Tables 2, 5 and 7) and small sizes that train on a CPU.
PRESETS: dict[str, dict] = {
    # enwik8, Table 5: 24 layers of width 256, T = 1024, AFT-local with window 32, d' = 256.
    "enwik8-local-32": dict(
        _TEXT,
        aft_variant="local",
        num_hidden_layers=24,
        hidden_size=256,
        intermediate_size=1024,
        max_position_embeddings=1024,
        local_window=32,
        position_bias_dim=256,
        hidden_dropout_prob=0.1,
    ),
    # CIFAR-10 as 3072 sub-pixels, Table 2: 24 x 256, AFT-local window 256, d' = 64.
    "cifar10-local-256": dict(
        _TEXT,
        aft_variant="local",
        num_hidden_layers=24,
        hidden_size=256,
        intermediate_size=1024,
        max_position_embeddings=3072,
        local_window=256,
        position_bias_dim=64,
        hidden_dropout_prob=0.1,
    ),
    # ImageNet, Table 7: the DeiT layout at 224 px, patch 16. AFT-full keeps the class token, d' = 128;
    # AFT-conv-h-s has no position embedding and no class token and pools by the mean.
    "imagenet-full-tiny": dict(_DEIT_TINY, aft_variant="full", max_position_embeddings=197, position_bias_dim=128),
    "imagenet-full-small": dict(_DEIT_SMALL, aft_variant="full", max_position_embeddings=197, position_bias_dim=128),
    "imagenet-conv-tiny-32-11": dict(_DEIT_TINY, aft_variant="conv", num_heads=32, conv_kernel_size=11),
    "imagenet-conv-tiny-192-11": dict(_DEIT_TINY, aft_variant="conv", num_heads=192, conv_kernel_size=11),
    "imagenet-conv-small-16-11": dict(_DEIT_SMALL, aft_variant="conv", num_heads=16, conv_kernel_size=11),
    "imagenet-conv-small-384-11": dict(_DEIT_SMALL, aft_variant="conv", num_heads=384, conv_kernel_size=11),
    "imagenet-conv-small-384-15": dict(_DEIT_SMALL, aft_variant="conv", num_heads=384, conv_kernel_size=15),
}
# Small byte-level language models of every variant, a few minutes of training on two CPU cores.
for _variant in AFT_VARIANTS:
    PRESETS[f"cpu-text-{_variant}"] = dict(
        _TEXT,
        aft_variant=_variant,
        num_hidden_layers=4,
        hidden_size=128,
        intermediate_size=512,
        max_position_embeddings=256,
        local_window=32,
        position_bias_dim=64,
        num_heads=8,
        conv_kernel_size=11,
        hidden_dropout_prob=0.1,
    )
# Small image classifiers for 28 x 28 grey images (Fashion-MNIST): 7 x 7 patches of 4 pixels.
for _variant in AFT_VARIANTS:
    PRESETS[f"cpu-image-{_variant}"] = dict(
        causal=False,
        aft_variant=_variant,
        num_hidden_layers=4,
        hidden_size=96,
        intermediate_size=384,
        image_size=28,
        patch_size=4,
        num_channels=1,
        num_labels=10,
        max_position_embeddings=50,
        local_window=8,
        position_bias_dim=32,
        num_heads=8,
        conv_kernel_size=3,
        hidden_dropout_prob=0.1,
    )


@strict
class AFTConfig(PreTrainedConfig):
    r"""
    Configuration of an Attention Free Transformer (Zhai et al., 2021). One class serves the language models
    (`AFTModel`, `AFTForCausalLM`) and the image classifiers (`AFTForImageClassification`).

    Args:
        vocab_size: number of token ids; 256 for bytes (the enwik8 convention).
        hidden_size: width d of the model.
        num_hidden_layers: number of pre-LN blocks (AFT mixer + two-layer MLP).
        intermediate_size: width of the MLP.
        aft_variant: `"full"` (Eq. 2), `"local"` (Eq. 4), `"simple"` (Eq. 5) or `"conv"` (Eq. 6).
        local_window: AFT-local's window s: the learned bias is used where |t - t'| < s, 0 outside.
        position_bias_dim: d' of the factorised bias w = U V^T of full and local; 0 learns the whole T x T matrix.
        num_heads: heads of AFT-conv (K has one dimension per head).
        conv_kernel_size: the kernel size s of AFT-conv (s x s on images); odd when bidirectional.
        max_position_embeddings: the longest sequence (tokens or patches, class token included) of variants with
            absolute position biases or embeddings.
        causal: causal (language model) or bidirectional (image classifier) mixing.
        hidden_dropout_prob: dropout on embeddings and on the output of every mixer and MLP.
        hidden_act: MLP activation.
        layer_norm_eps: epsilon of the layer norms.
        initializer_range: standard deviation of the weight initialisation.
        position_bias_init_std: standard deviation of the position-bias initialisation (0.01 in the paper).
        use_position_embeddings: learned absolute position embeddings; `None` picks the paper's choice: on images
            for every variant but conv (the DeiT layout), never on text (full and local already carry positions in w).
        tie_word_embeddings: the LM head shares the token embedding matrix.
        image_size, patch_size, num_channels: the image and its DeiT-style patch embedding.
        pooling: `"cls"` (a class token, DeiT) or `"mean"` (global average pooling); `None` picks the paper's
            choice: mean for AFT-conv (which cannot take a class token), the class token otherwise.

    Example:
        >>> from modeling_aft import AFTConfig, AFTForCausalLM
        >>> model = AFTForCausalLM(AFTConfig.from_preset("cpu-text-local"))
    """

    model_type = "aft"

    vocab_size: int = 256
    hidden_size: int = 256
    num_hidden_layers: int = 4
    intermediate_size: int = 1024
    aft_variant: str = "local"
    local_window: int = 32
    position_bias_dim: int = 64
    num_heads: int = 8
    conv_kernel_size: int = 11
    max_position_embeddings: int = 1024
    causal: bool = True
    hidden_dropout_prob: float = 0.0
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    position_bias_init_std: float = 0.01
    use_position_embeddings: bool | None = None
    tie_word_embeddings: bool = True
    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    pooling: str | None = None
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None

    def __post_init__(self, **kwargs):
        # transformers' own __post_init__ turns num_labels into an id2label map and dtype into a torch dtype, and
        # fails on a wrong type with a TypeError or AttributeError that names nothing; check those first.
        if "num_labels" in kwargs and kwargs["num_labels"] is None:
            del kwargs["num_labels"]  # null means not given, as transformers reads a missing num_labels
        self._validate_general_fields(kwargs.get("num_labels"))
        self.validate_types()  # layer_types, read by transformers' __post_init__, needs an integer layer count
        super().__post_init__(**kwargs)
        # @strict runs validate_architecture after __init__ too, but wraps its error in a class that is not a
        # ValueError; checking here first gives callers the plain ValueError they catch.
        self.validate_architecture()

    @classmethod
    def _dict_from_json_file(cls, json_file):
        config_dict = super()._dict_from_json_file(json_file)
        if not isinstance(config_dict, dict):  # transformers would fail later on "argument of type ... not iterable"
            raise ValueError(f"{json_file} must hold a JSON object of AFTConfig fields, not "
                             f"{type(config_dict).__name__}; save the model again with save_pretrained.")
        return config_dict

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        if not isinstance(config_dict, dict):  # a config.json holding a list, a string or null
            raise ValueError(f"config.json must hold a JSON object of AFTConfig fields, not "
                             f"{type(config_dict).__name__} ({str(config_dict)[:60]}); save the model again with "
                             "save_pretrained.")
        return super().from_dict(config_dict, **kwargs)

    def _validate_general_fields(self, num_labels):
        if num_labels is not None and (isinstance(num_labels, bool) or not isinstance(num_labels, int)
                                       or num_labels < 1):
            raise ValueError(f"num_labels={num_labels!r} must be a whole number >= 1 (the classifier's classes).")
        for name in ("id2label", "label2id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"{name}={value!r} must be a mapping (e.g. {{0: 'cat', 1: 'dog'}}) or null.")
        if self.id2label is not None:
            for key in self.id2label:
                if isinstance(key, bool) or not (isinstance(key, int) or (isinstance(key, str) and key.isdigit())):
                    raise ValueError(f"id2label has the key {key!r}; its keys must be the class ids 0, 1, ...")
        dtype = self.dtype
        if dtype is not None and not isinstance(dtype, torch.dtype):
            if not isinstance(dtype, str) or not isinstance(getattr(torch, dtype, None), torch.dtype):
                raise ValueError(f"dtype={dtype!r} is not a torch dtype; use e.g. 'float32', 'bfloat16' or null.")

    def validate_types(self):
        """Integers as integers, numbers as numbers, flags as booleans: a quoted "32" or "false" names its field."""
        for name in INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name}={value!r} must be an integer, not {type(value).__name__}; write it as a "
                                 "whole number without quotes.")
        for name in FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}={value!r} must be a finite number, not {type(value).__name__}; write it "
                                 "without quotes.")
        for name in BOOL_FIELDS + ("use_position_embeddings",):
            value = getattr(self, name)
            if not isinstance(value, bool) and not (value is None and name == "use_position_embeddings"):
                raise ValueError(f"{name}={value!r} must be true or false (a boolean), not {type(value).__name__}.")
        for name in ("aft_variant", "hidden_act"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name}={getattr(self, name)!r} must be a string.")
        if self.hidden_act not in ACT2FN:
            raise ValueError(f"hidden_act={self.hidden_act!r} is not an activation transformers knows; use one of "
                             f"{', '.join(sorted(ACT2FN)[:12])}, ... (e.g. 'gelu').")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, name)
            for token in value if isinstance(value, list) and name == "eos_token_id" else [value]:
                # transformers only warns here (some Hub configs hold -1), but an AFT pads its embedding at
                # pad_token_id and generation feeds these ids to it: outside the vocabulary they cannot work.
                if token is not None and (isinstance(token, bool) or not isinstance(token, int)
                                          or not 0 <= token < self.vocab_size):
                    raise ValueError(f"{name}={value!r} must be null or a token id in [0, vocab_size="
                                     f"{self.vocab_size}); the byte tokenizer's special id is 0.")
        if self.layer_norm_eps <= 0:
            raise ValueError(f"layer_norm_eps={self.layer_norm_eps} must be > 0 (1e-5 is usual); 0 or less divides "
                             "by a non-positive variance.")
        for name in ("initializer_range", "position_bias_init_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0 (a standard deviation).")

    def validate_architecture(self):
        """Every check names the value, the limit and the fix."""
        self.validate_types()
        if self.aft_variant not in AFT_VARIANTS:
            raise ValueError(f"aft_variant={self.aft_variant!r} is unknown; choose one of {', '.join(AFT_VARIANTS)}.")
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size", "max_position_embeddings"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1.")
        if self.aft_variant == "local" and not 1 <= self.local_window <= self.max_position_embeddings:
            raise ValueError(
                f"local_window={self.local_window} must lie in [1, max_position_embeddings="
                f"{self.max_position_embeddings}]; use a smaller window or aft_variant='full'."
            )
        if self.position_bias_dim < 0:
            raise ValueError(f"position_bias_dim={self.position_bias_dim} must be >= 0 (0 = a full T x T bias).")
        if self.aft_variant == "conv":
            if self.num_heads < 1 or self.hidden_size % self.num_heads != 0:
                raise ValueError(
                    f"num_heads={self.num_heads} must divide hidden_size={self.hidden_size}; pick a divisor of "
                    f"{self.hidden_size}."
                )
            if self.conv_kernel_size < 1:
                raise ValueError(f"conv_kernel_size={self.conv_kernel_size} must be at least 1.")
            if not self.causal and self.conv_kernel_size % 2 == 0:
                raise ValueError(
                    f"conv_kernel_size={self.conv_kernel_size} must be odd for a bidirectional (causal=False) "
                    "AFT-conv, "
                    f"whose kernel is centred; use {self.conv_kernel_size + 1} or {self.conv_kernel_size - 1}."
                )
        if self.image_size < 1 or self.patch_size < 1 or self.image_size % self.patch_size != 0:
            raise ValueError(
                f"image_size={self.image_size} is not divisible by patch_size={self.patch_size}; choose sizes with "
                "image_size % patch_size == 0."
            )
        if self.num_channels < 1:
            raise ValueError(f"num_channels={self.num_channels} must be at least 1.")
        if self.pooling is not None and self.pooling not in POOLING_TYPES:
            raise ValueError(f"pooling={self.pooling!r} is unknown; choose 'cls', 'mean' or None (the paper's choice).")
        if self.aft_variant == "conv" and self.pooling == "cls":
            raise ValueError(
                "pooling='cls' is not available with aft_variant='conv': its 2-D kernel mixes the patch grid, where a "
                "class token has no place (the paper's AFT-conv pools by the mean); use pooling='mean' or None."
            )
        if not 0.0 <= self.hidden_dropout_prob < 1.0:
            raise ValueError(f"hidden_dropout_prob={self.hidden_dropout_prob} must lie in [0, 1).")

    # ------------------------------------------------------------------------------------------------------------
    # Derived properties (not serialised)
    # ------------------------------------------------------------------------------------------------------------

    @property
    def layer_types(self) -> list[str]:
        """The kind of decoding state every layer keeps, read by transformers' DynamicCache: a recurrent one of
        constant size (running sums and a rolling window) for simple, local and conv, all past keys for full."""
        kind = "full_attention" if self.aft_variant == "full" else "linear_attention"
        return [kind] * self.num_hidden_layers

    @property
    def number_of_conv_states(self) -> int:
        """Slots of each linear-attention cache layer: num, den, max and (count, steps) of the recurrent state."""
        return 4

    @property
    def has_absolute_positions(self) -> bool:
        """Whether the model learns something per absolute position, which bounds the sequence length."""
        return self.aft_variant in ("full", "local") or bool(self.use_position_embeddings)

    def position_table_bytes(self, element_size: int = 4) -> int:
        """Bytes (float32 by default) of the tables the model learns per position, which grow with
        max_position_embeddings T: the position bias of every layer of full and local (T x T dense, or U and V of
        T x d') and text position embeddings (T x hidden_size). A dense bias grows as T^2: T = 20,000 is 1.6 GB a
        layer."""
        length = self.max_position_embeddings
        per_layer = 0
        if self.aft_variant in ("full", "local"):
            per_layer = length * length if self.position_bias_dim == 0 else 2 * length * self.position_bias_dim
        embeddings = length * self.hidden_size if self.text_position_embeddings else 0
        return (per_layer * self.num_hidden_layers + embeddings) * element_size

    @property
    def image_pooling(self) -> str:
        if self.pooling is not None:
            return self.pooling
        return "mean" if self.aft_variant == "conv" else "cls"

    @property
    def image_position_embeddings(self) -> bool:
        if self.use_position_embeddings is not None:
            return self.use_position_embeddings
        return self.aft_variant != "conv"

    @property
    def text_position_embeddings(self) -> bool:
        return bool(self.use_position_embeddings)

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    # ------------------------------------------------------------------------------------------------------------
    # Presets
    # ------------------------------------------------------------------------------------------------------------

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "AFTConfig":
        """A named configuration of the paper (`enwik8-local-32`, `imagenet-conv-tiny-32-11`, ...) or a small CPU
        size (`cpu-text-local`, `cpu-image-conv`, ...), with any field overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}.")
        known = set(cls.__annotations__) | set(PreTrainedConfig().to_dict()) | {"num_labels", "id2label", "label2id"}
        unknown = sorted(set(overrides) - known)
        if unknown:  # a misspelt override would otherwise be kept silently and change nothing
            hints = "; ".join(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                              for key in unknown for close in [difflib.get_close_matches(key, sorted(known), 1)])
            raise ValueError(f"unknown config field(s) {hints}; AFTConfig's fields are listed in its docstring.")
        kwargs = copy.deepcopy(PRESETS[name])
        kwargs.update(overrides)
        return cls(**kwargs)

    @staticmethod
    def preset_names() -> list[str]:
        return sorted(PRESETS)


__all__ = ["AFTConfig", "PRESETS", "AFT_VARIANTS"]
