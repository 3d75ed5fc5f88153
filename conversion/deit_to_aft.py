# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""DeiT / ViT image classifiers (transformers) -> `AFTForImageClassification`, as in the paper's Table 8.

Zhai et al. (2021) fine-tune AFT-conv from DeiT weights: the patch embedding, the layer norms, the MLPs, the value and
output projections and the classifier are kept; the query and key projections start fresh (AFT's query is a sigmoid
gate and its key an exp weight, not one half of a dot product, and AFT-conv's K has one dimension per head); the
position embedding and the class token go, since AFT-conv has neither (its 2-D kernel carries the positions and it
pools by the mean).

Decisions beyond the paper (each also printed in the conversion report):

- AFT-full / local / simple targets keep the DeiT layout (a class token, learned position embeddings, class-token
  pooling), so the class token is copied and the position embeddings are copied minus DeiT's distillation row. Their
  position biases w = U V^T start fresh at N(0, 0.01^2), i.e. close to uniform mixing.
- DeiT's distillation token is dropped (AFT has no second token). The with-teacher model's two heads are averaged
  into one classifier (`--teacher-head average`, the default): DeiT averages their logits at inference, and two
  linear heads applied to the same pooled features average exactly as their weights do. `cls` or `distillation`
  keeps one head and drops the other.
- A source without query/key/value biases (`qkv_bias=False`) gets a zero value bias, so the value projection computes
  the same function as the source's.
- `--heads` defaults to the source's attention heads and `--kernel-size` to 11 (the paper's ImageNet kernel).
- The output folder gets no model card with metrics (a converted model has none until it is fine-tuned and
  evaluated) but a plain README.md listing the conversion report, and the report as conversion_report.json.

Usage:
    python -m conversion.deit_to_aft SOURCE_FOLDER OUTPUT_FOLDER [--variant conv] [--heads H] [--kernel-size S]

Nothing is written until the whole conversion has succeeded (it is built in a `.tmp-*` sibling of the output folder,
reloaded and compared, then renamed into place); on any error no output folder is left behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import (
    AutoImageProcessor,
    DeiTConfig,
    DeiTForImageClassification,
    DeiTForImageClassificationWithTeacher,
    PreTrainedModel,
    ViTConfig,
    ViTForImageClassification,
)
from transformers.activations import ACT2FN

from conversion import cli
from conversion.staging import write_atomically
from modeling_aft import AFT_VARIANTS, AFTConfig, AFTForImageClassification, AFTImageProcessorPil
from training.data_images import imagenet_mean_std

SOURCE_CLASSES: dict[str, type[PreTrainedModel]] = {
    "DeiTForImageClassification": DeiTForImageClassification,
    "DeiTForImageClassificationWithTeacher": DeiTForImageClassificationWithTeacher,
    "ViTForImageClassification": ViTForImageClassification,
}
_CONFIG_CLASSES = {"deit": DeiTConfig, "vit": ViTConfig}
_DEFAULT_CLASS = {"deit": "DeiTForImageClassification", "vit": "ViTForImageClassification"}
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TEACHER_HEADS = ("average", "cls", "distillation")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEFAULT_KERNEL_SIZE = 11  # the paper's ImageNet AFT-conv kernel (Table 7)
DEFAULT_POSITION_BIAS_DIM = 128  # the paper's d' on ImageNet

