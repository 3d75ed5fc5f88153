# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Resize the learned positions of a saved AFT text model to a new maximum length, for fine-tuning at a longer
(or shorter) context, as the paper trains enwik8 at T = 1024, 2048 and 4096.

    python -m conversion.resize_positions FOLDER OUT --max-positions 2048 [--mode linear|nearest]

What is resized, for every layer, from T = config.max_position_embeddings to N = --max-positions:
- AFT-full and AFT-local with the factorised bias w = U V^T: `...mixer.position_bias_u` and `..._v`, (T, d') -> (N, d'),
  along the position axis;
- with the dense bias (position_bias_dim=0): `...mixer.position_bias`, (T, T) -> (N, N), along both axes;
- learned absolute position embeddings, if the config has them (use_position_embeddings=True):
  `...embed_positions.weight`, (T, D) -> (N, D).
config.max_position_embeddings becomes N. Every other tensor is copied bit for bit, in its own dtype. AFT-simple and
AFT-conv text models without position embeddings learn nothing per position: only the config changes.

Interpolation, with align_corners=True: new position i takes the old position x = i (T - 1) / (N - 1). Position 0
and the last position keep their learned values exactly and every other position is read between two learned
neighbours; nothing is extrapolated or clamped (align_corners=False would treat positions as cells and copy the
edge values outward). `--mode linear` (the default) blends the two neighbours linearly: F.interpolate with
mode="linear" for U, V and the embeddings, "bilinear" for the dense bias, computed in float64 and cast back.
Linear interpolation is separable, so interpolating U and V is exactly the bilinear interpolation of w = U V^T: the
factorised and dense forms resize alike. `--mode nearest` copies the nearest learned position, round(x) with halves
up, as is.
Resizing to the same length touches no tensor: the output's weights are bit-identical to the input's.

What it means for the model: this is position interpolation. A longer context squeezes the learned positions, so
the bias between positions t and t' is read at (T - 1) / (N - 1) of their distance; AFT-local's window stays
local_window tokens wide. Expect to fine-tune at the new length (the paper's longer-context runs are trained at
that length). N must be at least local_window for AFT-local.

Image models are refused: their sequence is the patch grid fixed by image_size / patch_size, so a larger
max_position_embeddings gives them nothing new to read, and a new resolution would need a 2-D resize of the grid
(and a new meaning for AFT-local's window over raster-ordered patches), which this tool does not do.

Files: the weights (model.safetensors, or the shards named by model.safetensors.index.json) and config.json are
rewritten; every other file is copied (tokenizer, image processor, generation config, the modeling code that
trust_remote_code loads), except README.md and results.json, the card and the measurements of the original model
at length T, which no longer describe the resized one. OUT is built in a `.tmp-*` sibling, loaded back once to check
that every weight fits the new config, then renamed; on any error nothing is left behind. An existing OUT is never
overwritten.

Size: a target whose position tables would exceed the limit a model is built with
(`AFTPreTrainedModel.max_position_table_bytes`, 2 GB in float32) is refused before anything is computed, with the
tables' size and the output's; `--force` (force=True) writes it anyway and lifts that limit for the check that loads
it back. A dense bias grows as N^2: N = 100,000 is 40 GB a layer.

Every failure of the command is one line `error: ...` on stderr and exit status 2.

Python API: `resize_positions(folder, output, max_positions, mode, force)` (the whole conversion, returns a report),
`resize_state_dict(tensors, config, max_positions, mode)` (in memory) and `interpolate_positions(x, length, dims,
mode)` (one tensor).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

import modeling_aft
from conversion import cli
from conversion.staging import is_temporary, staged_folder
from modeling_aft import AFTConfig

MODES = ("linear", "nearest")
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
# The card and measured results of the original model: wrong for the resized one, so not copied.
NOT_COPIED = ("README.md", "results.json")
IMAGE_ARCHITECTURES = ("AFTForImageClassification", "AFTVisionModel")

_BIAS_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.mixer\.(position_bias_u|position_bias_v|position_bias)$")
_EMBED_KEY = re.compile(r"(?:^|\.)embed_positions\.weight$")
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}


