# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Model cards filled from measured results: `write_model_card` renders a checkpoint folder's README.md.

Everything in the card comes from the arguments: the architecture and parameter count from the config, the
metrics (into the Hub's `model-index` metadata and a table in the body) from `results`, the training table from
`training`. Nothing is typed by hand, and a value that is not a finite number is refused. The card is complete for
the Hub as written (metadata, relative image links, loading recipes), so publishing uploads the folder unchanged.

    card = write_model_card(folder, task="causal-lm", config=model.config,
                            results=[{"type": "bpc", "name": "Bits per character", "value": 1.93, "split": "test"}],
                            dataset={"name": "Wikipedia (English lead text)", "type": "wikipedia-leads"},
                            training={"steps": 3000, "seconds": 812.4}, sample=generated_text)
    read_model_card_metrics(folder)  # {"bpc": 1.93, "test/bpc": 1.93}
"""

from __future__ import annotations

import copy
import math
import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from model_cards import template_path
from modeling_aft import AFTConfig, AFTForCausalLM, AFTForImageClassification

from .atomic import atomic_write_text


@dataclass(frozen=True)
class CardTask:
    """What a task sets in the card: its template, the Hub's pipeline tag and model-index task, the model class."""

    template: str
    pipeline_tag: str
    task_type: str
    task_name: str
    model_class: type
    auto_class: str
    seen_label: str
    tags: tuple[str, ...]


TASKS: dict[str, CardTask] = {
    "causal-lm": CardTask(
        "causal_lm",
        "text-generation",
        "text-generation",
        "Text Generation",
        AFTForCausalLM,
        "AutoModelForCausalLM",
        "Tokens seen",
        ("causal-lm",),
    ),
    # The pixel LM is a byte-level causal LM over intensities: the Hub serves it as text generation, while its
    # benchmark (bits per dimension) belongs to image generation.
    "pixel-lm": CardTask(
        "pixel_lm",
        "text-generation",
        "unconditional-image-generation",
        "Image Generation",
        AFTForCausalLM,
        "AutoModelForCausalLM",
        "Sub-pixels seen",
        ("pixel-lm", "image-generation"),
    ),
    "image-classification": CardTask(
        "image_classification",
        "image-classification",
        "image-classification",
        "Image Classification",
        AFTForImageClassification,
        "AutoModelForImageClassification",
        "Images seen",
        ("image-classification",),
    ),
}

# Training facts the trainers report, in table order, with their labels; other keys follow under their own name.
TRAINING_LABELS: dict[str, str] = {
    "preset": "Preset",
    "steps": "Optimizer steps",
    "tokens_or_images": "",  # the task's seen_label
    "batch_size": "Batch size",
    "learning_rate": "Peak learning rate",
    "weight_decay": "Weight decay",
    "warmup_steps": "Warm-up steps",
    "seconds": "Training time",
    "hardware": "Hardware",
    "mixed_precision": "Mixed precision",
    "num_processes": "Processes",
    "command": "Command",
}

VARIANT_EQUATIONS = {"full": "Eq. 2", "local": "Eq. 4", "simple": "Eq. 5", "conv": "Eq. 6"}
CARD_NAME = "README.md"


# --------------------------------------------------------------------------------------------------------------------
# Checking and formatting the inputs
# --------------------------------------------------------------------------------------------------------------------


def card_task(task: str) -> CardTask:
    if task not in TASKS:
        raise ValueError(f"task={task!r} is unknown; choose one of {', '.join(TASKS)}.")
    return TASKS[task]


def as_config(config: AFTConfig | dict) -> AFTConfig:
    if isinstance(config, AFTConfig):
        return config
    if isinstance(config, dict):
        return AFTConfig.from_dict(config)
    raise ValueError(f"config={type(config).__name__} is neither an AFTConfig nor its dict; pass model.config.")


def count_parameters(config: AFTConfig, task: CardTask) -> int:
    """Parameters of the model the config builds, tied weights once; on the meta device nothing is allocated."""
    with torch.device("meta"):
        model = task.model_class(copy.deepcopy(config))  # building a model may annotate its config
    return sum(parameter.numel() for parameter in model.parameters())


def measured_value(value: Any, where: str) -> int | float:
    """A metric value as a plain finite Python number (numpy and 0-d torch scalars are unwrapped)."""
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        try:
            value = value.item()
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"{where}={value!r} is not a single number ({error}); pass one float.") from None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{where}={value!r} is not a number; pass the measured float, not text or a flag.")
    if isinstance(value, numbers.Integral):
        return int(value)
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{where}={value!r} is not finite; the run diverged or was not evaluated: fix it first.")
    return value