# Source name (without the "deit."/"vit." prefix) -> AFT name: the tensors kept as they are.
_RENAMES: list[tuple[str, str]] = [
    (r"embeddings\.patch_embeddings\.projection\.(weight|bias)", r"model.embeddings.patch_embeddings.\1"),
    (r"layers\.(\d+)\.layernorm_before\.(weight|bias)", r"model.layers.\1.ln_1.\2"),
    (r"layers\.(\d+)\.layernorm_after\.(weight|bias)", r"model.layers.\1.ln_2.\2"),
    (r"layers\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"model.layers.\1.mlp.\2.\3"),
    (r"layers\.(\d+)\.attention\.v_proj\.(weight|bias)", r"model.layers.\1.mixer.v_proj.\2"),
    (r"layers\.(\d+)\.attention\.o_proj\.(weight|bias)", r"model.layers.\1.mixer.out_proj.\2"),
    (r"layernorm\.(weight|bias)", r"model.norm.\1"),
]
# AFT's query is a sigmoid gate and its key an exp weight (one per head in AFT-conv), not a dot-product pair.
_FRESH_QK = "query/key projections start fresh (paper, Table 8)"


# ----------------------------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ConversionReport:
    """What happened to every tensor. `copied` maps source -> target names of tensors copied unchanged (bit-identical
    up to `--dtype`); `derived` maps target names to how they were computed from source tensors; `dropped` maps
    source names and `created` target names to the reason."""

    source: str
    source_architecture: str
    target: dict
    copied: dict[str, str] = dataclasses.field(default_factory=dict)
    derived: dict[str, str] = dataclasses.field(default_factory=dict)
    dropped: dict[str, str] = dataclasses.field(default_factory=dict)
    created: dict[str, str] = dataclasses.field(default_factory=dict)
    output: str | None = None
    image_processor: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def format(self) -> str:
        target = ", ".join(f"{key}={value}" for key, value in self.target.items())
        lines = [f"{self.source_architecture} ({self.source}) -> AFTForImageClassification ({target})"]
        if self.output:
            lines.append(f"written to {self.output}")
        if self.image_processor:
            lines.append(f"image processor: {self.image_processor}")
        lines.append(f"copied ({len(self.copied)}, unchanged):")
        lines += [f"  {source} -> {target}" for source, target in self.copied.items()]
        lines.append(f"derived ({len(self.derived)}):")
        lines += [f"  {target} <- {how}" for target, how in self.derived.items()]
        lines.append(f"dropped ({len(self.dropped)}):")
        lines += [f"  {source}: {why}" for source, why in self.dropped.items()]
        lines.append(f"created ({len(self.created)}):")
        lines += [f"  {target}: {how}" for target, how in self.created.items()]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Reading the source
# ----------------------------------------------------------------------------------------------------------------


def _read_config_json(folder: Path) -> dict:
    if not folder.is_dir():
        raise FileNotFoundError(
            f"source folder {str(folder)!r} does not exist or is not a folder; pass a folder written by a DeiT/ViT "
            "model's save_pretrained."
        )
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(path)!r} is missing: {str(folder)!r} is not a transformers model folder; pass a folder written by "
            "a DeiT/ViT model's save_pretrained."
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{str(path)!r} is not valid JSON ({error}); re-save the source model.") from error


def source_architecture(raw_config: dict, folder: str = "the source") -> str:
    """The transformers class to load a DeiT/ViT folder with, from its config.json (raises for anything else)."""
    model_type = raw_config.get("model_type")
    supported = ", ".join(SOURCE_CLASSES)
    if model_type not in _CONFIG_CLASSES:
        raise ValueError(
            f"{folder} holds a model_type={model_type!r} model, not a DeiT or ViT; conversion.deit_to_aft converts "
            f"{supported}."
        )
    architectures = raw_config.get("architectures") or [_DEFAULT_CLASS[model_type]]
    for name in architectures:
        if name in SOURCE_CLASSES and name.lower().startswith(model_type):
            return name
    raise ValueError(
        f"{folder} holds a {architectures} model; conversion.deit_to_aft converts the image classifiers {supported} "
        "(a backbone without a classifier: load it into one of these, with num_labels, and save that)."
    )


