# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""A training checkpoint of our trainers (or an HF folder) -> a clean Hugging Face folder, with dtype and sharding.

    python -m conversion.checkpoint_to_hf runs/text/checkpoints/checkpoint-2000 hf/aft-text
    python -m conversion.checkpoint_to_hf runs/text/checkpoints/checkpoint-2000 hf/aft-text-bf16 --dtype bfloat16
    python -m conversion.checkpoint_to_hf hf/aft-text hf/aft-text-sharded --max-shard-size 200MB

CHECKPOINT is an `OUTPUT_DIR/checkpoints/checkpoint-N` folder: Accelerate's `save_state` output plus our
`trainer_state.json` ({"step", "config", "args", "num_processes"}). The model class follows the run's task ("text" and
"pixels": AFTForCausalLM; "image": AFTForImageClassification). Model weight layouts read: `model.safetensors` or
`pytorch_model.bin` (one process, DDP, FSDP with a full state dict gathered by Accelerate), `pytorch_model_fsdp.bin`
(FSDP FULL_STATE_DICT) and `pytorch_model_fsdp_0/` (FSDP SHARDED_STATE_DICT through torch.distributed.checkpoint).
Per-rank FSDP files and DeepSpeed folders are refused with the way out. The optimizer, scheduler and RNG files are not
part of the model and are left alone.

Every tensor of the checkpoint must land in the model and every tensor of the model must come from the checkpoint
(tied weights count once); a missing, unexpected or wrongly shaped tensor is an error naming it with the expected and
found shapes. OUT gets `save_pretrained` (safetensors, config with auto_map and the modeling code; shards and
`model.safetensors.index.json` above --max-shard-size), the byte tokenizer (text) or the image processor (image, when
the run's arguments say how its images were normalised), and `conversion.json`: where the weights came from, the step
and the run's arguments. An HF folder as input gives the same folder with new dtype / sharding; its other files (card,
tokenizer, results) are copied. Everything is built in memory and in a `.tmp-*` sibling of OUT, renamed into place
only once complete: on any error no OUT is left behind.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import modeling_aft  # noqa: F401  (registers "aft" with the Auto classes)
from conversion import cli
from conversion.staging import staged_folder
from modeling_aft import AFTByteTokenizer, AFTConfig, AFTForCausalLM, AFTForImageClassification, AFTModel

STATE_FILE = "trainer_state.json"
PROVENANCE_FILE = "conversion.json"
TASK_CLASSES = {"text": AFTForCausalLM, "pixels": AFTForCausalLM, "image": AFTForImageClassification}
ARCHITECTURES = {cls.__name__: cls for cls in (AFTForCausalLM, AFTForImageClassification, AFTModel)}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
FP16_MAX = 65504.0
# Name pieces that wrappers add in front of (or inside) the module's own keys: DDP, torch.compile, FSDP1, activation
# checkpointing. A checkpoint of a wrapped model holds them when it was saved without unwrapping.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
WRAPPER_INFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")
# Weight files of an HF folder: replaced by the converted ones, never copied.
HF_WEIGHT_FILE = re.compile(r"^(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)(\.index\.json)?$")


class ConversionError(ValueError):
    """Bad or unreadable input; the message names the file or tensor, what was expected, what was found, the fix."""


@dataclass
class ConversionReport:
    """What a conversion wrote; also stored (with the run's arguments) as OUT/conversion.json."""

    output: str
    source: str
    source_format: str
    model_class: str
    dtype: str
    max_shard_size: str
    step: int | None
    num_processes: int | None
    tensors: int
    parameters: int
    weight_files: list[str]
    preprocessing: str
    args: dict | None = field(default=None, repr=False)


# ----------------------------------------------------------------------------------------------------------------
# Reading the input
# ----------------------------------------------------------------------------------------------------------------


