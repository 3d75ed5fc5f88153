# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Export a causal AFT language model to ONNX: a prompt graph and a one-token graph around a plain-tensor state.

    python -m conversion.export_onnx FOLDER OUT [--opset 18] [--dtype float32] [--overwrite]

writes one folder, atomically:

    prefill.onnx       input_ids, attention_mask (B, T), left-padded -> logits (B, T, V), present.{i}.{name}
    decode_step.onnx   input_ids (B, 1), past.{i}.{name} -> logits (B, 1, V), present.{i}.{name}
    aft_onnx.json      the state tensors (names, shapes with symbolic dims, dtypes, per layer), the algorithm the
                       prefill graph holds, the limits; what training/onnx_runtime.py reads
    the tokenizer files and config.json of FOLDER

The state is the model's own decoding state (AFTMixer.state_names): constant in size for simple, local and conv,
every past key and value for full. The exporter is torch.onnx.export(..., dynamo=True): it goes through
torch.export, which keeps batch and length symbolic (torch.export.Dim) and checks that nothing in the graph
specialises on them; the TorchScript exporter traces one example and would silently bake in its length.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from conversion import cli
from training.atomic import atomic_write_json, staged_folder

PREFILL, DECODE, DESCRIPTION = "prefill.onnx", "decode_step.onnx", "aft_onnx.json"
# Files of the model folder the runtime needs beside the graphs: the byte tokenizer's and the config.
COPIED = ("config.json", "generation_config.json", "tokenizer_config.json", "special_tokens_map.json",
          "tokenization_aft.py")
DTYPES = {"float32": torch.float32}
FORMAT_VERSION = 1


def _count(mixer, tensors: dict) -> torch.Tensor:
    """(B,) real tokens read so far, from a layer's state tensors."""
    if "count" in tensors:
        return tensors["count"]
    return (tensors["keys"][..., -1] > 0).sum(dim=1)


def _block_tail(block, hidden, mixed):
    """The rest of AFTBlock.forward after its mixer (eval: dropout is the identity)."""
    hidden = hidden + mixed
    return hidden + block.mlp(block.ln_2(hidden))


class AFTPrefill(nn.Module):
    """input_ids, attention_mask (B, T), left-padded -> logits (B, T, V) and every layer's state tensors."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        backbone = self.model.model
        valid = attention_mask > 0
        positions = (torch.cumsum(valid.long(), dim=1) - 1).clamp_min(0)  # (B, T) among the real tokens
        hidden = backbone.embed_tokens(input_ids)
        if backbone.embed_positions is not None:
            hidden = hidden + backbone.embed_positions(positions)
        states = []
        for block in backbone.layers:
            mixed, tensors = block.mixer.export_prefill(block.ln_1(hidden), valid, positions)
            hidden = _block_tail(block, hidden, mixed)
            states.extend(tensors[name] for name in block.mixer.state_names)
        logits = self.model.lm_head(backbone.norm(hidden))
        return (logits, *states)


class AFTDecodeStep(nn.Module):
    """input_ids (B, 1) and every layer's state tensors -> logits (B, 1, V) and the next state tensors."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, *flat_state):
        backbone = self.model.model
        per_layer, index = [], 0
        for block in backbone.layers:
            names = block.mixer.state_names
            per_layer.append(dict(zip(names, flat_state[index:index + len(names)])))
            index += len(names)
        positions = _count(backbone.layers[0].mixer, per_layer[0]).unsqueeze(1)  # (B, 1): the new token's position
        hidden = backbone.embed_tokens(input_ids)
        if backbone.embed_positions is not None:
            hidden = hidden + backbone.embed_positions(positions)
        states = []
        for block, tensors in zip(backbone.layers, per_layer):
            mixed, new = block.mixer.export_step(block.ln_1(hidden), tensors)
            hidden = _block_tail(block, hidden, mixed)
            states.extend(new[name] for name in block.mixer.state_names)
        logits = self.model.lm_head(backbone.norm(hidden))
        return (logits, *states)


