# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The Attention Free Transformer (Zhai et al., 2021, arXiv 2105.14103) as transformers models.

Reading order: the AFT mixer (one function of ops.py per variant), the pre-LN block, the pretrained-model base
with its initialisation, the text backbone and its LM head, the image backbone and its classifier.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.generation import GenerationMixin
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    BaseModelOutputWithPooling,
    CausalLMOutputWithPast,
    ImageClassifierOutput,
)
from transformers.modeling_utils import PreTrainedModel

from .configuration_aft import AFTConfig
from .ops import (
    aft_conv1d,
    aft_conv2d,
    aft_full,
    aft_local_blocked,
    aft_simple,
    factorized_bias,
    factorized_local_bias_blocks,
    local_bias_blocks,
    reparameterize_conv_kernel,
)


def _check_length(config: AFTConfig, length: int, what: str = "sequence") -> None:
    if config.has_absolute_positions and length > config.max_position_embeddings:
        raise ValueError(
            f"the {what} has {length} tokens but this AFT-{config.aft_variant} model learned positions only up to "
            f"max_position_embeddings={config.max_position_embeddings}; truncate the input, or resize the position "
            "biases to a longer maximum (python -m conversion.resize_positions) and fine-tune."
        )


def _check_attention_mask(attention_mask, batch: int, length: int):
    if attention_mask is None:
        return None
    if attention_mask.dim() != 2 or tuple(attention_mask.shape) != (batch, length):
        raise ValueError(
            f"attention_mask has shape {tuple(attention_mask.shape)}; expected (batch, sequence) = ({batch}, {length}), "
            "1 for real tokens and 0 for padding."
        )
    return attention_mask


class AFTMixer(nn.Module):
    """The AFT layer: Q, K, V projections, the AFT operator of the configured variant, the output projection.

    Parameters that only the variant needs: w = U V^T (or a dense w) for full and local, the per-head kernel with its
    re-parameterisation (gamma, beta, zero at init so that AFT-conv starts as AFT-simple) for conv.
    """

    def __init__(self, config: AFTConfig, spatial: bool = False):
        super().__init__()
        self.config = config
        self.variant = config.aft_variant
        self.causal = config.causal
        self.spatial = spatial
        d = config.hidden_size
        self.num_heads = config.num_heads if self.variant == "conv" else 1
        self.head_dim = d // self.num_heads
        self.q_proj = nn.Linear(d, d)
        # AFT-conv has one key per head (Section 3.4), the others one per channel.
        self.k_proj = nn.Linear(d, self.num_heads if self.variant == "conv" else d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)
        positions = config.max_position_embeddings
        if self.variant in ("full", "local"):
            if config.position_bias_dim > 0:
                self.position_bias_u = nn.Parameter(torch.empty(positions, config.position_bias_dim))
                self.position_bias_v = nn.Parameter(torch.empty(positions, config.position_bias_dim))
            else:
                self.position_bias = nn.Parameter(torch.empty(positions, positions))
        elif self.variant == "conv":
            size = config.conv_kernel_size
            shape = (self.num_heads, size, size) if spatial else (self.num_heads, size)
            self.conv_weight = nn.Parameter(torch.empty(shape))
            self.conv_gamma = nn.Parameter(torch.empty(self.num_heads))
            self.conv_beta = nn.Parameter(torch.empty(self.num_heads))

    def _dense_bias(self, length: int) -> torch.Tensor:
        if self.config.position_bias_dim > 0:
            return factorized_bias(self.position_bias_u[:length], self.position_bias_v[:length])  # (T, T)
        return self.position_bias[:length, :length]

    def _local_bias(self, length: int) -> torch.Tensor:
        # Only the band of w inside the window is ever formed: T*C*d' work, not T*T.
        window = self.config.local_window
        if self.config.position_bias_dim > 0:
            u, v = self.position_bias_u[:length], self.position_bias_v[:length]
            return factorized_local_bias_blocks(u, v, window, self.causal)
        return local_bias_blocks(self.position_bias[:length, :length], window, self.causal)

    def conv_kernel(self) -> torch.Tensor:
        return reparameterize_conv_kernel(self.conv_weight, self.conv_gamma, self.conv_beta)

    def forward(self, hidden_states, attention_mask=None, grid=None):
        batch, length, _ = hidden_states.shape  # (B, T, D)
        q = self.q_proj(hidden_states)  # (B, T, D)
        k = self.k_proj(hidden_states)  # (B, T, D), or (B, T, H) for conv
        v = self.v_proj(hidden_states)  # (B, T, D)
        if self.variant == "full":
            y = aft_full(q, k, v, self._dense_bias(length), self.causal, attention_mask)
        elif self.variant == "local":
            y = aft_local_blocked(q, k, v, self._local_bias(length), self.causal, attention_mask)
        elif self.variant == "simple":
            y = aft_simple(q, k, v, self.causal, attention_mask)
        else:
            heads = (batch, length, self.num_heads, self.head_dim)
            q, v = q.view(heads), v.view(heads)  # (B, T, H, Dh)
            if self.spatial:
                y = aft_conv2d(q, k, v, self.conv_kernel(), grid)
            else:
                y = aft_conv1d(q, k, v, self.conv_kernel(), self.causal, attention_mask)
            y = y.reshape(batch, length, -1)
        return self.out_proj(y)  # (B, T, D)