def load_source(folder: str | os.PathLike) -> tuple[PreTrainedModel, str]:
    """A DeiT/ViT classifier loaded with transformers from a saved folder (never a hub), in float32, and the dtype
    its weights were stored in. Raises if a weight is missing or has another shape than the config implies."""
    folder = Path(folder)
    raw = _read_config_json(folder)
    architecture = source_architecture(raw, repr(str(folder)))
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        raise FileNotFoundError(
            f"{str(folder)!r} has a config.json but no weights ({', '.join(_WEIGHT_FILES)}); save the model with "
            "save_pretrained."
        )
    config = _CONFIG_CLASSES[raw["model_type"]].from_pretrained(folder, local_files_only=True)
    model, info = SOURCE_CLASSES[architecture].from_pretrained(
        folder, config=config, dtype=torch.float32, local_files_only=True, output_loading_info=True
    )
    problems = {kind: sorted(info.get(kind) or []) for kind in ("missing_keys", "mismatched_keys")}
    if problems["missing_keys"] or problems["mismatched_keys"]:
        raise ValueError(
            f"the checkpoint in {str(folder)!r} does not match its config.json: missing tensors "
            f"{problems['missing_keys']}, tensors of another shape {problems['mismatched_keys']}; re-save the source "
            "model."
        )
    stored = raw.get("dtype") or raw.get("torch_dtype") or "float32"
    return model.eval(), str(stored).replace("torch.", "")


# ----------------------------------------------------------------------------------------------------------------
# The AFT config
# ----------------------------------------------------------------------------------------------------------------


def _square(value, name: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f"the source's {name}={list(value)} is not square; AFT image models take square sizes.")
        value = value[0]
    return int(value)


def _divisors(number: int) -> list[int]:
    return [d for d in range(1, number + 1) if number % d == 0]


def derive_config(
    source_config,
    variant: str = "conv",
    heads: int | None = None,
    kernel_size: int = DEFAULT_KERNEL_SIZE,
    position_bias_dim: int = DEFAULT_POSITION_BIAS_DIM,
    local_window: int | None = None,
    pooling: str | None = None,
) -> AFTConfig:
    """The AFT config of a converted DeiT/ViT: its sizes, labels, norm epsilon and activation, plus the AFT options.
    `heads` defaults to the source's attention heads; `local_window` to one row of the patch grid."""
    if variant not in AFT_VARIANTS:
        raise ValueError(f"variant={variant!r} is unknown; choose one of {', '.join(AFT_VARIANTS)}.")
    hidden = source_config.hidden_size
    heads = source_config.num_attention_heads if heads is None else heads
    if variant == "conv" and (heads < 1 or hidden % heads != 0):
        raise ValueError(
            f"heads={heads} does not divide the source's hidden_size={hidden}; pick one of {_divisors(hidden)}."
        )
    if variant == "conv" and (kernel_size < 1 or kernel_size % 2 == 0):
        raise ValueError(f"kernel_size={kernel_size} must be odd and >= 1 (the 2-D kernel is centred); try 11.")
    if source_config.hidden_act not in ACT2FN:
        raise ValueError(
            f"the source's hidden_act={source_config.hidden_act!r} is not one of transformers' activations; re-save "
            "the source with a named activation such as 'gelu'."
        )
    image_size = _square(source_config.image_size, "image_size")
    patch_size = _square(source_config.patch_size, "patch_size")
    if image_size % patch_size != 0:
        raise ValueError(
            f"the source's image_size={image_size} is not divisible by patch_size={patch_size}; AFT needs whole "
            "patches."
        )
    grid = image_size // patch_size
    uses_cls = (pooling or ("mean" if variant == "conv" else "cls")) == "cls"
    return AFTConfig(
        aft_variant=variant,
        causal=False,
        hidden_size=hidden,
        num_hidden_layers=source_config.num_hidden_layers,
        intermediate_size=source_config.intermediate_size,
        image_size=image_size,
        patch_size=patch_size,
        num_channels=source_config.num_channels,
        id2label={int(k): v for k, v in source_config.id2label.items()},
        label2id={k: int(v) for k, v in source_config.label2id.items()},
        layer_norm_eps=source_config.layer_norm_eps,
        hidden_act=source_config.hidden_act,
        hidden_dropout_prob=source_config.hidden_dropout_prob,
        initializer_range=source_config.initializer_range,
        num_heads=heads,  # read by AFT-conv only
        conv_kernel_size=kernel_size,
        max_position_embeddings=grid * grid + int(uses_cls),
        position_bias_dim=position_bias_dim,
        local_window=grid if local_window is None else local_window,
        pooling=pooling,
    )