def state_layout(model) -> list[list[dict]]:
    """Per layer, each state tensor: its name in the graphs, shape (ints and symbolic names) and dtype."""
    config = model.config
    d = config.hidden_size
    layers = []
    for i, block in enumerate(model.model.layers):
        mixer = block.mixer
        dk = mixer._keys_dim
        if mixer.variant == "conv":
            shapes = {"num": ["batch", mixer.num_heads, mixer.head_dim], "den": ["batch", mixer.num_heads, 1],
                      "max": ["batch", mixer.num_heads, 1]}
        else:
            shapes = {"num": ["batch", d], "den": ["batch", d], "max": ["batch", d]}
        shapes.update(count=["batch"], window=["batch", mixer.state_window, dk + d + 1],
                      keys=["batch", "past_sequence", d + 1], values=["batch", "past_sequence", d])
        layers.append([{"name": f"{i}.{name}", "shape": shapes[name],
                        "dtype": "int64" if name == "count" else "float32"} for name in mixer.state_names])
    return layers


def _example_state(model, batch: int, past: int):
    """Zero state tensors of the layout (a full model's keys hold `past` steps, flagged real), for the export."""
    out = []
    for layer in state_layout(model):
        for spec in layer:
            shape = [batch if s == "batch" else past if s == "past_sequence" else s for s in spec["shape"]]
            dtype = torch.long if spec["dtype"] == "int64" else torch.float32
            tensor = torch.zeros(shape, dtype=dtype)
            if spec["name"].endswith(".keys"):
                tensor[..., -1] = 1
            if spec["name"].endswith(".count"):
                tensor.fill_(past)
            out.append(tensor)
    return out


def _check_model(model) -> None:
    config = model.config
    if not getattr(config, "causal", False) or not hasattr(model, "lm_head"):
        raise ValueError(
            f"{type(model).__name__} (aft_variant={config.aft_variant!r}, causal={config.causal}) has no decoding "
            "state to export: only a causal language model (AFTForCausalLM) exports to prefill + decode_step graphs."
        )


def load_model(folder: str, dtype: str = "float32"):
    from transformers import AutoConfig

    import modeling_aft  # noqa: F401  registers "aft" with the Auto classes
    from modeling_aft import AFTForCausalLM

    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"model folder {folder!r} does not exist; pass a folder saved with save_pretrained.")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{folder!r} has no config.json; pass a folder saved with save_pretrained.")
    config = AutoConfig.from_pretrained(folder)
    if getattr(config, "model_type", None) != "aft":
        raise ValueError(f"{folder!r} holds a {config.model_type!r} model, not an AFT one.")
    if not config.causal or "AFTForCausalLM" not in (config.architectures or ["AFTForCausalLM"]):
        arch = ", ".join(config.architectures or [])
        raise ValueError(
            f"{folder!r} holds {arch or 'a model'} (aft_variant={config.aft_variant!r}, causal={config.causal}), which "
            "has no decoding state: only a causal language model (AFTForCausalLM) exports to prefill + decode_step."
        )
    model = AFTForCausalLM.from_pretrained(folder, dtype=DTYPES[dtype])
    return model.eval()


def _onnx_export(module, args, path: Path, input_names, output_names, dynamic_shapes, opset: int, metadata: dict):
    import onnx

    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "graph.onnx"
        torch.onnx.export(module, tuple(args), str(raw), dynamo=True, input_names=input_names,
                          output_names=output_names, dynamic_shapes=dynamic_shapes, opset_version=opset,
                          external_data=False, verbose=False, report=False)
        graph = onnx.load(str(raw))
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))


