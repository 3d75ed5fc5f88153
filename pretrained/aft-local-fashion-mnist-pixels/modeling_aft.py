# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The Attention Free Transformer (Zhai et al., 2021, arXiv 2105.14103) as transformers models.

Reading order: the AFT mixer (one function of ops.py per variant), the pre-LN block, the pretrained-model base
with its initialisation, the text backbone and its LM head, the image backbone and its classifier.
"""

from __future__ import annotations

import contextvars
import json
import os
import re

import torch
from safetensors import safe_open
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import DynamicCache, LinearAttentionCacheLayerMixin
from transformers.generation import GenerationMixin
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    BaseModelOutputWithPooling,
    CausalLMOutputWithPast,
    ImageClassifierOutput,
)
from transformers.modeling_utils import PreTrainedModel
from transformers.utils import cached_file

from .configuration_aft import AFTConfig
from .ops import (
    AFTState,
    aft_conv1d,
    aft_conv1d_recurrent,
    aft_conv2d,
    aft_full,
    aft_full_factorized,
    aft_full_recurrent,
    aft_local_blocked,
    aft_local_recurrent,
    aft_simple,
    aft_simple_recurrent,
    factorized_bias,
    factorized_local_bias_blocks,
    local_bias_blocks,
    reparameterize_conv_kernel,
)
from .ops_export import export_conv1d, export_full, export_local, export_simple, prompt_state


def _exporting() -> bool:
    """True while torch.export (or the ONNX exporter on top of it) traces the model: the checks on tensor values are
    left to the caller then, and the causal mixer takes the export-safe algorithm (ops_export.py), the one a graph
    with a dynamic length can hold."""
    return torch.compiler.is_exporting()


def _check_length(config: AFTConfig, length: int, what: str = "sequence") -> None:
    if config.has_absolute_positions and length > config.max_position_embeddings:
        raise ValueError(
            f"the {what} has {length} tokens but this AFT-{config.aft_variant} model learned positions only up to "
            f"max_position_embeddings={config.max_position_embeddings}; truncate the input, or resize the position "
            "biases to a longer maximum (python -m conversion.resize_positions) and fine-tune."
        )


def _check_attention_mask(attention_mask, batch: int, length: int, has_past: bool = False):
    """The mask of the new tokens. With a decoding state the mask may also cover the tokens already read (as
    generate() passes it): then its last `length` columns are the new tokens'."""
    if attention_mask is None:
        return None
    ok = attention_mask.dim() == 2 and attention_mask.shape[0] == batch
    ok = ok and (attention_mask.shape[1] == length or (has_past and attention_mask.shape[1] > length))
    if not ok:
        raise ValueError(
            f"attention_mask has shape {tuple(attention_mask.shape)}; expected (batch, sequence) = "
            f"({batch}, {length}), "
            "1 for real tokens and 0 for padding."
        )
    return attention_mask[:, -length:]