# ----------------------------------------------------------------------------------------------------------------
# The tensor mapping
# ----------------------------------------------------------------------------------------------------------------


def _rename(name: str) -> str | None:
    for pattern, replacement in _RENAMES:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, replacement, name)
    return None


def _position_rows(source_rows: int, num_patches: int, keep_cls: bool) -> list[int]:
    """The rows of a source position embedding (cls[, distillation], patches) that an AFT one keeps."""
    extra = source_rows - num_patches  # 1 for ViT (cls), 2 for DeiT (cls, distillation)
    if extra not in (1, 2):
        raise ValueError(
            f"the source position embedding has {source_rows} rows for {num_patches} patches; expected "
            f"{num_patches + 1} (ViT) or {num_patches + 2} (DeiT)."
        )
    return ([0] if keep_cls else []) + list(range(extra, source_rows))


def _teacher_heads(source: dict[str, torch.Tensor], teacher_head: str, out: dict, report: ConversionReport) -> None:
    for part in ("weight", "bias"):
        cls_name, dist_name = f"cls_classifier.{part}", f"distillation_classifier.{part}"
        if cls_name not in source:
            continue  # num_labels = 0: both heads are identities
        target = f"classifier.{part}"
        if teacher_head == "average":
            # DeiT's inference logits are the mean of both heads'; linear heads average through their weights.
            out[target] = (source[cls_name] + source[dist_name]) / 2
            report.derived[target] = f"({cls_name} + {dist_name}) / 2: DeiT's inference average of its two heads"
        else:
            kept, other = (cls_name, dist_name) if teacher_head == "cls" else (dist_name, cls_name)
            out[target] = source[kept]
            report.copied[kept] = target
            report.dropped[other] = f"--teacher-head {teacher_head} keeps {kept} only"


def _created_reason(name: str, config: AFTConfig) -> str:
    if ".q_proj." in name or ".k_proj." in name:
        return _FRESH_QK
    if name.endswith("v_proj.bias"):
        return "zeros: the source's value projection has no bias (qkv_bias=False), so this one adds none"
    if "position_bias" in name:
        return f"fresh N(0, {config.position_bias_init_std}^2) position bias w = U V^T (paper, Section 3.2)"
    if "conv_gamma" in name or "conv_beta" in name:
        return "zeros: the kernel starts at 0 and AFT-conv at AFT-simple (paper, Section 3.4)"
    if "conv_weight" in name:
        return f"fresh N(0, {config.initializer_range}^2) AFT-conv kernel (scaled by gamma = 0 at the start)"
    return "fresh: the source has no counterpart"