def export_onnx(model, output, opset: int = 18, source: str | None = None, overwrite: bool = True) -> dict:
    """Write prefill.onnx, decode_step.onnx and aft_onnx.json (and the tokenizer files of `source`) into `output`,
    as one folder that appears whole or not at all. Returns the description."""
    from torch.export import Dim

    from modeling_aft import ops_export

    _check_model(model)
    model = model.eval()
    config = model.config
    layout = state_layout(model)
    state_names = [spec["name"] for layer in layout for spec in layer]
    past_names = [f"past.{name}" for name in state_names]
    present_names = [f"present.{name}" for name in state_names]
    description = {
        "format_version": FORMAT_VERSION,
        "aft_variant": config.aft_variant,
        "algorithm": ops_export.ALGORITHM,
        "algorithm_note": (
            "prefill: one reference per sequence and channel (the fast path's numerics), exact while the keys and "
            f"position biases of each channel span less than {ops_export.RANGE_LIMIT[torch.float32]:.0f} (float32); "
            "not checked in the graph. decode_step: the max-stabilised recurrent step, exact for any input."
        ),
        "padding": "left",
        "dtype": "float32",
        "opset": opset,
        "vocab_size": config.vocab_size,
        "max_position_embeddings": config.max_position_embeddings if config.has_absolute_positions else None,
        "state_grows": config.aft_variant == "full",
        "eos_token_id": config.eos_token_id,
        "pad_token_id": config.pad_token_id,
        "bos_token_id": config.bos_token_id,
        "prefill": {"file": PREFILL, "inputs": ["input_ids", "attention_mask"], "outputs": ["logits"] + present_names},
        "decode_step": {"file": DECODE, "inputs": ["input_ids"] + past_names, "outputs": ["logits"] + present_names},
        "state": layout,
    }
    metadata = {"aft_variant": config.aft_variant, "aft_algorithm": ops_export.ALGORITHM,
                "aft_state": json.dumps(layout)}
    batch, past = Dim("batch", min=1, max=1024), Dim("past", min=1)
    limit = config.max_position_embeddings if config.has_absolute_positions else 1 << 20
    length = Dim("sequence", min=2, max=limit)
    example_length = min(8, limit)
    ids = torch.randint(0, config.vocab_size, (2, example_length))
    mask = torch.ones(2, example_length, dtype=torch.long)
    state = _example_state(model, 2, example_length)
    state_dims = []
    for layer in layout:
        for spec in layer:
            state_dims.append({0: batch, **({1: past} if "past_sequence" in spec["shape"] else {})})
    with staged_folder(output, overwrite=overwrite) as tmp, torch.no_grad():
        _onnx_export(AFTPrefill(model).eval(), (ids, mask), tmp / PREFILL, ["input_ids", "attention_mask"],
                     ["logits"] + present_names, ({0: batch, 1: length}, {0: batch, 1: length}), opset,
                     dict(metadata, aft_graph="prefill"))
        _onnx_export(AFTDecodeStep(model).eval(), (ids[:, :1], *state), tmp / DECODE, ["input_ids"] + past_names,
                     ["logits"] + present_names, ({0: batch}, tuple(state_dims)), opset,
                     dict(metadata, aft_graph="decode_step"))
        atomic_write_json(tmp / "config.json", config.to_dict())
        if source is not None:
            for name in COPIED:
                if name != "config.json" and (Path(source) / name).is_file():
                    shutil.copy2(Path(source) / name, tmp / name)
        atomic_write_json(tmp / DESCRIPTION, description)
    return description


def _parser() -> argparse.ArgumentParser:
    parser = cli.Parser(prog="python -m conversion.export_onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a causal AFT language model saved with save_pretrained")
    parser.add_argument("output", help="the folder to write (prefill.onnx, decode_step.onnx, aft_onnx.json)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="weights and state dtype")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return cli.run(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    model = load_model(args.folder, args.dtype)
    description = export_onnx(model, args.output, args.opset, source=args.folder, overwrite=args.overwrite)
    sizes = {spec["name"]: spec["shape"] for layer in description["state"] for spec in layer}
    print(f"exported {args.folder} (AFT-{description['aft_variant']}, {description['algorithm']}) -> {args.output}: "
          f"{PREFILL}, {DECODE}, {DESCRIPTION}; state per layer: "
          + ", ".join(f"{k.split('.', 1)[1]} {v}" for k, v in sizes.items() if k.startswith("0.")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