# ----------------------------------------------------------------------------------------------------------------
# Interpolation
# ----------------------------------------------------------------------------------------------------------------


def nearest_source_index(old: int, new: int) -> torch.Tensor:
    """(new,) int64: the old position nearest to i (old - 1) / (new - 1), halves rounded up; integer arithmetic, so
    ties cannot flip with floating-point error."""
    if new == 1:
        return torch.zeros(1, dtype=torch.long)
    i = torch.arange(new, dtype=torch.long)
    return (2 * i * (old - 1) + (new - 1)) // (2 * (new - 1))


def interpolate_positions(
    x: torch.Tensor, length: int, dims: tuple[int, ...] = (0,), mode: str = "linear"
) -> torch.Tensor:
    """x resized to `length` along each axis in `dims` (one axis, or the two of a (T, T) bias); same dtype.

    Same length: x itself, untouched.
    """
    _check_mode(mode)
    if all(x.shape[d] == length for d in dims):
        return x
    if mode == "nearest":
        for d in dims:
            x = x.index_select(d, nearest_source_index(x.shape[d], length))  # exact copies of learned positions
        return x
    if len(dims) == 1:
        d = dims[0]
        moved = x.movedim(d, -1).double()  # (..., T)
        flat = moved.reshape(1, -1, moved.shape[-1])  # (1, C, T): F.interpolate's layout
        out = F.interpolate(flat, size=length, mode="linear", align_corners=True)  # (1, C, N)
        return out.reshape(*moved.shape[:-1], length).movedim(-1, d).to(x.dtype)
    if tuple(dims) == (0, 1) and x.dim() == 2:
        out = F.interpolate(x.double()[None, None], size=(length, length), mode="bilinear", align_corners=True)
        return out[0, 0].to(x.dtype)  # (N, N)
    raise ValueError(f"dims={dims} is not supported; pass one axis, or (0, 1) for a (T, T) bias.")


# ----------------------------------------------------------------------------------------------------------------
# State dict
# ----------------------------------------------------------------------------------------------------------------