def plain(value: Any, where: str) -> Any:
    """A YAML-safe copy of metric arguments: numpy/torch scalars become Python numbers, anything else is refused."""
    if isinstance(value, dict):
        return {str(key): plain(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if hasattr(value, "item"):
        return plain(value.item(), where)
    raise ValueError(f"{where}={value!r} cannot go into the card's YAML; pass str, number, bool, list or dict.")


def required_text(mapping: dict, key: str, where: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}[{key!r}]={value!r} must be a non-empty string; add it.")
    return value


def format_number(value: int | float) -> str:
    """Five significant digits: enough to compare runs, without float noise."""
    return str(value) if isinstance(value, int) else f"{value:.5g}"


def cell(text: Any) -> str:
    """A Markdown table cell: a `|` would end the cell and a newline the row."""
    return str(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def code_span(text: str) -> str:
    """Inline code that survives backticks inside it (a longer run of backticks around it)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{padding}{text}{padding}{ticks}"


def fenced(text: str, info: str = "text") -> str:
    """A fenced code block longer than any backtick run in the text, so a sample can never close it early."""
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text.rstrip(chr(10))}\n{fence}"


def format_duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds:,.0f} s ({seconds / 3600:.1f} h)"
    if seconds >= 60:
        return f"{seconds:,.0f} s ({seconds / 60:.1f} min)"
    return f"{seconds:.1f} s"


# --------------------------------------------------------------------------------------------------------------------
# The pieces of the card
# --------------------------------------------------------------------------------------------------------------------


def eval_results(results: list[dict], dataset: dict, task: CardTask) -> tuple[list[EvalResult], list[dict]]:
    """The model-index entries and the body's table rows, one per measured metric."""
    if not isinstance(results, list) or not results:
        raise ValueError(
            f"results={results!r} must be a non-empty list of measured metrics, e.g. "
            "[{'type': 'bpc', 'value': 1.93, 'split': 'test'}]."
        )
    dataset_name = required_text(dataset, "name", "dataset")
    dataset_type = required_text(dataset, "type", "dataset")
    entries, rows, seen = [], [], set()
    for index, result in enumerate(results):
        where = f"results[{index}]"
        if not isinstance(result, dict):
            raise ValueError(f"{where}={result!r} must be a dict with 'type' and 'value'.")
        metric_type = required_text(result, "type", where)
        value = measured_value(result.get("value"), f"{where}['value']")
        split = result.get("split", dataset.get("split"))
        if (metric_type, split) in seen:
            raise ValueError(f"{where} repeats metric {metric_type!r} on split {split!r}; report each metric once.")
        seen.add((metric_type, split))
        args = plain(result.get("args"), f"{where}['args']") if result.get("args") else None
        entries.append(
            EvalResult(
                task_type=task.task_type,
                task_name=task.task_name,
                dataset_type=dataset_type,
                dataset_name=dataset_name,
                dataset_config=dataset.get("config"),
                dataset_split=split,
                dataset_revision=dataset.get("revision"),
                metric_type=metric_type,
                metric_name=result.get("name") or metric_type,
                metric_value=value,
                metric_args=args,
            )
        )
        rows.append(
            dict(
                name=cell(result.get("name") or metric_type),
                type=cell(metric_type),
                value=format_number(value),
                split=cell(split or ""),
                args=cell(", ".join(f"{key}={item}" for key, item in (args or {}).items())),
            )
        )
    return entries, rows


def training_rows(training: dict, task: CardTask) -> list[dict]:
    """Label and text of every training fact given (None skipped), the known ones first, in a fixed order."""
    if not isinstance(training, dict):
        raise ValueError(f"training={training!r} must be a dict such as {{'steps': 3000, 'seconds': 812.4}}.")
    keys = [key for key in TRAINING_LABELS if key in training] + sorted(k for k in training if k not in TRAINING_LABELS)
    rows = []
    for key in keys:
        value = training[key]
        if value is None:
            continue
        label = TRAINING_LABELS.get(key) or (task.seen_label if key == "tokens_or_images" else key.replace("_", " "))
        rows.append(dict(label=cell(label[:1].upper() + label[1:]), value=cell(training_value(key, value))))
    return rows


def training_value(key: str, value: Any) -> str:
    if key in ("preset", "command"):
        return code_span(str(value))
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if key == "seconds":
        return format_duration(float(value))
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    return f"{float(value):g}"


def sample_image_link(folder: Path, sample_image: str | os.PathLike) -> str:
    """The image's path relative to the folder, URL-quoted: the link works locally and on the Hub alike."""
    candidate = Path(sample_image)
    if not candidate.is_absolute() and (folder / candidate).is_file():
        candidate = folder / candidate
    if not candidate.is_file():
        raise FileNotFoundError(
            f"sample_image={str(sample_image)!r} does not exist; save the image into {folder} first."
        )
    try:
        relative = candidate.resolve().relative_to(folder.resolve())
    except ValueError:
        raise ValueError(
            f"sample_image={str(sample_image)!r} lies outside the folder {folder}; save it inside the folder so that "
            "it is uploaded with the card."
        ) from None
    return quote(relative.as_posix())


def architecture(config: AFTConfig, task: CardTask) -> dict:
    """The model's shape in words and numbers, for the card's first section."""
    variant = config.aft_variant
    title = f"AFT-{variant}"
    if variant == "conv":
        title = f"AFT-conv-{config.num_heads}-{config.conv_kernel_size}"
        size = config.conv_kernel_size
        kernel = f"{size}-tap" if config.causal else f"{size} x {size}"  # 1-D over text, s x s over the patch grid
        detail = (
            f"{config.num_heads} heads, a learned {kernel} kernel per head, re-parameterised as "
            "gamma (w - mean) / std + beta"
        )
    elif variant == "simple":
        detail = "no position bias: a per-channel softmax of the keys over the context weights the values"
    else:
        bias = f"factorised w = U V^T with d' = {config.position_bias_dim}" if config.position_bias_dim else "dense"
        detail = f"learned position biases w ({bias})"
        if variant == "local":
            title = f"AFT-local-{config.local_window}"
            detail += f", used where |t - t'| < {config.local_window} and 0 outside"
    parameters = count_parameters(config, task)
    return dict(
        variant=variant,
        variant_title=title,
        variant_detail=cell(detail),
        equation=VARIANT_EQUATIONS[variant],
        mixing="causal" if config.causal else "bidirectional",
        layers=config.num_hidden_layers,
        width=config.hidden_size,
        intermediate_size=config.intermediate_size,
        vocab_size=config.vocab_size,
        max_length=config.max_position_embeddings,
        has_absolute_positions=config.has_absolute_positions,
        constant_state=variant != "full",
        window=config.conv_kernel_size if variant == "conv" else config.local_window,
        parameters=f"{parameters:,}",
        parameters_short=f"{parameters / 1e6:.2f}M",
    )


def image_facts(config: AFTConfig) -> dict:
    labels = [config.id2label[index] for index in sorted(config.id2label)] if config.id2label else []
    # transformers fills LABEL_0, LABEL_1, ... when no names were given: not worth listing.
    named = [label for label in labels if not re.fullmatch(r"LABEL_\d+", str(label))]
    return dict(
        image_size=config.image_size,
        patch_size=config.patch_size,
        num_channels=config.num_channels,
        num_patches=config.num_patches,
        pooling="mean of the patch features" if config.image_pooling == "mean" else "the class token",
        num_labels=config.num_labels,
        labels=", ".join(cell(label) for label in named) if len(named) == len(labels) else "",
    )


def default_model_name(config: AFTConfig, dataset: dict, repo_id: str | None) -> str:
    """The repo's name when publishing, else `aft-<variant>-<dataset type>` made path- and URL-safe."""
    if repo_id:
        return repo_id.split("/")[-1]
    name = f"aft-{config.aft_variant}-{Path(str(dataset['type'])).name}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")


def card_data(
    config: AFTConfig, task: CardTask, dataset: dict, entries: list[EvalResult], model_name: str, license: str
) -> ModelCardData:
    tags = ["aft", "attention-free-transformer", f"aft-{config.aft_variant}", *task.tags]
    return ModelCardData(
        license=license,
        library_name="transformers",
        pipeline_tag=task.pipeline_tag,
        tags=tags,
        datasets=[dataset["id"]] if dataset.get("id") else None,
        language=dataset.get("language"),
        model_name=model_name,
        eval_results=entries,
    )


def write_atomically(path: Path, text: str) -> None:
    """Write beside the target, then rename: a reader never sees half a card, a crash leaves no temporary file.
    (The card writer of write_model_card.)"""
    atomic_write_text(path, text)


def comparison_context(folder: Path, comparison: dict) -> dict:
    """The comparison table's texts as Markdown cells; its plot linked relative to the folder."""
    if not isinstance(comparison, dict) or not comparison.get("rows"):
        raise ValueError(f"comparison={comparison!r} must be a dict with non-empty 'rows'; see write_model_card.")
    out = {key: str(comparison.get(key, "")) for key in ("intro", "note")}
    out.update({key: cell(comparison.get(key, "")) for key in ("metric_label", "speed_label")})
    out["rows"] = [{key: cell(row.get(key, "")) for key in ("model", "parameters", "metric", "speed", "ratio",
                                                             "seconds")} for row in comparison["rows"]]
    out["plot"] = sample_image_link(folder, comparison["plot"]) if comparison.get("plot") else None
    return out


# --------------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------------


def write_model_card(
    folder: str | os.PathLike,
    *,
    task: str,
    config: AFTConfig | dict,
    results: list[dict],
    dataset: dict,
    training: dict,
    sample: str | None = None,
    sample_image: str | os.PathLike | None = None,
    model_name: str | None = None,
    repo_id: str | None = None,
    license: str = "apache-2.0",
    comparison: dict | None = None,
) -> ModelCard:
    """Render the task's template from measured results into `folder/README.md` (atomically) and return the card.

    Args:
        folder: the checkpoint folder (created if missing).
        task: `"causal-lm"`, `"pixel-lm"` or `"image-classification"`.
        config: the model's `AFTConfig` or its dict (architecture and parameter count come from it).
        results: measured metrics, each `{"type", "value", "name"?, "split"?, "args"?}`, with finite values.
        dataset: `{"name", "type", "split"?, "description"?, "id"? (a Hub dataset id), "config"?, "revision"?,
            "language"?, "layout"? and "sequence_length"? (pixel LM: how an image becomes a sequence)}`.
        training: any of `TRAINING_LABELS`' keys (others are rendered under their own name).
        sample: generated text (or a description of the sample), shown in a fenced block.
        sample_image: an image inside `folder` (a path relative to it, or any path that lies in it).
        model_name: the model-index name; by default the repo id's last part, else `aft-<variant>-<dataset type>`.
        repo_id: the Hub id the folder will be published as; the loading recipes use it.
        license: the card's license id.
        comparison: the side-by-side table against an attention baseline trained the same way (`training.ship`):
            `{"intro", "metric_label", "speed_label", "rows": [{"model", "parameters", "metric", "speed", "ratio",
            "seconds"}], "note", "plot"?}` (plot: an image inside `folder`).
    """
    spec = card_task(task)
    config = as_config(config)
    if not isinstance(dataset, dict):
        raise ValueError(f"dataset={dataset!r} must be a dict with 'name' and 'type' (and 'split', 'description').")
    entries, result_rows = eval_results(results, dataset, spec)
    training_table = training_rows(training, spec)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Not the folder's name by default: trainers write into a temporary folder and rename it afterwards.
    model_name = model_name or default_model_name(config, dataset, repo_id)
    context = dict(
        model_name=model_name,
        model_id=repo_id or f"path/to/{model_name}",
        auto_class=spec.auto_class,
        task=task,
        arch=architecture(config, spec),
        image=image_facts(config) if task == "image-classification" else None,
        results_table=result_rows,
        training_table=training_table,
        dataset_name=dataset["name"],
        dataset_id=dataset.get("id"),
        dataset_split=dataset.get("split"),
        dataset_description=dataset.get("description"),
        pixel_layout=dataset.get("layout"),
        sequence_length=dataset.get("sequence_length") or config.max_position_embeddings,
        sample_block=fenced(sample) if sample else None,
        sample_image=sample_image_link(folder, sample_image) if sample_image is not None else None,
        license_id=license,
        comparison=comparison_context(folder, comparison) if comparison else None,
    )
    data = card_data(config, spec, dataset, entries, model_name, license)
    card = ModelCard.from_template(data, template_path=str(template_path(spec.template)), **context)
    write_atomically(folder / CARD_NAME, str(card))
    return card


def read_model_card_metrics(folder: str | os.PathLike) -> dict[str, float]:
    """The metrics of `folder/README.md`'s model-index: `"split/type"` for each, and plain `"type"` where only one
    split reports that metric."""
    path = Path(folder) / CARD_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; write the card first with write_model_card({folder!r}, ...).")
    card = ModelCard.load(path)
    metrics: dict[str, float] = {}
    types = [result.metric_type for result in card.data.eval_results or []]
    for result in card.data.eval_results or []:
        value = float(result.metric_value)
        if result.dataset_split:
            metrics[f"{result.dataset_split}/{result.metric_type}"] = value
        if types.count(result.metric_type) == 1:
            metrics[result.metric_type] = value
    return metrics


__all__ = ["TASKS", "TRAINING_LABELS", "read_model_card_metrics", "write_model_card"]