class AFTMLP(nn.Module):
    def __init__(self, config: AFTConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class AFTBlock(GradientCheckpointingLayer):
    """Pre-LN residual block: x + mixer(LN(x)), then x + MLP(LN(x)), as in GPT-2 and DeiT."""

    def __init__(self, config: AFTConfig, layer_idx: int, spatial: bool = False):
        super().__init__()
        self.layer_idx = layer_idx
        self.ln_1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mixer = AFTMixer(config, spatial=spatial)
        self.ln_2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = AFTMLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, attention_mask=None, grid=None):
        hidden_states = hidden_states + self.dropout(self.mixer(self.ln_1(hidden_states), attention_mask, grid))
        return hidden_states + self.dropout(self.mlp(self.ln_2(hidden_states)))


class AFTPreTrainedModel(PreTrainedModel):
    config_class = AFTConfig
    config: AFTConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["AFTBlock"]
    _supports_sdpa = False

    def _init_weights(self, module):
        super()._init_weights(module)  # Linear, Embedding, LayerNorm
        std = self.config.initializer_range
        if isinstance(module, AFTMixer):
            if hasattr(module, "position_bias_u"):
                init.normal_(module.position_bias_u, mean=0.0, std=self.config.position_bias_init_std)
                init.normal_(module.position_bias_v, mean=0.0, std=self.config.position_bias_init_std)
            if hasattr(module, "position_bias"):
                init.normal_(module.position_bias, mean=0.0, std=self.config.position_bias_init_std)
            if hasattr(module, "conv_weight"):
                init.normal_(module.conv_weight, mean=0.0, std=std)
                # gamma = beta = 0: the kernel starts at 0 and AFT-conv at AFT-simple (Section 3.4).
                init.zeros_(module.conv_gamma)
                init.zeros_(module.conv_beta)
        elif isinstance(module, AFTVisionEmbeddings):
            if module.cls_token is not None:
                init.trunc_normal_(module.cls_token, mean=0.0, std=std)
            if module.position_embeddings is not None:
                init.trunc_normal_(module.position_embeddings, mean=0.0, std=std)


class AFTModel(AFTPreTrainedModel):
    """The text backbone: token (and optional position) embeddings, the blocks, a final layer norm."""

    def __init__(self, config: AFTConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.embed_positions = (
            nn.Embedding(config.max_position_embeddings, config.hidden_size)
            if config.text_position_embeddings
            else None
        )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = nn.ModuleList([AFTBlock(config, i) for i in range(config.num_hidden_layers)])
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache=None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast | tuple:
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds.")
        if input_ids is not None:
            if input_ids.dim() != 2:
                raise ValueError(f"input_ids must have shape (batch, sequence); got {tuple(input_ids.shape)}.")
            if input_ids.is_floating_point():
                raise TypeError(f"input_ids must hold integer token ids; got dtype {input_ids.dtype}.")
            inputs_embeds = self.embed_tokens(input_ids)  # (B, T, D)
        elif inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.config.hidden_size:
            raise ValueError(
                f"inputs_embeds must have shape (batch, sequence, {self.config.hidden_size}); "
                f"got {tuple(inputs_embeds.shape)}."
            )
        batch, length = inputs_embeds.shape[:2]
        _check_length(self.config, length)
        attention_mask = _check_attention_mask(attention_mask, batch, length)
        if attention_mask is not None and bool(attention_mask.all()):
            attention_mask = None  # nothing padded: the unmasked path is cheaper
        hidden_states = inputs_embeds
        if self.embed_positions is not None:
            if position_ids is None:
                position_ids = torch.arange(length, device=hidden_states.device).unsqueeze(0)  # (1, T)
            hidden_states = hidden_states + self.embed_positions(position_ids)
        hidden_states = self.dropout(hidden_states)

        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layers:
            hidden_states = layer(hidden_states, attention_mask)
            if output_hidden_states:
                all_hidden_states = all_hidden_states + (hidden_states,)
        hidden_states = self.norm(hidden_states)

        output = BaseModelOutputWithPast(last_hidden_state=hidden_states, hidden_states=all_hidden_states)
        return output if return_dict else output.to_tuple()


class AFTForCausalLM(AFTPreTrainedModel, GenerationMixin):
    """AFT language model: the text backbone and a linear head tied to the token embeddings."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: AFTConfig):
        super().__init__(config)
        if not config.causal:
            raise ValueError(
                "AFTForCausalLM needs a causal mixer, but the config has causal=False; set causal=True "
                "(a bidirectional model would see the tokens it predicts)."
            )
        self.model = AFTModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # No decoding state yet: generate() must not build a cache this model would leave empty.
        return False

    def prepare_inputs_for_generation(self, input_ids, next_sequence_length=None, inputs_embeds=None, **kwargs):
        # Without a decoding state every step re-reads the whole prefix, so generate() must not cut the input down
        # to the newest token (it does whenever use_cache is set).
        if inputs_embeds is not None:
            raise ValueError(
                "generate() from inputs_embeds needs AFT's decoding state, which this version does not have yet; "
                "pass input_ids instead."
            )
        kwargs.pop("cache", None)
        return super().prepare_inputs_for_generation(input_ids, next_sequence_length=None, **kwargs)

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        cache=None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast | tuple:
        r"""
        labels: token ids of shape (batch, sequence); the model shifts them, -100 is ignored.
        logits_to_keep: if an int n > 0, logits only for the last n positions (generation needs one); if a tensor,
            the positions to keep.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        hidden_states = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])  # (B, T_keep, vocab)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        output = CausalLMOutputWithPast(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return output if return_dict else output.to_tuple()