def position_tensors(
    tensors: dict[str, torch.Tensor], config: AFTConfig
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """The keys that hold learned positions, each with (its expected shape, the axes to resize).

    Checks that the config's layers hold exactly the position tensors it implies, with the shapes it implies.
    """
    length = config.max_position_embeddings
    expected: dict[int, set[str]] = {}
    if config.aft_variant in ("full", "local"):
        names = {"position_bias"} if config.position_bias_dim == 0 else {"position_bias_u", "position_bias_v"}
        expected = {i: set(names) for i in range(config.num_hidden_layers)}
    found: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for key, tensor in tensors.items():
        match = _BIAS_KEY.search(key)
        if match:
            layer, name = int(match.group(1)), match.group(2)
            if name not in expected.get(layer, set()):
                raise ValueError(
                    f"tensor {key} does not fit the config (aft_variant={config.aft_variant!r}, position_bias_dim="
                    f"{config.position_bias_dim}, num_hidden_layers={config.num_hidden_layers}); the folder's weights "
                    "and config.json disagree."
                )
            expected[layer].discard(name)
            shape = (length, length) if name == "position_bias" else (length, config.position_bias_dim)
            found[key] = (shape, (0, 1) if name == "position_bias" else (0,))
        elif _EMBED_KEY.search(key):
            if not config.text_position_embeddings:
                raise ValueError(f"tensor {key} is in the weights but the config has use_position_embeddings="
                                 f"{config.use_position_embeddings}; the folder's weights and config.json disagree.")
            found[key] = ((length, config.hidden_size), (0,))
    missing = [f"layers.{i}.mixer.{name}" for i, names in sorted(expected.items()) for name in sorted(names)]
    if config.text_position_embeddings and not any(_EMBED_KEY.search(k) for k in tensors):
        missing.append("embed_positions.weight")
    if missing:
        raise ValueError(f"tensor {missing[0]} is missing from the weights, though the config implies it; the folder "
                         "is incomplete or its config.json belongs to another model.")
    for key, (shape, _) in found.items():
        if tuple(tensors[key].shape) != shape:
            raise ValueError(
                f"tensor {key}: expected shape {shape} from config.json (max_position_embeddings={length}), found "
                f"{tuple(tensors[key].shape)}; the weights and config.json disagree."
            )
    return found


def resize_state_dict(
    tensors: dict[str, torch.Tensor], config: AFTConfig, max_positions: int, mode: str = "linear"
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(the state dict with every learned position resized to max_positions, the keys that were resized)."""
    _check_target(config, max_positions, mode)
    targets = position_tensors(tensors, config)
    out = dict(tensors)
    for key, (_, dims) in targets.items():
        out[key] = interpolate_positions(tensors[key], max_positions, dims, mode).contiguous()
    return out, sorted(targets)


# ----------------------------------------------------------------------------------------------------------------
# The folder
# ----------------------------------------------------------------------------------------------------------------


def resize_positions(
    folder: str | os.PathLike, output: str | os.PathLike, max_positions: int, mode: str = "linear",
    force: bool = False,
) -> dict:
    """Resize the saved AFT folder's learned positions to max_positions into a new folder. Returns a report.
    force=True writes position tables above the limit a model is built with (see the module's docstring)."""
    folder, output = Path(folder), Path(output)
    _check_mode(mode)
    if not isinstance(max_positions, int) or max_positions < 1:
        raise ValueError(f"max_positions={max_positions!r} must be a positive integer (the new maximum length).")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"model folder {str(folder)!r} does not exist; pass a folder written by save_pretrained."
        )
    if output.exists():
        raise FileExistsError(f"output folder {str(output)!r} already exists; choose a new folder or delete it.")
    if output.absolute() == folder.absolute():
        raise ValueError(f"the output {str(output)!r} is the input folder; write the resized model to a new folder.")
    raw_config = _read_config(folder)
    config = AFTConfig.from_dict(raw_config)
    shard_files = _weight_files(folder)
    _refuse_images(folder, config, shard_files)
    _check_target(config, max_positions, mode)
    new_config = dict(raw_config, max_position_embeddings=max_positions)
    AFTConfig.from_dict(new_config)  # the new config must be valid too (e.g. local_window <= N)
    if not force:
        _check_size(folder, shard_files, config, max_positions)

    # Everything is computed in memory before a byte is written.
    resized_files: dict[str, tuple[dict[str, torch.Tensor], dict[str, str] | None]] = {}
    every = {}
    for name in shard_files:
        tensors, metadata = _load_safetensors(folder / name)
        resized_files[name] = (tensors, metadata)
        every.update({key: (name, tensor) for key, tensor in tensors.items()})
    resized, keys = resize_state_dict({k: t for k, (_, t) in every.items()}, config, max_positions, mode)
    for key in keys:
        resized_files[every[key][0]][0][key] = resized[key]

    report = {
        "input": str(folder), "output": str(output), "mode": mode, "align_corners": True,
        "old_max_positions": config.max_position_embeddings, "new_max_positions": max_positions,
        "resized": {k: [list(every[k][1].shape), list(resized[k].shape)] for k in keys},
        "not_copied": [n for n in NOT_COPIED if (folder / n).exists()],
    }
    _write_output(folder, output, raw_config, new_config, resized_files, shard_files, force)
    return report


def _write_output(folder: Path, output: Path, raw_config: dict, new_config: dict, resized_files: dict,
                  shard_files: list[str], force: bool = False) -> None:
    skip = {"config.json", INDEX_FILE, *shard_files, *NOT_COPIED}
    with staged_folder(output) as tmp:
        for entry in folder.iterdir():
            if entry.name in skip or is_temporary(entry.name):  # a killed writer's leftover is not the model's
                continue
            if entry.is_dir():
                shutil.copytree(entry, tmp / entry.name)
            else:
                shutil.copy2(entry, tmp / entry.name)
        for name, (tensors, metadata) in resized_files.items():
            save_file(tensors, str(tmp / name), metadata=metadata)
        if (folder / INDEX_FILE).exists():
            _write_index(folder / INDEX_FILE, tmp / INDEX_FILE, resized_files)
        _write_json(tmp / "config.json", new_config)
        _check_loads(tmp, new_config, force)


def _check_loads(tmp: Path, config: dict, force: bool = False) -> None:
    """Load the written folder with its model class: every weight must fit the new config, none may be missing."""
    names = [a for a in config.get("architectures") or [] if hasattr(modeling_aft, a)]
    if not names:
        return  # no class of ours named: nothing to load it with (the shape checks above still ran)
    model_class = getattr(modeling_aft, names[0])
    limit = modeling_aft.AFTPreTrainedModel.max_position_table_bytes
    if force:  # the size was asked for: the model's own limit must not refuse it now
        modeling_aft.AFTPreTrainedModel.max_position_table_bytes = None
    try:
        _, info = model_class.from_pretrained(tmp, output_loading_info=True)
    finally:
        modeling_aft.AFTPreTrainedModel.max_position_table_bytes = limit
    problems = {k: v for k, v in info.items() if k != "error_msgs" and v}
    if problems or info.get("error_msgs"):
        raise ValueError(f"the resized folder does not load cleanly into {names[0]}: {problems or info['error_msgs']}.")


# ----------------------------------------------------------------------------------------------------------------
# Reading and checks
# ----------------------------------------------------------------------------------------------------------------


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is unknown; choose one of {', '.join(MODES)}.")


def _check_target(config: AFTConfig, max_positions: int, mode: str) -> None:
    _check_mode(mode)
    if not isinstance(max_positions, int) or max_positions < 1:
        raise ValueError(f"max_positions={max_positions!r} must be a positive integer (the new maximum length).")
    if config.aft_variant == "local" and max_positions < config.local_window:
        raise ValueError(
            f"max_positions={max_positions} is below local_window={config.local_window} of this AFT-local model; "
            f"resize to at least {config.local_window}."
        )


def _check_size(folder: Path, shard_files: list[str], config: AFTConfig, max_positions: int) -> None:
    """Refuse, before computing anything, a target whose position tables exceed the limit a model is built with."""
    limit = modeling_aft.AFTPreTrainedModel.max_position_table_bytes
    new = AFTConfig.from_dict(dict(config.to_dict(), max_position_embeddings=max_positions))
    tables = new.position_table_bytes()
    if limit is None or tables <= limit:
        return
    element = 4
    for name in shard_files:  # the stored dtype sets the size of the written file
        with _open_safetensors(folder / name) as handle:
            keys = [k for k in handle.keys() if _BIAS_KEY.search(k) or _EMBED_KEY.search(k)]
            if keys:
                element = _DTYPE_BYTES.get(handle.get_slice(keys[0]).get_dtype(), 4)
                break
    stored = sum((folder / name).stat().st_size for name in shard_files)
    written = stored + new.position_table_bytes(element) - config.position_table_bytes(element)
    layers = config.num_hidden_layers
    raise ValueError(
        f"max_positions={max_positions} would make the position tables {tables / 1e9:.1f} GB (float32; "
        f"position_bias_dim={config.position_bias_dim}, {layers} layer{'s' * (layers != 1)}) and the output about "
        f"{written / 1e9:.1f} GB, above the limit of {limit / 1e9:.1f} GB a model is built with; choose a smaller "
        "--max-positions, or pass --force (force=True) to write it anyway."
    )


def _read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist; {str(folder)!r} is not a saved AFT folder.")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r} is not valid JSON ({err}); the folder is corrupt.") from err
    if raw.get("model_type") != AFTConfig.model_type:
        raise ValueError(f"{str(path)!r} has model_type={raw.get('model_type')!r}; expected 'aft' (an AFT folder).")
    return raw


def _weight_files(folder: Path) -> list[str]:
    if (folder / INDEX_FILE).is_file():
        try:
            files = sorted(set(json.loads((folder / INDEX_FILE).read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{str(folder / INDEX_FILE)!r} is not a weight index with a weight_map ({err!r}); the "
                             "folder is corrupt: save it again with save_pretrained.") from err
        for name in files:
            if not (folder / name).is_file():
                raise FileNotFoundError(f"shard {name!r} named by {INDEX_FILE} is missing from {str(folder)!r}.")
        return files
    if (folder / SINGLE_FILE).is_file():
        return [SINGLE_FILE]
    raise FileNotFoundError(
        f"{str(folder)!r} has neither {SINGLE_FILE} nor {INDEX_FILE}; save the model with "
        "save_pretrained(..., safe_serialization=True)."
    )


def _open_safetensors(path: Path):
    try:
        return safe_open(str(path), framework="pt")
    except SafetensorError as err:
        raise ValueError(f"{str(path)!r} is not a readable safetensors file ({err}); the folder is corrupt: save "
                         "it again with save_pretrained.") from err


def _load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str] | None]:
    try:
        with _open_safetensors(path) as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}, handle.metadata()
    except SafetensorError as err:  # a header that opens, over data cut short
        raise ValueError(f"{str(path)!r} cannot be read ({err}); the folder is corrupt: save it again with "
                         "save_pretrained.") from err