def read_trainer_state(checkpoint: str | os.PathLike) -> dict:
    """Our trainer_state.json, checked for the keys the conversion needs."""
    checkpoint = Path(checkpoint)
    path = checkpoint / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{checkpoint} has no {STATE_FILE}: it is not a complete checkpoint of our trainers (they write that file "
            f"last). Pass an OUTPUT_DIR/checkpoints/checkpoint-N folder{_nearby_checkpoints(checkpoint)}.")
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConversionError(f"{path} is not valid JSON ({err}); the checkpoint is corrupt; use another.") from None
    missing = [k for k in ("step", "config", "args") if not isinstance(state, dict) or k not in state]
    if missing:
        raise ConversionError(f"{path} lacks {', '.join(missing)}; the trainers write step, config, args and "
                              f"num_processes. Use a checkpoint written by training.engine.save_checkpoint.")
    if state["config"].get("model_type") != AFTConfig.model_type:
        raise ConversionError(f"{path}: config model_type is {state['config'].get('model_type')!r}, not "
                              f"{AFTConfig.model_type!r}; this converter reads checkpoints of AFT models only.")
    return state


def _nearby_checkpoints(folder: Path) -> str:
    """A hint when the run folder or its checkpoints/ folder was given instead of one checkpoint."""
    for root in (folder, folder / "checkpoints"):
        if root.is_dir():
            found = sorted((p for p in root.iterdir() if re.match(r"^checkpoint-\d+$", p.name)),
                           key=lambda p: int(p.name.split("-")[1]))
            if found:
                return f", e.g. {found[-1]} (the latest of {len(found)} in {root})"
    return ""


def load_checkpoint_weights(checkpoint: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """The model's full state dict from an Accelerate `save_state` folder, and the layout it was read from."""
    checkpoint = Path(checkpoint)
    names = sorted(p.name for p in checkpoint.iterdir())
    _refuse_unreadable_layouts(checkpoint, names)
    readable = [n for n in ("model.safetensors", "pytorch_model.bin", "pytorch_model_fsdp.bin", "pytorch_model_fsdp_0")
                if n in names]
    if not readable:
        raise ConversionError(
            f"{checkpoint} holds no model weights Accelerate writes (model.safetensors, pytorch_model.bin, "
            f"pytorch_model_fsdp.bin, pytorch_model_fsdp_0/); found {names}. Pass a checkpoint-N folder.")
    if len(readable) > 1:
        raise ConversionError(f"{checkpoint} holds the weights twice ({' and '.join(readable)}); which one is the "
                              f"model is ambiguous. Remove the stale one.")
    name = readable[0]
    if name == "model.safetensors":
        tensors = _load_safetensors(checkpoint / name)
    elif name == "pytorch_model_fsdp_0":
        tensors = _load_dcp(checkpoint / name)
    else:
        tensors = _load_torch(checkpoint / name)
    return unwrap_keys(tensors), f"accelerate save_state: {name}"


def _refuse_unreadable_layouts(checkpoint: Path, names: list[str]) -> None:
    """Layouts that hold no full state dict (or more than one model), named with the way out."""
    per_rank = [n for n in names if re.match(r"^pytorch_model_fsdp(_\d+)?_rank\d+\.bin$", n)]
    if per_rank:
        raise ConversionError(
            f"{checkpoint} holds per-rank FSDP shards ({', '.join(per_rank)}: LOCAL_STATE_DICT or SHARDED_STATE_DICT "
            f"without torch.distributed.checkpoint), which only the same FSDP setup can read. Load the checkpoint in "
            f"that setup and save with fsdp_state_dict_type FULL_STATE_DICT or SHARDED_STATE_DICT (the default, "
            f"which writes pytorch_model_fsdp_0/), then convert that.")
    deepspeed = [n for n in names if n in ("latest", "zero_to_fp32.py") or
                 ((checkpoint / n).is_dir() and any((checkpoint / n).glob("*model_states.pt")))]
    if deepspeed:
        raise ConversionError(
            f"{checkpoint} is a DeepSpeed checkpoint ({', '.join(deepspeed)}), which holds ZeRO partitions, not a "
            f"state dict. Run `python {checkpoint / 'zero_to_fp32.py'} {checkpoint} {checkpoint}` (DeepSpeed's own "
            f"script, saved there) to write pytorch_model.bin, then convert again.")
    extra = [n for n in names if re.match(r"^(model|pytorch_model|pytorch_model_fsdp)_[1-9]\d*(\.safetensors|\.bin)?$",
                                          n)]
    if extra:
        raise ConversionError(f"{checkpoint} holds more than one prepared model ({', '.join(extra)}); our trainers "
                              f"prepare one. Convert a checkpoint of training.train_text/train_image/train_pixels.")


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError) as err:
        raise ConversionError(f"cannot read {path} ({err}); the file is corrupt or cut short. Use another "
                              f"checkpoint.") from None