class AFTVisionEmbeddings(nn.Module):
    """DeiT-style patch embedding; a class token and position embeddings where the variant uses them."""

    def __init__(self, config: AFTConfig):
        super().__init__()
        self.config = config
        self.grid = (config.image_size // config.patch_size,) * 2
        self.patch_embeddings = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )
        use_cls = config.image_pooling == "cls"
        self.cls_token = nn.Parameter(torch.empty(1, 1, config.hidden_size)) if use_cls else None
        tokens = config.num_patches + int(use_cls)
        self.num_tokens = tokens
        self.position_embeddings = (
            nn.Parameter(torch.empty(1, tokens, config.hidden_size)) if config.image_position_embeddings else None
        )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        expected = (self.config.num_channels, self.config.image_size, self.config.image_size)
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"pixel_values has shape {tuple(pixel_values.shape)}; expected (batch, {expected[0]}, {expected[1]}, "
                f"{expected[2]}). Resize the images with the model's image processor."
            )
        if not pixel_values.is_floating_point():
            raise TypeError(f"pixel_values must be floating point; got {pixel_values.dtype} (use the image processor).")
        pixel_values = pixel_values.to(self.patch_embeddings.weight.dtype)
        x = self.patch_embeddings(pixel_values).flatten(2).transpose(1, 2)  # (B, N, D)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + N, D)
        if self.position_embeddings is not None:
            x = x + self.position_embeddings
        return self.dropout(x)


class AFTVisionModel(AFTPreTrainedModel):
    """The image backbone: patch embeddings, bidirectional blocks (2-D AFT-conv on the patch grid), a final norm."""

    main_input_name = "pixel_values"

    def __init__(self, config: AFTConfig):
        super().__init__(config)
        if config.causal:
            raise ValueError(
                "AFT image models mix bidirectionally, but the config has causal=True; "
                "pass causal=False, or start from an image preset such as AFTConfig.from_preset('cpu-image-conv')."
            )
        self.embeddings = AFTVisionEmbeddings(config)
        _check_length(config, self.embeddings.num_tokens, what="image")
        self.layers = nn.ModuleList(
            [AFTBlock(config, i, spatial=config.aft_variant == "conv") for i in range(config.num_hidden_layers)]
        )
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.patch_embeddings

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        if pixel_values is None:
            raise ValueError("pixel_values is required (batch, channels, height, width).")
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        hidden_states = self.embeddings(pixel_values)  # (B, N(+1), D)
        grid = self.embeddings.grid
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layers:
            hidden_states = layer(hidden_states, None, grid)
            if output_hidden_states:
                all_hidden_states = all_hidden_states + (hidden_states,)
        hidden_states = self.norm(hidden_states)
        if self.config.image_pooling == "cls":
            pooled = hidden_states[:, 0]  # (B, D)
        else:
            pooled = hidden_states.mean(dim=1)  # (B, D): global average pooling
        output = BaseModelOutputWithPooling(
            last_hidden_state=hidden_states, pooler_output=pooled, hidden_states=all_hidden_states
        )
        return output if return_dict else output.to_tuple()


class AFTForImageClassification(AFTPreTrainedModel):
    """AFT image classifier (Section 4.1): the image backbone and a linear classifier of the pooled features."""

    main_input_name = "pixel_values"

    def __init__(self, config: AFTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = AFTVisionModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    def get_input_embeddings(self):
        return self.model.get_input_embeddings()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.model(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(outputs.pooler_output)  # (B, num_labels)
        loss = None
        if labels is not None:
            loss = self.loss_function(labels, logits, self.config, **kwargs)
        output = ImageClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return output if return_dict else output.to_tuple()


# `save_pretrained` writes an `auto_map` and copies this code next to the weights, so a saved folder also loads
# with trust_remote_code=True where this package is not installed.
AFTConfig.register_for_auto_class()
AFTModel.register_for_auto_class("AutoModel")
AFTForCausalLM.register_for_auto_class("AutoModelForCausalLM")
AFTForImageClassification.register_for_auto_class("AutoModelForImageClassification")

__all__ = [
    "AFTPreTrainedModel",
    "AFTModel",
    "AFTForCausalLM",
    "AFTVisionModel",
    "AFTForImageClassification",
    "AFTMixer",
    "AFTBlock",
]