class AFTMixer(nn.Module):
    """The AFT layer: Q, K, V projections, the AFT operator of the configured variant, the output projection.

    Parameters that only the variant needs: w = U V^T (or a dense w) for full and local, the per-head kernel with its
    re-parameterisation (gamma, beta, zero at init so that AFT-conv starts as AFT-simple) for conv.

    With a cache the causal mixer also decodes through the operators' recurrent form (ops.aft_*_recurrent): a prompt
    runs through the parallel form and leaves a state behind, more tokens run in parallel from that state and a
    single token as one step. The state of simple, local and conv is constant in size (running sums, the last
    s - 1 keys and values, the count of tokens), full's holds every past key. The mixer only reads and writes it.
    """

    def __init__(self, config: AFTConfig, spatial: bool = False, layer_idx: int = 0):
        super().__init__()
        self.config = config
        self.variant = config.aft_variant
        self.causal = config.causal
        self.spatial = spatial
        self.layer_idx = layer_idx
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

    # --------------------------------------------------------------------------------------------------------
    # Position biases
    # --------------------------------------------------------------------------------------------------------

    def _bias(self, rows: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """w[rows, keys] for position index tensors broadcast against each other: (..., R) x (..., K) -> (..., R, K)."""
        if self.config.position_bias_dim > 0:
            return self.position_bias_u[rows] @ self.position_bias_v[keys].transpose(-1, -2)
        return self.position_bias[rows.unsqueeze(-1), keys.unsqueeze(-2)]

    def _dense_bias(self, length: int, positions) -> torch.Tensor:
        if positions is None:
            if self.config.position_bias_dim > 0:
                return factorized_bias(self.position_bias_u[:length], self.position_bias_v[:length])  # (T, T)
            return self.position_bias[:length, :length]
        return self._bias(positions, positions)  # (B, T, T): every sequence at its own positions

    def _factors(self, length: int, positions):
        """U, V of w = U V^T at the tokens' positions: (T, d'), or (B, T, d') with positions per sequence."""
        if positions is None:
            return self.position_bias_u[:length], self.position_bias_v[:length]
        return self.position_bias_u[positions], self.position_bias_v[positions]

    def _local_bias(self, length: int, positions) -> torch.Tensor:
        # Only the band of w inside the window is ever formed: T*C*d' work, not T*T.
        window = self.config.local_window
        if self.config.position_bias_dim > 0:
            return factorized_local_bias_blocks(*self._factors(length, positions), window, self.causal)
        return local_bias_blocks(self._dense_bias(length, positions), window, self.causal)

    def conv_kernel(self) -> torch.Tensor:
        return reparameterize_conv_kernel(self.conv_weight, self.conv_gamma, self.conv_beta)

    # --------------------------------------------------------------------------------------------------------
    # The parallel form
    # --------------------------------------------------------------------------------------------------------

    def _parallel(self, q, k, v, attention_mask, grid, positions):
        batch, length, _ = q.shape
        if self.causal and not self.spatial and _exporting():
            return self._parallel_for_export(q, k, v, attention_mask, positions)
        if self.variant == "full":
            if self.config.position_bias_dim > 0:  # w = U V^T formed a block of rows at a time, never kept whole
                u, w_v = self._factors(length, positions)
                return aft_full_factorized(q, k, v, u, w_v, self.causal, attention_mask)
            return aft_full(q, k, v, self._dense_bias(length, positions), self.causal, attention_mask)
        if self.variant == "local":
            return aft_local_blocked(q, k, v, self._local_bias(length, positions), self.causal, attention_mask)
        if self.variant == "simple":
            return aft_simple(q, k, v, self.causal, attention_mask)
        heads = (batch, length, self.num_heads, self.head_dim)
        if self.spatial:
            y = aft_conv2d(q.view(heads), k, v.view(heads), self.conv_kernel(), grid)
        else:
            y = aft_conv1d(q.view(heads), k, v.view(heads), self.conv_kernel(), self.causal, attention_mask)
        return y.flatten(2)  # (B, T, D)

    def _parallel_for_export(self, q, k, v, attention_mask, positions):
        """The causal parallel form as torch.export and ONNX record it (ops_export.py: no branch on tensor data or on
        the length; exact while the keys and biases of each channel span less than ops_export.RANGE_LIMIT)."""
        batch, length, _ = q.shape
        valid = (torch.ones(batch, length, dtype=torch.bool, device=q.device) if attention_mask is None
                 else attention_mask.bool())
        if positions is None:
            positions = torch.arange(length, device=q.device).expand(batch, length)
        if self.variant == "full":
            return export_full(q, k, v, self._position_table(), positions, valid)
        if self.variant == "local":
            return export_local(q, k, v, self._position_table(), self.config.local_window, positions, valid)
        if self.variant == "simple":
            return export_simple(q, k, v, positions, valid)
        heads = (batch, length, self.num_heads, self.head_dim)
        y = export_conv1d(q.view(heads), k, v.view(heads), self.conv_kernel(), positions, valid)
        return y.flatten(2)  # (B, T, D)

    def forward(self, hidden_states, attention_mask=None, grid=None, cache=None, positions=None):
        """hidden_states (B, T, D); attention_mask (B, T) of the new tokens; positions (B, T) of each token among
        the real tokens of its sequence, or None when they are 0..T-1 for every sequence."""
        q = self.q_proj(hidden_states)  # (B, T, D)
        k = self.k_proj(hidden_states)  # (B, T, D), or (B, T, H) for conv
        v = self.v_proj(hidden_states)  # (B, T, D)
        if cache is None or q.shape[0] * q.shape[1] == 0:  # no token at all: nothing to read, the state stays as is
            y = self._parallel(q, k, v, attention_mask, grid, positions)
        else:
            # The operator reads the new tokens on top of the state (a prompt, a chunk of one, one generated token)
            # and returns the next state; positions follow from the state's count and the mask.
            y, state = self._recurrent(q, k, v, attention_mask, self._read_state(cache))
            self._write_state(cache, state, new_tokens=q.shape[1])
        return self.out_proj(y)  # (B, T, D)

    # --------------------------------------------------------------------------------------------------------
    # The recurrent form: the operators own the maths (ops.aft_*_recurrent), the mixer its cache I/O
    # --------------------------------------------------------------------------------------------------------

    def _position_table(self):
        """The position biases as the recurrent operators read them: (U, V) of w = U V^T, or the dense w."""
        if self.config.position_bias_dim > 0:
            return self.position_bias_u, self.position_bias_v
        return self.position_bias

    def _recurrent(self, q, k, v, attention_mask, state):
        kwargs = dict(key_padding_mask=attention_mask, initial_state=state, output_final_state=True)
        if self.variant == "full":
            return aft_full_recurrent(q, k, v, self._position_table(), **kwargs)
        if self.variant == "local":
            return aft_local_recurrent(q, k, v, self._position_table(), self.config.local_window, **kwargs)
        if self.variant == "simple":
            return aft_simple_recurrent(q, k, v, **kwargs)
        heads = q.shape[:2] + (self.num_heads, self.head_dim)
        y, state = aft_conv1d_recurrent(q.view(heads), k, v.view(heads), self.conv_kernel(), **kwargs)
        return y.flatten(2), state  # (B, T, D)

    @property
    def state_window(self) -> int:
        """How many past keys the decoding state keeps beside its running sums (full: all of them)."""
        if self.variant == "local":
            return self.config.local_window - 1
        if self.variant == "conv":
            return self.config.conv_kernel_size - 1
        return 0

    # Layout of the recurrent state in a transformers LinearAttentionLayer (config.number_of_conv_states slots):
    # recurrent_states[0..2] hold num, den and max, recurrent_states[3] the (count, steps) of each sequence, and
    # conv_states[0] the window (B, s - 1, Dk + D + 1) of keys, values and a flag for filled slots. Full keeps its
    # keys (with a last channel marking real tokens, so positions survive beam reordering) and values with
    # cache.update, as a key/value cache.
    _NUM, _DEN, _MAX, _META = range(4)

    def state_counts(self, cache):
        """(count (B,), steps) of the state: real tokens read per sequence and time steps read; None if empty."""
        if self.variant == "full":
            if len(cache.layers) <= self.layer_idx or not cache.layers[self.layer_idx].is_initialized:
                return None
            keys = cache.layers[self.layer_idx].keys
            return (keys[:, 0, :, -1] > 0).sum(1), keys.shape[-2]
        layer = self._linear_layer(cache)
        if not layer.has_previous_state[0]:
            return None
        meta = layer.recurrent_states[self._META]
        return meta[:, 0], int(meta[0, 1])

    @property
    def _keys_dim(self) -> int:
        return self.num_heads if self.variant == "conv" else self.config.hidden_size

    def _read_state(self, cache) -> AFTState | None:
        counts = self.state_counts(cache)
        if counts is None:
            return None
        count, steps = counts
        layer = cache.layers[self.layer_idx]
        if self.variant == "full":
            keys, values = layer.keys[:, 0], layer.values[:, 0]  # (B, t, D + 1), (B, t, D)
            return AFTState(keys[..., :-1], values, keys[..., -1] > 0, count, steps)
        states = layer.recurrent_states
        running = (states[self._NUM], states[self._DEN], states[self._MAX])
        if self.state_window > 0:
            buffer = layer.conv_states[0]  # (B, s - 1, Dk + D + 1)
        else:
            buffer = running[0].new_zeros(len(count), 0, self._keys_dim + self.config.hidden_size + 1)
        dk = self._keys_dim
        values = buffer[..., dk:-1]
        if self.variant == "conv":
            values = values.unflatten(-1, (self.num_heads, self.head_dim))  # (B, s - 1, H, Dh)
        return AFTState(buffer[..., :dk], values, buffer[..., -1] > 0, count, steps, *running)

    def _write_state(self, cache, state: AFTState, new_tokens: int):
        if self.variant == "full":
            new = slice(-new_tokens, None)
            keys = torch.cat([state.keys, state.valid.unsqueeze(-1).to(state.keys.dtype)], dim=-1)[:, new]
            cache.update(keys.unsqueeze(1), state.values[:, new].unsqueeze(1), self.layer_idx)
            return
        layer = self._linear_layer(cache)
        steps = torch.full_like(state.count, state.steps)
        slots = (*state.running, torch.stack([state.count, steps], dim=1))
        for index, tensor in enumerate(slots):
            if not layer.is_recurrent_states_initialized[index]:
                layer.lazy_initialization(recurrent_states=tensor, state_idx=index)
            layer.recurrent_states[index] = tensor
        if self.state_window > 0:
            flag = state.valid.unsqueeze(-1).to(state.keys.dtype)
            buffer = torch.cat([state.keys, state.values.flatten(2), flag], dim=-1)  # (B, s - 1, Dk + D + 1)
            if not layer.is_conv_states_initialized[0]:
                layer.lazy_initialization(conv_states=buffer)
            layer.conv_states[0] = buffer
        layer.has_previous_state[0] = True

    # --------------------------------------------------------------------------------------------------------
    # The state as plain named tensors, for exported graphs (conversion/export_onnx.py), in the cache's layout above:
    # full "keys" (B, t, D + 1) (last channel 1 for a real token) and "values" (B, t, D); the others "num", "den",
    # "max", "count" (B,) and, with a window, "window" (B, s - 1, Dk + D + 1).
    # --------------------------------------------------------------------------------------------------------

    @property
    def state_names(self) -> tuple[str, ...]:
        if self.variant == "full":
            return ("keys", "values")
        return ("num", "den", "max", "count") + (("window",) if self.state_window > 0 else ())

    def cache_state_tensors(self, cache) -> dict[str, torch.Tensor]:
        """This layer's state in a cache as the exported graphs' named tensors (e.g. to hand a PyTorch prefill to
        decode_step.onnx)."""
        return self._state_tensors(self._read_state(cache))

    def _state_tensors(self, state: AFTState) -> dict[str, torch.Tensor]:
        if self.variant == "full":
            flag = state.valid.unsqueeze(-1).to(state.keys.dtype)
            return {"keys": torch.cat([state.keys, flag], dim=-1), "values": state.values}
        tensors = {"num": state.num, "den": state.den, "max": state.max, "count": state.count}
        if self.state_window > 0:
            flag = state.valid.unsqueeze(-1).to(state.keys.dtype)
            tensors["window"] = torch.cat([state.keys, state.values.flatten(2), flag], dim=-1)
        return tensors

    def _state_of(self, tensors: dict[str, torch.Tensor]) -> AFTState:
        if self.variant == "full":
            keys, flag = tensors["keys"][..., :-1], tensors["keys"][..., -1] > 0
            return AFTState(keys, tensors["values"], flag, flag.sum(dim=1), 0)
        running = (tensors["num"], tensors["den"], tensors["max"])
        count = tensors["count"]
        dk = self._keys_dim
        buffer = tensors.get("window")
        if buffer is None:
            buffer = running[0].new_zeros(count.shape[0], 0, dk + self.config.hidden_size + 1)
        values = buffer[..., dk:-1]
        if self.variant == "conv":
            values = values.unflatten(-1, (self.num_heads, self.head_dim))  # (B, s - 1, H, Dh)
        return AFTState(buffer[..., :dk], values, buffer[..., -1] > 0, count, 0, *running)

    def export_prefill(self, hidden_states, valid, positions):
        """A left-padded prompt (valid (B, T) bool, positions (B, T) among the real tokens) as an exported graph
        reads it: the mixer's output (B, T, D) and the state after it as named tensors."""
        q, k, v = self.q_proj(hidden_states), self.k_proj(hidden_states), self.v_proj(hidden_states)
        y = self._parallel_for_export(q, k, v, valid, positions)
        if self.variant == "conv":
            v = v.unflatten(-1, (self.num_heads, self.head_dim))
        if self.variant == "full":
            state = AFTState(k, v, valid, valid.sum(dim=1), 0)
        else:
            (wk, wv, wvalid), running = prompt_state(k, v, valid, self.state_window, self.variant == "conv")
            state = AFTState(wk, wv, wvalid, valid.sum(dim=1), 0, *running)
        return self.out_proj(y), self._state_tensors(state)

    def export_step(self, hidden_states, tensors: dict[str, torch.Tensor]):
        """One real token per sequence (B, 1, D) on a state given as named tensors: the output and the next state."""
        q, k, v = self.q_proj(hidden_states), self.k_proj(hidden_states), self.v_proj(hidden_states)
        y, state = self._recurrent(q, k, v, None, self._state_of(tensors))
        return self.out_proj(y), self._state_tensors(state)

    def _linear_layer(self, cache):
        layer = cache.layers[self.layer_idx] if len(cache.layers) > self.layer_idx else None
        if not isinstance(layer, LinearAttentionCacheLayerMixin):
            raise ValueError(
                f"AFT-{self.variant} keeps a recurrent decoding state, but the cache's layer {self.layer_idx} is "
                f"{type(layer).__name__}; pass DynamicCache(config=model.config) (or let generate() build it)."
            )
        return layer


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
        self.mixer = AFTMixer(config, spatial=spatial, layer_idx=layer_idx)
        self.ln_2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = AFTMLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states, attention_mask=None, grid=None, cache=None, positions=None):
        mixed = self.mixer(self.ln_1(hidden_states), attention_mask, grid, cache=cache, positions=positions)
        hidden_states = hidden_states + self.dropout(mixed)
        return hidden_states + self.dropout(self.mlp(self.ln_2(hidden_states)))