def _load_torch(path: Path) -> dict[str, torch.Tensor]:
    try:  # weights_only: a checkpoint is data, never code
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors come in many types
        raise ConversionError(f"cannot read {path} ({type(err).__name__}: {err}); the file is corrupt or not a "
                              f"state dict. Use another checkpoint.") from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConversionError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors; pass the model "
                              f"file Accelerate's save_state wrote.")
    return dict(obj)


def _load_dcp(folder: Path) -> dict[str, torch.Tensor]:
    """torch.distributed.checkpoint folder -> full tensors, in one process (DCP stores the global shapes)."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    if not (folder / ".metadata").is_file():
        raise ConversionError(f"{folder} has no .metadata: the FSDP sharded checkpoint is incomplete. Use another "
                              f"checkpoint.")
    with tempfile.TemporaryDirectory(prefix="aft-dcp-") as scratch:
        target = Path(scratch) / "state.pt"
        try:
            dcp_to_torch_save(str(folder), str(target))
        except Exception as err:  # DCP reports storage problems with several exception types
            raise ConversionError(f"cannot read the FSDP sharded checkpoint {folder} ({type(err).__name__}: "
                                  f"{err}).") from None
        obj = torch.load(target, map_location="cpu", weights_only=True)
    # Accelerate saves {"model": state_dict}.
    state = obj.get("model", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{folder} does not hold Accelerate's {{'model': state_dict}}; found keys "
                              f"{sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__}.")
    return dict(state)


def unwrap_keys(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip what DDP / torch.compile / FSDP wrappers add to the keys of a model saved without unwrapping."""
    out = {}
    for key, value in tensors.items():
        for infix in WRAPPER_INFIXES:
            key = key.replace(infix, "")
        out[key] = value
    changed = True
    while changed and out:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in out):  # only a prefix every key has is a wrapper's
                out = {k[len(prefix):]: v for k, v in out.items()}
                changed = True
    return out


def load_hf_weights(folder: str | os.PathLike) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors of an HF folder: model.safetensors, pytorch_model.bin or their sharded form with an index."""
    folder = Path(folder)
    for index_name, single in (("model.safetensors.index.json", "model.safetensors"),
                               ("pytorch_model.bin.index.json", "pytorch_model.bin")):
        if (folder / index_name).is_file():
            files = _index_files(folder / index_name)
        elif (folder / single).is_file():
            files = [single]
        else:
            continue
        tensors: dict[str, torch.Tensor] = {}
        for name in files:
            path = folder / name
            if not path.is_file():
                raise FileNotFoundError(f"{folder / index_name} names {name}, which is missing; copy the whole "
                                        f"folder again.")
            part = _load_safetensors(path) if name.endswith(".safetensors") else _load_torch(path)
            twice = sorted(set(part) & set(tensors))
            if twice:
                raise ConversionError(f"{path}: tensor {twice[0]} is also in another shard; the folder is corrupt.")
            tensors.update(part)
        return tensors, files
    raise FileNotFoundError(f"{folder} has config.json but no weights (model.safetensors, pytorch_model.bin or a "
                            f"sharded index); copy the whole folder again.")


def _index_files(index: Path) -> list[str]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ConversionError(f"{index} is not a shard index with a weight_map ({err}); the folder is "
                              f"corrupt.") from None
    return sorted(set(weight_map.values()))


# ----------------------------------------------------------------------------------------------------------------
# Building the model: every tensor used, every shape checked
# ----------------------------------------------------------------------------------------------------------------


def model_class_for(args: dict) -> type:
    task = args.get("task")
    if task not in TASK_CLASSES:
        raise ConversionError(f"the run's args.task is {task!r}; expected one of {sorted(TASK_CLASSES)} (text, "
                              f"pixels: AFTForCausalLM; image: AFTForImageClassification).")
    return TASK_CLASSES[task]


def check_state_dict(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict to load: every key of the model filled, tied weights from whichever name the file kept.

    Raises with the tensor's name, the expected shape and the found one on any missing, unexpected or misshaped
    tensor; tied names given twice must hold the same values."""
    expected = model.state_dict(keep_vars=True)  # Parameters themselves: tied names share one object
    groups: dict[int, list[str]] = {}
    for name, tensor in expected.items():
        groups.setdefault(id(tensor), []).append(name)
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        shapes = ", ".join(f"{k} {tuple(tensors[k].shape)}" for k in unexpected[:6])
        raise ConversionError(f"the checkpoint holds {len(unexpected)} tensor(s) the {type(model).__name__} does not "
                              f"have: {shapes}. Its config does not match the weights (or another model's weights "
                              f"were saved); expected none of these.")
    wrong = [f"tensor {name}: expected shape {tuple(want.shape)}, found {tuple(tensors[name].shape)}"
             for name, want in expected.items() if name in tensors and tensors[name].shape != want.shape]
    if wrong:  # in the model's order, so the first named is the first layer that differs
        raise ConversionError(f"{'; '.join(wrong[:6])}{'; ...' if len(wrong) > 6 else ''}. The checkpoint does not "
                              f"match its config (trainer_state.json / config.json).")
    full = {}
    for names in groups.values():
        given = [n for n in names if n in tensors]
        if not given:
            raise ConversionError(f"tensor {names[0]} (shape {tuple(expected[names[0]].shape)}) is missing from the "
                                  f"checkpoint; expected it, found nothing. The checkpoint is incomplete.")
        for other in given[1:]:
            if not torch.equal(tensors[other], tensors[given[0]]):
                raise ConversionError(f"tensors {given[0]} and {other} are tied in the model but differ in the "
                                      f"checkpoint; its config's tie_word_embeddings does not match the weights.")
        for name in names:
            full[name] = tensors[given[0]]
    return full