def map_state_dict(
    source: dict[str, torch.Tensor],
    architecture: str,
    target: dict[str, torch.Tensor],
    config: AFTConfig,
    teacher_head: str = "average",
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """The AFT tensors computed from a DeiT/ViT state dict, and the report. `target` is the freshly initialised AFT
    state dict: it gives the names and shapes to fill, and every name left over is reported as created. Raises for a
    source tensor without a rule, a shape mismatch, or an AFT tensor of an unexpected name."""
    if teacher_head not in TEACHER_HEADS:
        raise ValueError(f"teacher_head={teacher_head!r} is unknown; choose one of {', '.join(TEACHER_HEADS)}.")
    prefix = "deit." if architecture.startswith("DeiT") else "vit."
    report = ConversionReport(source="", source_architecture=architecture, target={})
    out: dict[str, torch.Tensor] = {}
    keep_cls = config.image_pooling == "cls"
    teacher = architecture == "DeiTForImageClassificationWithTeacher"
    for name, tensor in source.items():
        inner = name[len(prefix):] if name.startswith(prefix) else None
        renamed = _rename(inner) if inner is not None else None
        if renamed is not None:
            out[renamed] = tensor
            report.copied[name] = renamed
        elif name in ("classifier.weight", "classifier.bias"):
            out[name] = tensor
            report.copied[name] = name
        elif teacher and name.startswith(("cls_classifier.", "distillation_classifier.")):
            continue  # both heads at once, below
        elif inner is not None and re.fullmatch(r"layers\.\d+\.attention\.(q_proj|k_proj)\.(weight|bias)", inner):
            report.dropped[name] = _FRESH_QK
        elif inner == "embeddings.distillation_token":
            report.dropped[name] = "AFT has no distillation token (DeiT's second token for the teacher's labels)"
        elif inner == "embeddings.mask_token":
            report.dropped[name] = "AFT has no mask token (masked image modelling only)"
        elif inner == "embeddings.cls_token":
            if keep_cls:
                out["model.embeddings.cls_token"] = tensor
                report.copied[name] = "model.embeddings.cls_token"
            else:
                report.dropped[name] = f"AFT-{config.aft_variant} pools by the mean and has no class token"
        elif inner == "embeddings.position_embeddings":
            if config.image_position_embeddings:
                rows = _position_rows(tensor.shape[1], config.num_patches, keep_cls)
                out["model.embeddings.position_embeddings"] = tensor[:, rows]
                kept = "the class-token row and the patch rows" if keep_cls else "the patch rows"
                report.derived["model.embeddings.position_embeddings"] = f"{name}[:, {_span(rows)}]: {kept}" + (
                    " (DeiT's distillation row dropped)" if tensor.shape[1] - config.num_patches == 2 else ""
                )
            else:
                report.dropped[name] = (
                    f"AFT-{config.aft_variant} has no position embedding: its 2-D kernel carries the positions"
                )
        else:
            raise ValueError(
                f"the source tensor {name!r} {tuple(tensor.shape)} has no counterpart in AFT and no rule to drop it; "
                f"is this a standard {architecture}?"
            )
    if teacher:
        _teacher_heads(source, teacher_head, out, report)
    _check_shapes(out, target, report)
    for name in target:
        if name not in out:
            report.created[name] = _created_reason(name, config)
            if name.endswith("mixer.v_proj.bias"):
                out[name] = torch.zeros_like(target[name])  # (D,)
    return out, report


def _span(rows: list[int]) -> str:
    """[0, 2, 3, 4] -> "[0, 2:5]" : the row selection as a reader writes it."""
    parts, start = [], 0
    while start < len(rows):
        end = start
        while end + 1 < len(rows) and rows[end + 1] == rows[end] + 1:
            end += 1
        parts.append(str(rows[start]) if end == start else f"{rows[start]}:{rows[end] + 1}")
        start = end + 1
    return "[" + ", ".join(parts) + "]"


def _check_shapes(out: dict[str, torch.Tensor], target: dict[str, torch.Tensor], report: ConversionReport) -> None:
    origin = {t: s for s, t in report.copied.items()}
    for name, tensor in out.items():
        where = origin.get(name, report.derived.get(name, name))
        if name not in target:
            raise ValueError(
                f"the AFT model has no tensor {name!r} (from {where}); modeling_aft's names changed, update _RENAMES."
            )
        if tuple(tensor.shape) != tuple(target[name].shape):
            raise ValueError(
                f"tensor {name!r} (from {where}): expected shape {tuple(target[name].shape)}, found "
                f"{tuple(tensor.shape)}."
            )


# ----------------------------------------------------------------------------------------------------------------
# In memory: source model -> AFT model
# ----------------------------------------------------------------------------------------------------------------


def convert_model(
    source_model: PreTrainedModel,
    variant: str = "conv",
    heads: int | None = None,
    kernel_size: int = DEFAULT_KERNEL_SIZE,
    position_bias_dim: int = DEFAULT_POSITION_BIAS_DIM,
    local_window: int | None = None,
    pooling: str | None = None,
    teacher_head: str = "average",
    seed: int = 0,
) -> tuple[AFTForImageClassification, ConversionReport]:
    """A float32 AFT classifier holding a loaded DeiT/ViT classifier's weights, and the report. The fresh tensors
    come from `seed` (the global RNG is left as it was)."""
    architecture = type(source_model).__name__
    if architecture not in SOURCE_CLASSES:
        raise ValueError(f"source model is a {architecture}; convert_model takes {', '.join(SOURCE_CLASSES)}.")
    config = derive_config(source_model.config, variant, heads, kernel_size, position_bias_dim, local_window, pooling)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AFTForImageClassification(config)
    target = model.state_dict()
    source = {name: tensor.detach().float() for name, tensor in source_model.state_dict().items()}
    tensors, report = map_state_dict(source, architecture, target, config, teacher_head)
    model.load_state_dict(tensors, strict=False)
    report.target = _target_summary(config)
    return model.eval(), report


def _target_summary(config: AFTConfig) -> dict:
    summary = {"variant": config.aft_variant}
    if config.aft_variant == "conv":
        summary.update(heads=config.num_heads, kernel_size=config.conv_kernel_size)
    if config.aft_variant in ("full", "local"):
        summary.update(position_bias_dim=config.position_bias_dim)
    if config.aft_variant == "local":
        summary.update(local_window=config.local_window)
    summary.update(pooling=config.image_pooling, layers=config.num_hidden_layers, hidden_size=config.hidden_size)
    return summary


# ----------------------------------------------------------------------------------------------------------------
# The image processor
# ----------------------------------------------------------------------------------------------------------------


def _default_mean_std(num_channels: int) -> tuple[list[float], list[float]]:
    mean, std = imagenet_mean_std(num_channels)  # one definition, shared with the trainers
    return list(mean), list(std)


def make_processor(folder: str | os.PathLike, config: AFTConfig) -> tuple[AFTImageProcessorPil, str]:
    """An AFT image processor doing what the source's preprocessor_config.json does (resize, crop, mean and std),
    or ImageNet defaults (short side to the image size, centre crop) when the folder has none; and where it came
    from. Raises when the result does not make `image_size` x `image_size` images."""
    if config.num_channels not in (1, 3):
        raise ValueError(
            f"the source has num_channels={config.num_channels}; the AFT image processor makes grey (1) or RGB (3) "
            "images."
        )
    path = Path(folder) / "preprocessor_config.json"
    size = config.image_size
    if path.is_file():
        try:
            source = AutoImageProcessor.from_pretrained(folder, backend="pil", local_files_only=True)
        except Exception as error:  # any unreadable processor config: say which file and why
            raise ValueError(f"cannot read {str(path)!r} ({error}); fix or remove it (ImageNet defaults).") from error
        mean, std = _default_mean_std(config.num_channels)
        kwargs = dict(
            size=dict(source.size) if getattr(source, "size", None) else {"shortest_edge": size},
            do_center_crop=bool(getattr(source, "do_center_crop", False)),
            resample=getattr(source, "resample", AFTImageProcessorPil.resample),
            do_rescale=getattr(source, "do_rescale", True),
            rescale_factor=getattr(source, "rescale_factor", 1 / 255),
            do_normalize=getattr(source, "do_normalize", True),
            image_mean=list(getattr(source, "image_mean", None) or mean),
            image_std=list(getattr(source, "image_std", None) or std),
        )
        crop = getattr(source, "crop_size", None)
        kwargs["crop_size"] = dict(crop) if crop else {"height": size, "width": size}
        origin = f"from {path.name} ({type(source).__name__})"
    else:
        mean, std = _default_mean_std(config.num_channels)
        kwargs = dict(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}, image_mean=mean, image_std=std
        )
        origin = "ImageNet defaults (the source folder has no preprocessor_config.json)"
    processor = AFTImageProcessorPil(num_channels=config.num_channels, **kwargs)
    probe = Image.fromarray(np.zeros((size + 7, size + 3, 3), dtype=np.uint8))  # not square, not the model's size
    shape = tuple(processor(probe, return_tensors="pt")["pixel_values"].shape[1:])
    if shape != (config.num_channels, size, size):
        raise ValueError(
            f"the image processor {origin} makes images of shape {shape}, but the model takes "
            f"{(config.num_channels, size, size)}; fix size/crop_size in {str(path)!r}."
        )
    return processor, origin