# ----------------------------------------------------------------------------------------------------------------
# Loading: the config is checked against the checkpoint's tensor shapes before the model is built
# ----------------------------------------------------------------------------------------------------------------

# The checkpoint tensors whose size follows max_position_embeddings (whatever the class's key prefix).
_POSITION_BIAS_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.mixer\.(position_bias_u|position_bias_v|position_bias)$")
_POSITION_EMBEDDING_KEY = re.compile(r"(?:^|\.)embed_positions\.weight$")
# What from_pretrained is loading, for the model's __init__: only there is the final config (config.json with the
# caller's overrides) known, and only there can a wrong one be refused before any parameter exists.
_LOADING: contextvars.ContextVar[dict | None] = contextvars.ContextVar("aft_loading", default=None)


def _with_variant(name: str, variant: str | None) -> str:
    """model.safetensors -> model.{variant}.safetensors, as transformers names a weights variant."""
    if not variant:
        return name
    parts = name.split(".")
    return ".".join(parts[:-1] + [variant] + parts[-1:])


def _locate(source: str, name: str, loading: dict) -> str | None:
    """The local path of a checkpoint file, or None. Never downloads: from_pretrained has already fetched what it
    loads into the cache, and a check that needed a download would cost more than the mistake it catches."""
    subfolder = loading.get("subfolder") or ""
    if os.path.isdir(source):
        path = os.path.join(source, subfolder, name)
        return path if os.path.isfile(path) else None
    try:
        return cached_file(
            source, name, subfolder=subfolder, cache_dir=loading.get("cache_dir"),
            revision=loading.get("revision"), local_files_only=True,
            _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False,
        )
    except Exception:  # not cached, gated, an odd repository id: leave every report to from_pretrained
        return None