def build_model(model_class: type, config: AFTConfig, tensors: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The model holding exactly the given tensors, made without a random initialisation (weights on 'meta' first)."""
    with torch.device("meta"):
        model = model_class(config)
    full = check_state_dict(model, tensors)
    model.load_state_dict(full, strict=True, assign=True)
    model.tie_weights()  # assign made separate Parameters for the tied names
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:  # a non-persistent buffer: not in any checkpoint, so the model is built for real
        model = model_class(config)
        model.load_state_dict(full, strict=True)
    return model.eval()


def convert_dtype(model: torch.nn.Module, dtype: str | None) -> str:
    """Floating tensors to `dtype` (integer buffers stay); refuses float16 where a value would become inf."""
    if dtype is None:
        return str(next(model.parameters()).dtype).replace("torch.", "")
    if dtype not in DTYPES:
        raise ConversionError(f"--dtype {dtype!r}; use one of {', '.join(DTYPES)}.")
    target = DTYPES[dtype]
    if target == torch.float16:
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and tensor.numel():
                peak = float(tensor.detach().abs().max())
                if peak > FP16_MAX:
                    raise ConversionError(f"tensor {name} holds |values| up to {peak:.4g}, above float16's largest "
                                          f"{FP16_MAX:g}: it would become inf. Use --dtype bfloat16.")
    model.to(target)
    return dtype


def parse_shard_size(size: str | int) -> int:
    """'5GB', '200MB', '10KiB' or a byte count -> bytes."""
    from transformers.utils.hub import convert_file_size_to_int

    text = str(size).strip()
    try:
        value = int(text) if text.isdigit() else convert_file_size_to_int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConversionError(f"--max-shard-size {size!r} is not a size; use an integer and a unit, e.g. 5GB, "
                              f"200MB or 10KiB.")
    return value


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer / image processor
# ----------------------------------------------------------------------------------------------------------------


def preprocessor_for(args: dict | None, config: AFTConfig, model_class: type):
    """(object with save_pretrained or None, description) for what the run fed its model."""
    if args is None:
        return None, "none: no run arguments to reconstruct it from"
    task = args.get("task")
    if task == "text":
        return AFTByteTokenizer(), "AFTByteTokenizer (bytes 0..255)"
    if task == "pixels":
        return None, "none: a pixel LM reads sub-pixel ids 0..255 after a start token 256, no tokenizer"
    if task != "image" or model_class is not AFTForImageClassification:
        return None, f"none: unknown task {task!r}"
    if "data" not in args or config.num_channels not in (1, 3):
        return None, "none: the run's args do not say which data (hence which mean/std) it used"
    return _image_processor(args.get("data"), config), "AFTImageProcessorPil"


def _image_processor(data: str | None, config: AFTConfig):
    """The processor train_image saves: its mean/std follow the data source as training.data_images sets them."""
    from training.data_images import FASHION_MNIST_MEAN, FASHION_MNIST_STD, imagenet_mean_std, make_image_processor

    channels = config.num_channels
    if data is None or data == "fashion_mnist":
        mean, std = FASHION_MNIST_MEAN * channels, FASHION_MNIST_STD * channels
    else:  # CIFAR-10 and image folders: ImageNet statistics (their luma for grey)
        mean, std = imagenet_mean_std(channels)
    return make_image_processor(config.image_size, channels, mean, std)


# ----------------------------------------------------------------------------------------------------------------
# The conversion
# ----------------------------------------------------------------------------------------------------------------


def convert(source: str | os.PathLike, output: str | os.PathLike, dtype: str | None = None,
            max_shard_size: str | int = "5GB", overwrite: bool = False) -> ConversionReport:
    """A checkpoint-N folder or an HF folder -> a clean HF folder at `output` (see the module docstring)."""
    source, output = Path(source), Path(output)
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is not a folder; pass OUTPUT_DIR/checkpoints/checkpoint-N or an HF "
                                f"model folder.")
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; choose a new OUT folder or pass --overwrite to replace it.")
    if dtype is not None and dtype not in DTYPES:
        raise ConversionError(f"--dtype {dtype!r}; use one of {', '.join(DTYPES)}.")
    shard_bytes = parse_shard_size(max_shard_size)
    if not (source / STATE_FILE).exists() and not (source / "config.json").is_file():
        raise FileNotFoundError(
            f"{source} has neither {STATE_FILE} (a checkpoint of our trainers) nor config.json (an HF folder). Pass "
            f"an OUTPUT_DIR/checkpoints/checkpoint-N folder{_nearby_checkpoints(source)} or an HF model folder.")
    if (source / STATE_FILE).exists():
        model, report, preprocessor, extras = _from_checkpoint(source)
    else:
        model, report, preprocessor, extras = _from_hf_folder(source)
    report.dtype = convert_dtype(model, dtype)
    report.max_shard_size = str(max_shard_size)
    report.output = str(output)
    _write_folder(output, model, shard_bytes, preprocessor, extras, report)
    return report


def _from_checkpoint(source: Path):
    state = read_trainer_state(source)
    args = state["args"]
    model_class = model_class_for(args)
    config = _config_from_dict(state["config"], source / STATE_FILE)
    tensors, layout = load_checkpoint_weights(source)
    model = build_model(model_class, config, tensors)
    preprocessor, description = preprocessor_for(args, model.config, model_class)
    report = _report(source, layout, model, len(tensors), state.get("step"), state.get("num_processes"), args,
                     description)
    return model, report, preprocessor, []


def _from_hf_folder(source: Path):
    config_dict = _read_json(source / "config.json")
    config = _config_from_dict(config_dict, source / "config.json")
    names = config_dict.get("architectures") or []
    if len(names) != 1 or names[0] not in ARCHITECTURES:
        raise ConversionError(f"{source / 'config.json'}: architectures is {names!r}; expected one of "
                              f"{sorted(ARCHITECTURES)}. Save the folder with save_pretrained of an AFT model.")
    tensors, files = load_hf_weights(source)
    model = build_model(ARCHITECTURES[names[0]], config, tensors)
    if (source / "generation_config.json").is_file() and model.can_generate():  # keep edited generation defaults
        from transformers import GenerationConfig

        model.generation_config = GenerationConfig.from_pretrained(source)
    earlier = _read_json(source / PROVENANCE_FILE) if (source / PROVENANCE_FILE).is_file() else {}
    extras = [p for p in sorted(source.iterdir()) if not p.name.startswith(".") and p.name != PROVENANCE_FILE
              and not HF_WEIGHT_FILE.match(p.name)]
    report = _report(source, f"hf folder: {', '.join(files)}", model, len(tensors), earlier.get("step"),
                     earlier.get("num_processes"), earlier.get("args"),
                     "copied from the source folder" if any(_is_preprocessing(p.name) for p in extras)
                     else "none: the source folder has none")
    return model, report, None, extras


def _is_preprocessing(name: str) -> bool:
    return name.startswith(("tokenizer", "preprocessor_config", "special_tokens_map", "vocab"))


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConversionError(f"{path} is not valid JSON ({err}); the folder is corrupt.") from None
    if not isinstance(obj, dict):
        raise ConversionError(f"{path} holds a {type(obj).__name__}, not a JSON object; the folder is corrupt.")
    return obj


def _config_from_dict(config_dict: dict, where: Path) -> AFTConfig:
    if config_dict.get("model_type") != AFTConfig.model_type:
        raise ConversionError(f"{where}: model_type {config_dict.get('model_type')!r}, not "
                              f"{AFTConfig.model_type!r}; this converter handles AFT models only.")
    try:
        return AFTConfig.from_dict(config_dict)
    except (TypeError, ValueError) as err:
        raise ConversionError(f"{where}: the config does not build an AFTConfig ({err}).") from None


def _report(source: Path, layout: str, model, count: int, step, num_processes, args, preprocessing: str):
    return ConversionReport(
        output="", source=str(source.resolve()), source_format=layout, model_class=type(model).__name__, dtype="",
        max_shard_size="", step=step, num_processes=num_processes, tensors=count,
        parameters=sum(p.numel() for p in model.parameters()), weight_files=[], preprocessing=preprocessing,
        args=args)


def _provenance(report: ConversionReport) -> dict:
    """conversion.json: where the weights came from (OUT's own path says nothing once the folder moves)."""
    fields = {k: v for k, v in asdict(report).items() if k != "output"}
    return {"converter": "conversion.checkpoint_to_hf", **fields}


def _write_folder(output: Path, model, shard_bytes: int, preprocessor, extras: list[Path],
                  report: ConversionReport) -> None:
    """Everything into a `.tmp-*` sibling of OUT, then one rename (an existing OUT, with --overwrite, is swapped
    out)."""
    with staged_folder(output) as tmp:
        model.save_pretrained(tmp, safe_serialization=True, max_shard_size=shard_bytes)
        if preprocessor is not None:
            preprocessor.save_pretrained(tmp)
        for path in extras:  # an HF folder's card, tokenizer, results...: what save_pretrained did not write
            if not (tmp / path.name).exists():
                (shutil.copytree if path.is_dir() else shutil.copy2)(path, tmp / path.name)
        report.weight_files = sorted(p.name for p in tmp.iterdir() if HF_WEIGHT_FILE.match(p.name))
        (tmp / PROVENANCE_FILE).write_text(json.dumps(
            _provenance(report), indent=2, default=str) + "\n")


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = cli.Parser(
        prog="python -m conversion.checkpoint_to_hf",
        description=__doc__.split("\n\n")[0] + " " + __doc__.split("\n\n")[2].replace("\n", " "),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", help="OUTPUT_DIR/checkpoints/checkpoint-N of our trainers, or an HF model folder")
    p.add_argument("output", help="the HF folder to write (must not exist unless --overwrite)")
    p.add_argument("--dtype", choices=list(DTYPES), default=None,
                   help="convert floating tensors to this dtype; None keeps the stored one")
    p.add_argument("--max-shard-size", default="5GB",
                   help="largest safetensors file; bigger models get shards and model.safetensors.index.json")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (atomically)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return cli.run(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    report = convert(args.checkpoint, args.output, args.dtype, args.max_shard_size, args.overwrite)
    step = "" if report.step is None else f" (step {report.step})"
    print(f"converted {report.source}{step} -> {report.output}")
    print(f"  read      {report.tensors} tensors from {report.source_format}; all used")
    print(f"  model     {report.model_class}, {report.parameters:,} parameters, {report.dtype}")
    print(f"  weights   {', '.join(report.weight_files)} (max shard size {report.max_shard_size})")
    print(f"  inputs    {report.preprocessing}")
    print(f"  provenance {Path(report.output) / PROVENANCE_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