# ----------------------------------------------------------------------------------------------------------------
# Folder to folder, written atomically
# ----------------------------------------------------------------------------------------------------------------


def _readme(report: ConversionReport) -> str:
    front = "---\nlibrary_name: transformers\npipeline_tag: image-classification\ntags:\n- aft\n- converted\n---\n"
    return (
        f"{front}\n# AFT-{report.target['variant']} converted from {report.source_architecture}\n\n"
        "An Attention Free Transformer (Zhai et al., 2021, arXiv 2105.14103) image classifier whose weights were "
        "converted from a DeiT/ViT checkpoint by `python -m conversion.deit_to_aft`, as in the paper's Table 8. "
        "**It has not been evaluated**: the query and key projections (and the AFT position biases or kernels) are "
        "freshly initialised, so the model must be fine-tuned before its predictions mean anything; the paper "
        "fine-tunes for 100 epochs. This README is not a model card with results: write one with "
        "`training.model_card` after fine-tuning and evaluation.\n\n"
        "## Conversion report\n\n```\n" + report.format() + "\n```\n"
    )


def _verify_saved(folder: Path, model: AFTForImageClassification) -> None:
    """Reload the written folder and insist on the same tensors, bit for bit: a save that lost or renamed a tensor
    must fail here, before the folder is renamed into place."""
    reloaded = AFTForImageClassification.from_pretrained(folder, dtype=model.dtype, local_files_only=True)
    expected, found = model.state_dict(), reloaded.state_dict()
    if expected.keys() != found.keys():
        raise ValueError(f"the saved model lost or gained tensors: {sorted(expected.keys() ^ found.keys())}.")
    for name, tensor in expected.items():
        if found[name].dtype != tensor.dtype or not torch.equal(found[name], tensor):
            raise ValueError(f"tensor {name!r} reloaded from the saved folder differs from the converted one.")