def _refuse_images(folder: Path, config: AFTConfig, shard_files: list[str]) -> None:
    is_image = any(a in IMAGE_ARCHITECTURES for a in config.architectures or [])
    if not is_image:
        for name in shard_files:
            with _open_safetensors(folder / name) as handle:
                is_image = is_image or any(".patch_embeddings." in key for key in handle.keys())
    if is_image:
        grid = config.image_size // config.patch_size
        raise ValueError(
            f"{str(folder)!r} holds an AFT image model: its sequence is the {grid} x {grid} patch grid fixed by "
            f"image_size={config.image_size} and patch_size={config.patch_size}, so a longer max_position_embeddings "
            "gives it nothing more to read, and resizing to a new resolution (a 2-D resize of the grid) is not "
            "supported; fine-tune the image model at the resolution it was trained at."
        )


def _write_index(source: Path, target: Path, resized_files: dict) -> None:
    index = json.loads(source.read_text())
    total = sum(t.numel() * t.element_size() for tensors, _ in resized_files.values() for t in tensors.values())
    count = sum(t.numel() for tensors, _ in resized_files.values() for t in tensors.values())
    metadata = index.setdefault("metadata", {})
    metadata["total_size"] = total
    if "total_parameters" in metadata:
        metadata["total_parameters"] = count
    _write_json(target, index)


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog="python -m conversion.resize_positions",
        description="Resize the learned position biases (U, V or the dense T x T w) and position embeddings of a "
        "saved AFT text model to a new maximum length by interpolation (align_corners=True), for fine-tuning at "
        "a longer context. Same length: the identity.",
    )
    parser.add_argument("folder", help="a saved AFT folder (save_pretrained)")
    parser.add_argument("output", help="new folder to write (must not exist)")
    parser.add_argument("--max-positions", type=int, required=True, help="the new max_position_embeddings N")
    parser.add_argument("--mode", choices=MODES, default="linear",
                        help="linear: blend the two nearest learned positions (default); nearest: copy the nearest")
    parser.add_argument("--force", action="store_true",
                        help="write position tables above the limit a model is built with (2 GB in float32)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return cli.run(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    report = resize_positions(args.folder, args.output, args.max_positions, args.mode, args.force)
    print(f"resized {report['input']} -> {report['output']}: max_position_embeddings "
          f"{report['old_max_positions']} -> {report['new_max_positions']} ({report['mode']}, align_corners=True)")
    for key, (old, new) in report["resized"].items():
        print(f"  {key}: {tuple(old)} -> {tuple(new)}" + (" (unchanged)" if old == new else ""))
    if not report["resized"]:
        print("  no tensor holds learned positions (AFT-simple / AFT-conv without position embeddings): "
              "only the config changed")
    for name in report["not_copied"]:
        print(f"  not copied: {name} (describes the original model)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