def _checkpoint_shapes(loading: dict) -> dict[str, tuple[str, tuple[int, ...]]] | None:
    """{key: (file name, shape)} of the checkpoint's position tensors, read from the safetensors headers alone (no
    tensor data is read); None where there is nothing cheap to read (no safetensors file, a GGUF file), and
    from_pretrained reports what it finds itself. A corrupt header is refused here, naming the file."""
    state_dict = loading.get("state_dict")
    if state_dict is not None:
        return {k: ("state_dict", tuple(v.shape)) for k, v in state_dict.items() if _is_position_key(k)}
    source = loading.get("source")
    if source is None or loading.get("gguf_file") or loading.get("use_safetensors") is False:
        return None
    source, variant = str(source), loading.get("variant")
    single = _locate(source, _with_variant("model.safetensors", variant), loading)
    if single is not None:
        files = {os.path.basename(single): single}
    else:
        index_name = _with_variant("model.safetensors.index.json", variant)
        index = _locate(source, index_name, loading)
        if index is None:
            return None
        try:
            with open(index, encoding="utf-8") as handle:
                weight_map = json.load(handle)["weight_map"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        wanted = sorted({name for key, name in weight_map.items() if _is_position_key(key)})
        files = {name: _locate(source, name, loading) for name in wanted}
        if None in files.values():
            return None
    shapes = {}
    for name, path in files.items():
        try:
            with safe_open(path, framework="pt") as handle:
                for key in handle.keys():
                    if _is_position_key(key):
                        shapes[key] = (name, tuple(handle.get_slice(key).get_shape()))
        except Exception as err:  # safetensors' own message ("header too small") names no file
            raise ValueError(
                f"{path} is not a readable safetensors file ({type(err).__name__}: {err}); save or download the "
                "checkpoint again."
            ) from None
    return shapes


def _is_position_key(key: str) -> bool:
    return bool(_POSITION_BIAS_KEY.search(key) or _POSITION_EMBEDDING_KEY.search(key))


def _check_checkpoint_positions(config: AFTConfig, shapes: dict, ignore_mismatched_sizes: bool = False) -> None:
    """Refuse a config whose position tables do not fit the checkpoint's: a wrong max_position_embeddings would
    allocate its tables (T^2 for a dense bias) before transformers' size check fails, and a dense bias against a
    factorised one (or the reverse) would be re-initialised at random with only a warning. With
    ignore_mismatched_sizes=True a different length is the caller's choice (those tables start afresh); a different
    layout is refused all the same, since no size is involved."""
    length, rank = config.max_position_embeddings, config.position_bias_dim
    resize = "or resize the weights to the new length with python -m conversion.resize_positions"
    for key, (file, shape) in sorted(shapes.items()):
        bias = _POSITION_BIAS_KEY.search(key)
        if bias and config.aft_variant in ("full", "local") and len(shape) == 2:
            dense = bias.group(2) == "position_bias"
            if dense and rank > 0:
                raise ValueError(
                    f"the config says position_bias_dim={rank} (a factorised bias w = U V^T) but {file} holds the "
                    f"dense bias {key} of shape {shape} (position_bias_dim=0); set position_bias_dim to 0 in "
                    "config.json."
                )
            if not dense and rank == 0:
                raise ValueError(
                    f"the config says position_bias_dim=0 (a dense T x T bias) but {file} holds the factorised {key} "
                    f"of shape {shape} (position_bias_dim={shape[1]}); set position_bias_dim to {shape[1]} in "
                    "config.json."
                )
            if ignore_mismatched_sizes:
                continue
            if shape[0] != length:
                raise ValueError(
                    f"the config says max_position_embeddings={length} but {file} holds the position bias {key} for "
                    f"{shape[0]} positions (shape {shape}); set max_position_embeddings to {shape[0]} in config.json, "
                    f"{resize}."
                )
            if not dense and shape[1] != rank:
                raise ValueError(
                    f"the config says position_bias_dim={rank} but {file} holds {key} of shape {shape} "
                    f"(position_bias_dim={shape[1]}); set position_bias_dim to {shape[1]} in config.json."
                )
        elif (_POSITION_EMBEDDING_KEY.search(key) and config.text_position_embeddings and len(shape) == 2
              and shape[0] != length and not ignore_mismatched_sizes):
            raise ValueError(
                f"the config says max_position_embeddings={length} but {file} holds the position embeddings {key} "
                f"for {shape[0]} positions (shape {shape}); set max_position_embeddings to {shape[0]} in config.json, "
                f"{resize}."
            )


def _check_position_table_size(config: AFTConfig, limit: int | None) -> None:
    """Refuse, before allocating, position tables larger than `limit` bytes: at such sizes a typo in
    max_position_embeddings (or a dense bias asked for by position_bias_dim=0) is likelier than intent."""
    size = config.position_table_bytes()
    if limit is None or size <= limit:
        return
    if config.aft_variant not in ("full", "local"):
        kind = "position embeddings"
    elif config.position_bias_dim == 0:
        kind = f"a dense T x T position bias (position_bias_dim=0) in each of {config.num_hidden_layers} layers"
    else:
        kind = f"position biases U, V of T x {config.position_bias_dim} in each of {config.num_hidden_layers} layers"
    raise ValueError(
        f"max_position_embeddings={config.max_position_embeddings} with {kind} needs {size / 1e9:.1f} GB of "
        f"position tables (float32), above the limit of {limit / 1e9:.1f} GB; use a "
        "smaller max_position_embeddings or a factorised bias (position_bias_dim > 0), or to build it anyway set "
        "AFTPreTrainedModel.max_position_table_bytes higher (None lifts the limit)."
    )


class AFTPreTrainedModel(PreTrainedModel):
    config_class = AFTConfig
    config: AFTConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["AFTBlock"]
    _supports_sdpa = False
    # The most bytes (float32) of position tables a model is built with (see AFTConfig.position_table_bytes); None
    # lifts the limit. 2 GB is 40 times the largest preset's (enwik8-local-32: 50 MB) and holds a dense bias up to
    # T = 22,000 in one layer, yet refuses what a mistyped max_position_embeddings would allocate (100 million
    # positions with d' = 4: 3.2 GB a layer).
    max_position_table_bytes: int | None = 2_000_000_000
    # With a cache, a causal text longer than this is read in pieces of this many tokens, each from the state the
    # ones before left: prefill memory stays that of one piece however long the prompt (simple, local and conv; full
    # keeps every key anyway). None reads any text in one pass.
    prefill_chunk_size: int | None = 4096

    def __init__(self, config: AFTConfig, *inputs, **kwargs):
        # Runs before any parameter exists (every subclass calls it first), on the final config.
        loading = _LOADING.get()
        if loading is not None and not loading["checked"]:
            loading["checked"] = True  # the outer model checks; the backbone it builds inside has nothing to add
            shapes = _checkpoint_shapes(loading)
            if shapes:
                _check_checkpoint_positions(config, shapes, bool(loading.get("ignore_mismatched_sizes")))
        _check_position_table_size(config, self.max_position_table_bytes)
        super().__init__(config, *inputs, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """transformers' from_pretrained, with the config checked against the checkpoint's position tensors (their
        shapes, read from the safetensors headers) before the model is built: a wrong max_position_embeddings or
        position_bias_dim is refused with the fix instead of allocating its tables first."""
        names = ("subfolder", "variant", "cache_dir", "revision", "state_dict", "gguf_file", "use_safetensors",
                 "ignore_mismatched_sizes")
        loading = {"source": pretrained_model_name_or_path, "checked": False, **{k: kwargs.get(k) for k in names}}
        token = _LOADING.set(loading)
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        finally:
            _LOADING.reset(token)

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
        # No padding_idx: the attention mask keeps padding out of the state, and the byte tokenizer's one special id
        # (0) is pad, bos and eos at once; a padding row would freeze the start token's embedding at zero.
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
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
            outside = (input_ids < 0) | (input_ids >= self.config.vocab_size)
            if not _exporting() and bool(outside.any()):  # nn.Embedding would say only "index out of range in self"
                row, col = (int(i) for i in outside.nonzero()[0])
                raise ValueError(
                    f"input_ids[{row}, {col}] = {int(input_ids[row, col])} is not a token id of this model "
                    f"(vocab_size={self.config.vocab_size}: ids 0..{self.config.vocab_size - 1}); encode the text "
                    "with the model's own tokenizer."
                )
        elif inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.config.hidden_size:
            raise ValueError(
                f"inputs_embeds must have shape (batch, sequence, {self.config.hidden_size}); "
                f"got {tuple(inputs_embeds.shape)}."
            )
        given = input_ids if input_ids is not None else inputs_embeds
        batch, length = given.shape[:2]
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if not self.config.causal:
            use_cache = False  # a bidirectional model has no decoding state
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        past = self.past_state_count(cache)  # (B,) real tokens already in the state, or None
        attention_mask = _check_attention_mask(attention_mask, batch, length, past is not None)
        positions = self._positions(attention_mask, past, position_ids, batch, length, given.device)
        if positions is None:
            _check_length(self.config, length)
        elif not _exporting() and positions.numel() > 0:  # (B, 0) or (0, T): no position read
            real = positions if attention_mask is None else positions.masked_fill(attention_mask == 0, 0)
            _check_length(self.config, int(real.max()) + 1)
        if attention_mask is not None and not _exporting() and bool(attention_mask.all()):
            attention_mask = None  # nothing padded: the unmasked path is cheaper
        chunk = self.prefill_chunk_size
        if use_cache and chunk and length > chunk and self.config.aft_variant != "full":
            return self._forward_in_chunks(
                input_ids, inputs_embeds, attention_mask, position_ids, cache, output_hidden_states, return_dict,
                keep_last=kwargs.get("_keep_last", 0),
            )
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # (B, T, D)

        hidden_states = inputs_embeds
        if self.embed_positions is not None:
            index = positions if positions is not None else torch.arange(length, device=hidden_states.device)
            hidden_states = hidden_states + self.embed_positions(index)
        hidden_states = self.dropout(hidden_states)

        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layers:
            hidden_states = layer(hidden_states, attention_mask, cache=cache, positions=positions)
            if output_hidden_states:
                all_hidden_states = all_hidden_states + (hidden_states,)
        hidden_states = self.norm(hidden_states)

        output = BaseModelOutputWithPast(
            last_hidden_state=hidden_states, cache=cache if use_cache else None, hidden_states=all_hidden_states
        )
        return output if return_dict else output.to_tuple()

    def _forward_in_chunks(self, input_ids, inputs_embeds, attention_mask, position_ids, cache, output_hidden_states,
                           return_dict, keep_last: int = 0):
        """A long text read with a cache in pieces of prefill_chunk_size tokens, each from the state the ones before
        left (the operators' parallel prefill from a state): the same outputs and state as one pass, with the
        memory of one piece. keep_last > 0 keeps only the last keep_last positions of last_hidden_state (what an LM
        head that keeps that many logits reads), so nothing of size T x D is held either."""
        given = input_ids if input_ids is not None else inputs_embeds
        chunk, length = self.prefill_chunk_size, given.shape[1]
        last, layers = None, None
        for start in range(0, length, chunk):
            piece = slice(start, start + chunk)
            out = self.forward(
                input_ids=None if input_ids is None else input_ids[:, piece],
                inputs_embeds=None if inputs_embeds is None else inputs_embeds[:, piece],
                attention_mask=None if attention_mask is None else attention_mask[:, piece],
                position_ids=None if position_ids is None else position_ids[..., piece],
                cache=cache,
                use_cache=True,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
            hidden = out.last_hidden_state  # (B, chunk, D)
            last = hidden if last is None else torch.cat([last, hidden], dim=1)
            if keep_last:
                last = last[:, -keep_last:]
            if output_hidden_states:
                layers = out.hidden_states if layers is None else tuple(
                    torch.cat([a, b], dim=1) for a, b in zip(layers, out.hidden_states)
                )
        output = BaseModelOutputWithPast(last_hidden_state=last, cache=cache, hidden_states=layers)
        return output if return_dict else output.to_tuple()

    def past_state_count(self, cache) -> torch.Tensor | None:
        """How many real tokens of each sequence the cache's state has read (None: no state yet)."""
        if cache is None or not self.layers:
            return None
        counts = self._first_mixer().state_counts(cache)
        return None if counts is None else counts[0]

    def past_state_steps(self, cache) -> int:
        """How many time steps (padding included) the cache's state has read."""
        if cache is None or not self.layers:
            return 0
        counts = self._first_mixer().state_counts(cache)
        return 0 if counts is None else counts[1]

    def _first_mixer(self) -> "AFTMixer":
        """The first layer's mixer, unwrapped: peft's LoRA on the mixer's own parameters (target_parameters, e.g.
        the position-bias factors U, V) replaces it by a wrapper that does not forward state_counts."""
        mixer = self.layers[0].mixer
        return mixer.get_base_layer() if hasattr(mixer, "get_base_layer") else mixer

    @staticmethod
    def _positions(attention_mask, past, position_ids, batch, length, device):
        """The position of every new token among the real tokens of its sequence; None when that is 0..T-1 for
        every sequence (the shared, cheaper path)."""
        if position_ids is not None:
            positions = position_ids.expand(batch, length)
        elif attention_mask is None and past is None:
            return None
        else:
            mask = attention_mask if attention_mask is not None else torch.ones(batch, length, device=device)
            positions = torch.cumsum(mask.long(), dim=1) - 1  # (B, T)
            if past is not None:
                positions = positions + past.unsqueeze(1)
        positions = positions.clamp_min(0)
        if past is None and not _exporting() and bool((positions == torch.arange(length, device=device)).all()):
            return None
        return positions


class AFTForCausalLM(AFTPreTrainedModel, GenerationMixin):
    """AFT language model: the text backbone and a linear head tied to the token embeddings."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    # A recurrent state cannot be rolled back to a shorter text, which assisted generation needs.
    _is_stateful = True

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

    def prepare_inputs_for_generation(
        self, input_ids, next_sequence_length=None, cache=None, inputs_embeds=None, **kwargs
    ):
        # generate() cuts the input down to the unread tokens itself for key/value caches, but not for recurrent
        # ones: when a generation continues from a returned state, hand the model only what the state has not read.
        # In its first iteration generate() feeds inputs_embeds (the whole text's, when continuing) instead of
        # input_ids, so those are what must be cut then: re-reading them on top of the state would count the text
        # twice.
        from_embeds = inputs_embeds is not None and bool(kwargs.get("is_first_iteration"))
        given, name = (inputs_embeds, "inputs_embeds") if from_embeds else (input_ids, "input_ids")
        steps = self.model.past_state_steps(cache)
        if given.shape[1] == 0 and not steps:
            raise ValueError(
                f"generate() needs at least one prompt token to predict from, but {name} has shape "
                f"{tuple(given.shape)}; pass a non-empty prompt, or call generate() without input_ids and with "
                "bos_token_id set (in the generation config or as an argument) so that it starts from that token."
            )
        if next_sequence_length is None and steps:
            next_sequence_length = given.shape[1] - steps
        if next_sequence_length is not None and next_sequence_length <= 0:  # `[:, -0:]` would re-read everything
            raise ValueError(
                f"the cache has already read {steps} tokens but {name} holds {given.shape[1]}; pass the whole sequence "
                "(prompt and generated tokens) together with the cache returned for it."
            )
        return super().prepare_inputs_for_generation(
            input_ids, next_sequence_length=next_sequence_length, cache=cache, inputs_embeds=inputs_embeds, **kwargs
        )

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
        # A long prompt read in pieces needs to keep only the hidden states the head reads.
        keep_last = logits_to_keep if isinstance(logits_to_keep, int) and labels is None else 0
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            cache=cache,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            _keep_last=keep_last,
        )
        hidden_states = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])  # (B, T_keep, vocab)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        output = CausalLMOutputWithPast(
            loss=loss, logits=logits, cache=outputs.cache, hidden_states=outputs.hidden_states
        )
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