def _check_forward(model: AFTForImageClassification) -> None:
    config = model.config
    pixels = torch.zeros(1, config.num_channels, config.image_size, config.image_size)  # (B, C, H, W)
    with torch.no_grad():
        logits = model(pixel_values=pixels).logits  # (B, num_labels)
    if not torch.isfinite(logits).all():
        raise ValueError("the converted model gives non-finite logits on a blank image; the source weights are bad.")


def convert_folder(
    source: str | os.PathLike,
    output: str | os.PathLike,
    variant: str = "conv",
    heads: int | None = None,
    kernel_size: int = DEFAULT_KERNEL_SIZE,
    position_bias_dim: int = DEFAULT_POSITION_BIAS_DIM,
    local_window: int | None = None,
    pooling: str | None = None,
    teacher_head: str = "average",
    dtype: str = "auto",
    seed: int = 0,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert a saved DeiT/ViT classifier folder to an AFT folder (save_pretrained weights and code, the image
    processor, README.md and conversion_report.json). `dtype`: "auto" (the source's stored dtype) or one of
    float32, bfloat16, float16. Returns the report; nothing is written unless everything succeeded."""
    if dtype != "auto" and dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is unknown; choose auto, {', '.join(DTYPES)}.")
    source_path, output_path = Path(source).absolute(), Path(output).absolute()
    if output_path == source_path or output_path in source_path.parents:
        raise ValueError(f"output {str(output)!r} would replace the source {str(source)!r}; choose another folder.")
    if output_path.exists() and not overwrite:
        raise FileExistsError(f"output folder {str(output)!r} already exists; pass --overwrite to replace it.")
    source_model, stored = load_source(source_path)
    out_dtype = stored if dtype == "auto" else dtype
    if out_dtype not in DTYPES:
        raise ValueError(f"the source was stored as {stored}; pass --dtype with one of {', '.join(DTYPES)}.")
    model, report = convert_model(
        source_model, variant, heads, kernel_size, position_bias_dim, local_window, pooling, teacher_head, seed
    )
    del source_model
    _check_forward(model)
    model = model.to(DTYPES[out_dtype])
    processor, origin = make_processor(source_path, model.config)
    report.source, report.image_processor = str(source), origin
    report.target["dtype"] = out_dtype
    report.output = str(output)

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        (folder / "README.md").write_text(_readme(report), encoding="utf-8")
        (folder / "conversion_report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        _verify_saved(folder, model)

    write_atomically(output_path, write, overwrite=overwrite)
    return report


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser(
        prog="python -m conversion.deit_to_aft",
        description=(
            "Convert a saved transformers DeiT/ViT image classifier (DeiTForImageClassification, "
            "DeiTForImageClassificationWithTeacher, ViTForImageClassification) to AFTForImageClassification as in "
            "the AFT paper's Table 8: patch embedding, norms, MLPs, value/output projections and classifier are "
            "copied; query/key projections start fresh; the position embedding, class token and distillation token "
            "are dropped for AFT-conv. Prints which tensors were copied, derived, dropped and created."
        ),
        epilog="Fine-tune the result before use: the fresh query/key projections make its predictions meaningless.",
    )
    parser.add_argument("source", help="folder written by the DeiT/ViT model's save_pretrained (never a hub id)")
    parser.add_argument("output", help="the AFT folder to write (must not exist unless --overwrite)")
    parser.add_argument("--variant", default="conv", choices=AFT_VARIANTS, help="AFT variant (default: conv)")
    parser.add_argument("--heads", type=int, default=None, help="AFT-conv heads (default: the source's heads)")
    parser.add_argument(
        "--kernel-size", type=int, default=DEFAULT_KERNEL_SIZE, help="AFT-conv kernel size s, odd (default: 11)"
    )
    parser.add_argument(
        "--position-bias-dim", type=int, default=DEFAULT_POSITION_BIAS_DIM,
        help="d' of w = U V^T for full/local (default: 128, the paper's ImageNet value; 0 = a dense T x T bias)",
    )
    parser.add_argument(
        "--local-window", type=int, default=None, help="AFT-local window (default: one row of the patch grid)"
    )
    parser.add_argument(
        "--pooling", choices=("cls", "mean"), default=None,
        help="full/local/simple only: class token (default, the DeiT layout) or global average pooling",
    )
    parser.add_argument(
        "--teacher-head", choices=TEACHER_HEADS, default="average",
        help="DeiT with teacher: average both heads (default, DeiT's inference rule) or keep one",
    )
    parser.add_argument(
        "--dtype", choices=("auto", *DTYPES), default="auto", help="output dtype (default: the source's stored one)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the freshly initialised tensors")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    report = convert_folder(
        args.source, args.output, variant=args.variant, heads=args.heads, kernel_size=args.kernel_size,
        position_bias_dim=args.position_bias_dim, local_window=args.local_window, pooling=args.pooling,
        teacher_head=args.teacher_head, dtype=args.dtype, seed=args.seed, overwrite=args.overwrite,
    )
    print(report.format())
    return 0


if __name__ == "__main__":
    sys.exit(main())
