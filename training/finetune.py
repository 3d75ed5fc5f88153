# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Fine-tune a saved AFT checkpoint with transformers' `Trainer`: a language model on a text file, or an image
classifier on an image folder.

    python -m training.finetune causal-lm MODEL_FOLDER --text FILE --output-dir OUT [--seq-len 256] [--epochs 1]
        [--max-steps N] [--batch-size 8] [--learning-rate 3e-4] [--weight-decay 0.1] [--warmup-ratio 0.05]
        [--seed 0] [--eval-fraction 0.1] [--bf16] [--cpu] [--logging-steps 10] [--report-to none]
    python -m training.finetune image-classification MODEL_FOLDER --images FOLDER --output-dir OUT [...]
        [--cache-dir DIR] [--max-eval-samples N]

causal-lm: the text file is read with the folder's tokenizer (the byte tokenizer's ids are the file's bytes), its
last `--eval-fraction` is held out, and both parts are cut into non-overlapping blocks of `--seq-len` tokens.

image-classification: FOLDER has the ImageNet layout, FOLDER/train/<class>/*.png and FOLDER/val/<class>/*.png. The
classifier head is re-initialised for the folder's classes when they differ from the checkpoint's; images are read
in the model's channel count (grey "L" for one channel, "RGB" for three) and prepared by the folder's image processor.
Every image file is checked before the model is loaded (training.data_images.check_image_files): a truncated, empty
or non-image file is named, with the fix, before any training.

Both evaluate before and after training, save the model and its tokenizer or image processor into OUT, and write
OUT/finetune_results.json with the two evaluations. Under `accelerate launch` (see training/accelerate_configs/) the
same command runs on several GPUs.

LoRA (peft, the `tools` extra): `--lora` trains low-rank adapters instead of every weight and saves only the adapter
into OUT (adapter_config.json, adapter_model.safetensors, the tokenizer or image processor), loadable with
`AutoPeftModelForCausalLM.from_pretrained(OUT)`, `PeftModel.from_pretrained(base, OUT)` or
`pipeline("text-generation", model=OUT)`.

    [--lora] [--lora-rank 8] [--lora-alpha 16] [--lora-dropout 0.0] [--lora-targets q_proj,k_proj,...] [--merge]
    [--push-to-hub REPO_ID [--hub-private] [--hub-revision BRANCH]]

The default targets are every linear layer of the blocks: the mixer's q_proj, k_proj, v_proj, out_proj and the MLP's
fc1, fc2 (not the embeddings, the tied LM head or the patch embedding). For image-classification the classifier head
is trained in full (peft's modules_to_save): it is new whenever the classes change. `--merge` also writes OUT/merged,
a full model folder with the adapters folded into the weights. `--push-to-hub` uploads the adapter folder as one
commit (the token is checked before training, as the trainers' --push-to-hub does).
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, load_dataset
from datasets import Image as ImageFeature
from PIL import Image
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoTokenizer,
    EvalPrediction,
    Trainer,
    TrainingArguments,
    set_seed,
)

# Importing the package registers "aft" with the Auto classes before anything is loaded.
from modeling_aft import AFTByteTokenizer
from training.atomic import atomic_write_json
from training.data_images import DECODE_ERRORS, UnreadableImageError, check_image_files, unreadable_image_message
from training.publish import PublishError

RESULTS_FILE = "finetune_results.json"
MERGED_FOLDER = "merged"
# Every linear layer of an AFT block (modeling_aft.AFTMixer and AFTMLP): attention-free mixing has no other weight
# matrices, and LoRA on all of them is what "all-linear" means in peft minus the LM head, which is tied to the
# byte embeddings here (adapting it would adapt the input side too).
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
# Matrices the mixer owns directly (not inside an nn.Linear): the position-bias factors U, V of full and local, a
# dense bias, AFT-conv's kernel. peft adapts them with `target_parameters` (a ParamWrapper around the mixer, which
# AFTModel unwraps to read the decoding state). conv_gamma and conv_beta are vectors: no low-rank update exists.
MIXER_PARAMETERS = ("position_bias_u", "position_bias_v", "position_bias", "conv_weight")
MIXER_LINEAR = ("q_proj", "k_proj", "v_proj", "out_proj")
IMAGE_EXTENSIONS = frozenset(ext.lower() for ext in Image.registered_extensions())


# ------------------------------------------------------------------------------------------------------------------
# Checks made before anything is loaded or trained
# ------------------------------------------------------------------------------------------------------------------


def check_model_folder(folder: Path) -> None:
    """A checkpoint folder written by `save_pretrained`: it exists and holds a config.json."""
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist; pass a folder written by save_pretrained.")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no config.json; pass a folder written by save_pretrained.")


def position_limit(config) -> int | None:
    """The longest sequence the model can read: variants that learn something per absolute position (AFT-full and
    AFT-local's w, or position embeddings) stop at max_position_embeddings; simple and conv have no limit."""
    return config.max_position_embeddings if config.has_absolute_positions else None


def check_seq_len(config, seq_len: int) -> None:
    if seq_len < 2:
        raise ValueError(f"seq_len={seq_len} is too short to predict anything; use --seq-len 2 or more.")
    limit = position_limit(config)
    if limit is not None and seq_len > limit:
        raise ValueError(
            f"seq_len={seq_len} exceeds max_position_embeddings={limit} of this AFT-{config.aft_variant} model; "
            f"use --seq-len {limit} or less."
        )


def check_fraction(eval_fraction: float) -> None:
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction={eval_fraction} must lie in (0, 1); e.g. --eval-fraction 0.1.")


# ------------------------------------------------------------------------------------------------------------------
# Text
# ------------------------------------------------------------------------------------------------------------------


def read_token_ids(path: Path, tokenizer) -> np.ndarray:
    """The token ids of the whole file. For the byte tokenizer those are the file's bytes, taken as they are (no
    decoding, so any byte sequence works, and fast: no per-character Python loop)."""
    if not path.is_file():
        raise FileNotFoundError(f"text file {path} does not exist; pass an existing file to --text.")
    raw = path.read_bytes()
    if not raw:
        raise ValueError(f"text file {path} is empty; pass a file with at least one block of text.")
    if isinstance(tokenizer, AFTByteTokenizer):
        return np.frombuffer(raw, dtype=np.uint8).astype(np.int64)  # (N,)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"text file {path} is not UTF-8 ({error}); convert it to UTF-8 first.") from None
    return np.asarray(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)  # (N,)


def split_blocks(ids: np.ndarray, seq_len: int) -> np.ndarray:
    """Non-overlapping blocks of seq_len ids; the tail shorter than a block is dropped."""
    count = len(ids) // seq_len
    return ids[: count * seq_len].reshape(count, seq_len)  # (count, seq_len)


def text_datasets(ids: np.ndarray, seq_len: int, eval_fraction: float) -> tuple[Dataset, Dataset]:
    """Train on the first (1 - eval_fraction) of the ids, evaluate on the last eval_fraction: the held-out text is
    text the model has not seen, not blocks interleaved with the training ones."""
    check_fraction(eval_fraction)
    held_out = int(round(len(ids) * eval_fraction))
    parts = {"train": ids[: len(ids) - held_out], "eval": ids[len(ids) - held_out :]}
    datasets = {}
    for name, part in parts.items():
        blocks = split_blocks(part, seq_len)  # (count, seq_len)
        if len(blocks) == 0:
            raise ValueError(
                f"the {name} part of the text has {len(part)} tokens (of {len(ids)}, eval_fraction={eval_fraction}), "
                f"fewer than one block of seq_len={seq_len}; use a longer text, a smaller --seq-len or another "
                "--eval-fraction."
            )
        # The model shifts the labels itself, so labels are the inputs.
        datasets[name] = Dataset.from_dict({"input_ids": blocks, "labels": blocks})
    return datasets["train"], datasets["eval"]


# ------------------------------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------------------------------


def _class_folders(split_dir: Path) -> dict[str, int]:
    """Each class folder of a split and its number of image files."""
    return {
        d.name: sum(1 for f in d.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        for d in sorted(split_dir.iterdir())
        if d.is_dir() and not d.name.startswith(".")
    }


def check_image_folder(root: Path) -> list[str]:
    """The ImageNet layout root/train/<class>/* and root/val/<class>/*; returns the class names (sorted)."""
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist; pass a folder with train/ and val/ inside.")
    found = {}
    for split in ("train", "val"):
        split_dir = root / split
        if not split_dir.is_dir():
            raise FileNotFoundError(f"{split_dir} does not exist; lay images out as {root}/{split}/<class>/<image>.")
        found[split] = _class_folders(split_dir)
        if sum(found[split].values()) == 0:
            raise ValueError(f"{split_dir} holds no images; put image files (.png, .jpg, ...) in {split_dir}/<class>/.")
    classes = sorted(name for name, count in found["train"].items() if count > 0)
    if len(classes) < 2:
        raise ValueError(
            f"{root}/train has {len(classes)} class with images ({classes}); a classifier needs 2 or more classes."
        )
    unknown = sorted(name for name, count in found["val"].items() if count > 0 and name not in classes)
    if unknown:
        raise ValueError(f"{root}/val has classes with no training images: {unknown}; add them to {root}/train.")
    return classes


def load_image_datasets(root: Path, cache_dir: Path | None = None):
    """The train and validation splits of the folder, read offline by datasets' packaged imagefolder builder. The
    "image" column is left undecoded ({"path", "bytes"}): `image_transform` decodes it, naming a file that fails,
    where datasets' own decoding would say only PIL's "image file is truncated"."""
    data = load_dataset("imagefolder", data_dir=str(root), cache_dir=str(cache_dir) if cache_dir else None)
    if "validation" not in data:
        raise ValueError(f"{root}/val gave no validation split (splits: {list(data)}); put the images in {root}/val.")
    return tuple(data[split].cast_column("image", ImageFeature(decode=False)) for split in ("train", "validation"))


def image_paths(dataset: Dataset) -> list[str]:
    """The files behind an undecoded "image" column (after any select)."""
    return [item["path"] for item in dataset["image"]]


def read_image(item: dict, mode: str) -> Image.Image:
    """One undecoded image ({"path", "bytes"}) as a loaded PIL image in `mode`; a decode error names the file."""
    path = item.get("path")
    try:
        with Image.open(io.BytesIO(item["bytes"]) if item.get("bytes") is not None else path) as image:
            return image.convert(mode)  # convert decodes the whole file, inside this try
    except DECODE_ERRORS as error:
        raise UnreadableImageError(unreadable_image_message(path, error)) from error


def image_transform(processor, num_channels: int):
    """A batch transform: image files in the model's channel count -> the processor's pixel values, with labels."""
    mode = "L" if num_channels == 1 else "RGB"

    def transform(batch: dict) -> dict:
        images = [read_image(item, mode) for item in batch["image"]]
        pixel_values = processor(images, return_tensors="pt")["pixel_values"]  # (B, C, H, W)
        return {"pixel_values": pixel_values, "labels": torch.as_tensor(batch["label"])}

    return transform


def check_pixel_shape(dataset: Dataset, config) -> None:
    """One processed example must have the model's (channels, size, size), else training would fail later."""
    expected = (config.num_channels, config.image_size, config.image_size)
    got = tuple(dataset[0]["pixel_values"].shape)
    if got != expected:
        raise ValueError(
            f"the image processor gives pixel values of shape {got}, but the model expects {expected}; "
            "save an image processor with the model's size (and channel count) into the model folder."
        )


def accuracy(prediction: EvalPrediction) -> dict[str, float]:
    """Top-1 accuracy of the logits against the labels."""
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    return {"accuracy": float((np.argmax(logits, axis=-1) == prediction.label_ids).mean())}


# ------------------------------------------------------------------------------------------------------------------
# Building the trainers
# ------------------------------------------------------------------------------------------------------------------


def training_arguments(args: argparse.Namespace, remove_unused_columns: bool) -> TrainingArguments:
    """TrainingArguments of transformers v5 from the command line. Evaluation happens once before and once after
    training (not during), and only the final model is saved."""
    return TrainingArguments(
        output_dir=str(args.output_dir),
        num_train_epochs=args.epochs,
        max_steps=args.max_steps if args.max_steps is not None else -1,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        # v5 has no warmup_ratio: a float in [0, 1) as warmup_steps is the fraction of all steps.
        warmup_steps=args.warmup_ratio,
        lr_scheduler_type=args.lr_scheduler,
        seed=args.seed,
        data_seed=args.seed,
        bf16=args.bf16,
        # bf16 on a machine without an accelerator is bf16 autocast on the CPU, which needs use_cpu.
        use_cpu=args.cpu or not torch.accelerator.is_available(),
        eval_strategy="no",
        save_strategy="no",
        logging_steps=args.logging_steps,
        report_to=args.report_to,
        remove_unused_columns=remove_unused_columns,
        dataloader_num_workers=args.num_workers,
    )


def base_path(args: argparse.Namespace) -> str:
    """The folder the weights are read from. An adapter records it as its base model, so for LoRA it is the absolute
    path: the adapter then loads from any working directory."""
    return str(args.model_folder.resolve()) if args.lora else str(args.model_folder)


def causal_lm_trainer(args: argparse.Namespace) -> tuple[Trainer, dict]:
    # The config, the tokenizer and the text are checked before the (possibly large) weights are read.
    check_seq_len(AutoConfig.from_pretrained(args.model_folder), args.seq_len)
    tokenizer = AutoTokenizer.from_pretrained(args.model_folder)
    train, evaluation = text_datasets(read_token_ids(args.text, tokenizer), args.seq_len, args.eval_fraction)
    model = AutoModelForCausalLM.from_pretrained(base_path(args))
    align_special_tokens(model, tokenizer)
    if args.lora:
        model = wrap_lora(model, args)
    trainer = Trainer(
        model=model,
        args=training_arguments(args, remove_unused_columns=True),
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
    )
    return trainer, {"train_blocks": len(train), "eval_blocks": len(evaluation), "seq_len": args.seq_len}


def image_classification_trainer(args: argparse.Namespace) -> tuple[Trainer, dict]:
    classes = check_image_folder(args.images)
    if not (args.model_folder / "preprocessor_config.json").is_file():
        raise FileNotFoundError(
            f"{args.model_folder} holds no preprocessor_config.json; save the model's image processor into it "
            "(processor.save_pretrained(folder)), e.g. a ViTImageProcessorPil of the model's image size."
        )
    processor = AutoImageProcessor.from_pretrained(args.model_folder)
    # The data is listed and every file it will read is checked before the (possibly large) weights are read.
    train, evaluation = load_image_datasets(args.images, args.cache_dir)
    names = train.features["label"].names
    if names != classes:
        raise ValueError(f"datasets found the classes {names} in {args.images}, not {classes}; check the folder.")
    if args.max_eval_samples is not None:
        evaluation = evaluation.select(range(min(args.max_eval_samples, len(evaluation))))
    check_image_files(image_paths(train) + image_paths(evaluation))
    model = AutoModelForImageClassification.from_pretrained(
        base_path(args),
        # num_labels follows from id2label; passing it as well makes transformers compare it with the checkpoint's
        # old id2label first and warn that they disagree.
        id2label=dict(enumerate(classes)),
        label2id={name: i for i, name in enumerate(classes)},
        # The checkpoint's head may have been trained on other classes: a new head of the right size replaces it.
        ignore_mismatched_sizes=True,
    )
    if model.config.num_channels == 1 and getattr(processor, "do_convert_rgb", False):
        processor.do_convert_rgb = False  # converting grey images back to RGB would give the model 3 channels
    if args.lora:
        model = wrap_lora(model, args)
    transform = image_transform(processor, model.config.num_channels)
    train, evaluation = train.with_transform(transform), evaluation.with_transform(transform)
    check_pixel_shape(train, model.config)
    trainer = Trainer(
        model=model,
        # The transform makes the model's inputs from the "image" column, which Trainer must therefore keep.
        args=training_arguments(args, remove_unused_columns=False),
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=processor,
        compute_metrics=accuracy,
    )
    return trainer, {"train_images": len(train), "eval_images": len(evaluation), "classes": classes}


# ------------------------------------------------------------------------------------------------------------------
# LoRA (peft)
# ------------------------------------------------------------------------------------------------------------------


def import_peft():
    """peft is in the `tools` extra, not a core dependency: its absence is a one-line error with the fix."""
    try:
        import peft
    except ImportError:
        raise ValueError("--lora needs peft; install it with `pip install -e .[tools]` (or pip install peft).") \
            from None
    return peft


def parse_lora_targets(text: str | None) -> list[str]:
    if text is None:
        return list(DEFAULT_LORA_TARGETS)
    targets = [name.strip() for name in text.split(",") if name.strip()]
    if not targets:
        raise ValueError(f"--lora-targets {text!r} names no module; pass e.g. {','.join(DEFAULT_LORA_TARGETS)}.")
    return targets


def check_lora_targets(model, targets: list[str]) -> tuple[list[str], list[str]]:
    """Split the targets into linear layers (by their last name; peft's target_modules) and the mixer's own matrices
    (peft's target_parameters); a name that is neither is refused with the model's own names."""
    own = [name for name in targets if name in MIXER_PARAMETERS or name in ("conv_gamma", "conv_beta")]
    shapes = {name.rsplit(".", 1)[-1]: tuple(p.shape) for name, p in model.named_parameters()}
    for name in own:
        if name not in shapes:
            present = sorted(set(MIXER_PARAMETERS) & set(shapes))
            raise ValueError(f"--lora-targets {name}: this model's mixers have no {name} "
                             f"(theirs: {present or 'none'}).")
        if len(shapes[name]) != 2:
            raise ValueError(f"--lora-targets {name}: a parameter of shape {shapes[name]} has no low-rank update; LoRA "
                             f"adapts matrices ({', '.join(MIXER_PARAMETERS)} or linear layers).")
    inside = sorted(set(targets) & set(MIXER_LINEAR)) if own else []
    if inside:
        # peft 0.21 nests the linear layers' LoRA inside the ParamWrapper of the mixer; after training, its merge
        # and its saved adapter then disagree (measured: 0.06 in the logits), so the pair is refused.
        raise ValueError(f"--lora-targets {','.join(own + inside)}: LoRA on a mixer's own matrices cannot be combined "
                         f"with its linear layers {inside} (peft's nested wrappers save and merge them "
                         f"inconsistently); adapt {','.join(own)} alone or with the MLP (fc1,fc2), or the linear "
                         "layers without them.")
    linear = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    unknown = [name for name in targets if name not in linear and name not in own]
    if unknown:
        raise ValueError(
            f"--lora-targets names {unknown}, which are no linear layer of this model; its linear layers are "
            f"{sorted(linear)} (default: {','.join(DEFAULT_LORA_TARGETS)}), its mixers' matrices "
            f"{sorted(set(MIXER_PARAMETERS) & set(shapes))}."
        )
    return [name for name in targets if name not in own], own


def wrap_lora(model, args: argparse.Namespace):
    """The model with LoRA adapters on the chosen linear layers; only those (and a classifier head) train."""
    peft = import_peft()
    targets = parse_lora_targets(args.lora_targets)
    modules, parameters = check_lora_targets(model, targets)
    classifier = args.task == "image-classification"
    config = peft.LoraConfig(
        r=args.lora_rank,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=modules,
        target_parameters=parameters or None,
        # The head is new whenever the classes change: a low-rank update of a random matrix would not do.
        modules_to_save=["classifier"] if classifier else None,
        task_type=None if classifier else peft.TaskType.CAUSAL_LM,
    )
    return peft.get_peft_model(model, config)


def parameter_counts(model) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    if hasattr(model, "get_nb_trainable_parameters"):  # a PeftModel: counts the base weights once
        trainable, total = model.get_nb_trainable_parameters()
    return {"trainable_parameters": int(trainable), "all_parameters": int(total)}


def align_special_tokens(model, tokenizer) -> None:
    """The tokenizer's special ids (the byte tokenizer: 0 for bos, eos and pad) into the model's config and generation
    config. Trainer (and TRL) otherwise rewrite them at the start of training with a warning; the model built is the
    same either way, only its saved config then says what the tokenizer says."""
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(tokenizer, name, None)
        if value is None:
            continue
        if getattr(model.config, name, None) is None:
            setattr(model.config, name, value)
        generation = getattr(model, "generation_config", None)
        if generation is not None and getattr(generation, name, None) is None:
            setattr(generation, name, value)


def save_merged(trainer: Trainer, folder: Path) -> None:
    """The adapters folded into the base weights: a plain model folder, loadable without peft."""
    merged = trainer.model.merge_and_unload()
    merged.save_pretrained(str(folder))
    trainer.processing_class.save_pretrained(str(folder))


def check_push(args: argparse.Namespace) -> None:
    """Before training, as the trainers do: a repo id, a token the Hub accepts and may write with."""
    if not args.push_to_hub:
        return
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from training.publish import check_revision, check_token

    if not args.lora:
        raise ValueError(
            "--push-to-hub uploads the LoRA adapter and needs --lora; publish a full fine-tuned folder with its card "
            "through `python -m training.publish`."
        )
    try:
        validate_repo_id(args.push_to_hub)
    except HFValidationError as error:
        raise ValueError(f"--push-to-hub {args.push_to_hub!r} is not a repo id ('org/name'): {error}") from None
    try:
        check_revision(args.hub_revision)
        check_token(args.push_to_hub)
    except PublishError as error:
        raise ValueError(f"--push-to-hub {args.push_to_hub}: {error}") from None


def push_adapter(folder: Path, args: argparse.Namespace) -> dict:
    """Upload the adapter folder as one commit with training.publish's steps (token check, repo and branch, commit).
    publish() itself wants a full model folder (config.json, weights, card); an adapter has adapter_config.json."""
    from huggingface_hub import CommitOperationAdd, HfApi, get_token

    from training import publish

    # The adapter and what loads it; not the merged full model beside it, nor Trainer's pickled training_args.bin.
    files = [item for item in publish.collect_files(folder)
             if item.path_in_repo.split("/")[0] not in (MERGED_FOLDER, "training_args.bin")]
    token = get_token()
    publish.refuse_token_in_files(files, token)
    if not token:
        raise publish.PublishError("no Hub token found; set HF_TOKEN or log in with `hf auth login` (a write token).")
    api = HfApi(endpoint=publish.resolve_endpoint(None))
    repo_id, revision = args.push_to_hub, args.hub_revision or "main"
    if "/" not in repo_id:
        repo_id = f"{publish.token_owner(api, token)}/{repo_id}"
    publish.open_repo(api, repo_id, args.hub_private, revision, token)
    operations = [CommitOperationAdd(item.path_in_repo, str(item.local)) for item in files]
    commit = publish.hub_step(f"committing to {repo_id} ({revision})", token, api.create_commit, repo_id, operations,
                              commit_message=f"Upload LoRA adapter {folder.resolve().name} with training.finetune",
                              revision=revision)
    return {"repo_id": repo_id, "revision": revision, "commit_url": commit.commit_url}


# ------------------------------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------------------------------


def evaluation_summary(metrics: dict, task: str) -> dict[str, float]:
    """The eval metrics without the timing entries; for a language model also bits per token (per byte for the
    byte models, the enwik8 measure)."""
    timings = ("runtime", "per_second", "preparation_time")
    summary = {key: value for key, value in metrics.items() if not any(word in key for word in timings)}
    if task == "causal-lm":
        summary["eval_bits_per_token"] = summary["eval_loss"] / math.log(2)
    return summary


def describe(label: str, summary: dict) -> str:
    text = f"{label}: eval loss {summary['eval_loss']:.4f}"
    if "eval_bits_per_token" in summary:
        text += f" ({summary['eval_bits_per_token']:.4f} bits per token)"
    if "eval_accuracy" in summary:
        text += f", accuracy {summary['eval_accuracy']:.4f}"
    return text


def write_json_atomically(path: Path, payload: dict) -> None:
    """The project's atomic write: a crash or a full disk never leaves half a results file, nor a temporary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, payload, indent=2)


def prepare(args: argparse.Namespace) -> tuple[Trainer, dict]:
    """Everything that can fail on bad input, done before any training: the checks, the model, the data."""
    check_numbers(args)
    check_model_folder(args.model_folder)
    if args.lora:
        import_peft()
    check_push(args)
    set_seed(args.seed)  # before loading: a re-initialised classifier head draws its weights then
    build = causal_lm_trainer if args.task == "causal-lm" else image_classification_trainer
    return build(args)


def finetune(trainer: Trainer, args: argparse.Namespace, data: dict) -> dict:
    """Evaluate, train, evaluate again, save the model and the results; returns what is written to the JSON."""
    main_process = trainer.is_world_process_zero()  # under accelerate launch, one process reports
    counts = parameter_counts(trainer.model)
    if main_process and args.lora:
        print(f"LoRA: {counts['trainable_parameters']:,} trainable of {counts['all_parameters']:,} parameters",
              flush=True)
    before = evaluation_summary(trainer.evaluate(), args.task)
    if main_process:
        print(describe("before", before), flush=True)
    train_output = trainer.train()
    after = evaluation_summary(trainer.evaluate(), args.task)
    if main_process:
        print(describe("after", after), flush=True)
    trainer.save_model(str(args.output_dir))
    results = {
        "task": args.task,
        "model_folder": str(args.model_folder),
        "data": data,
        "steps": train_output.global_step,
        "train_loss": train_output.training_loss,
        "before": before,
        "after": after,
        **counts,
    }
    if args.lora:
        results["lora"] = {"rank": args.lora_rank, "alpha": args.lora_alpha, "dropout": args.lora_dropout,
                           "targets": parse_lora_targets(args.lora_targets)}
        if args.merge and main_process:
            save_merged(trainer, args.output_dir / MERGED_FOLDER)
            results["merged_folder"] = str(args.output_dir / MERGED_FOLDER)
    if main_process:
        write_json_atomically(args.output_dir / RESULTS_FILE, results)  # before the push: it goes up with the adapter
    if main_process and args.push_to_hub:
        results["hub"] = push_adapter(args.output_dir, args)
        write_json_atomically(args.output_dir / RESULTS_FILE, results)
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    tasks = parser.add_subparsers(dest="task", required=True)
    text = tasks.add_parser("causal-lm", help="fine-tune an AFTForCausalLM on a text file")
    text.add_argument("--text", type=Path, required=True, help="the text file (UTF-8; bytes for the byte tokenizer)")
    text.add_argument("--seq-len", type=int, default=256, help="tokens per training block")
    text.add_argument("--eval-fraction", type=float, default=0.1, help="the last part of the text held out")
    images = tasks.add_parser("image-classification", help="fine-tune an AFTForImageClassification")
    images.add_argument("--images", type=Path, required=True, help="a folder with train/<class>/ and val/<class>/")
    images.add_argument("--cache-dir", type=Path, default=None, help="datasets' cache (default: its own)")
    images.add_argument("--max-eval-samples", type=int, default=None, help="evaluate on the first N images only")
    for sub in (text, images):
        sub.add_argument("model_folder", type=Path, help="a checkpoint written by save_pretrained")
        sub.add_argument("--output-dir", type=Path, required=True, help="where the fine-tuned model goes")
        sub.add_argument("--epochs", type=float, default=1.0)
        sub.add_argument("--max-steps", type=int, default=None, help="stop after N steps (overrides --epochs)")
        sub.add_argument("--batch-size", type=int, default=8, help="per device")
        sub.add_argument("--gradient-accumulation-steps", type=int, default=1)
        sub.add_argument("--learning-rate", type=float, default=3e-4)
        sub.add_argument("--weight-decay", type=float, default=0.1)
        sub.add_argument("--warmup-ratio", type=float, default=0.05, help="fraction of the steps spent warming up")
        sub.add_argument("--lr-scheduler", default="linear", help="transformers' lr_scheduler_type, e.g. cosine")
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--bf16", action="store_true", help="bf16 mixed precision")
        sub.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is present")
        sub.add_argument("--logging-steps", type=int, default=10)
        sub.add_argument("--report-to", default="none", help="none, tensorboard, ... (transformers' report_to)")
        sub.add_argument("--num-workers", type=int, default=0, help="data loader worker processes")
        lora = sub.add_argument_group("LoRA (peft)")
        lora.add_argument("--lora", action="store_true", help="train LoRA adapters only; OUT holds the adapter")
        lora.add_argument("--lora-rank", type=int, default=8, help="the adapters' rank r")
        lora.add_argument("--lora-alpha", type=float, default=16.0, help="scale alpha (the update is alpha / r B A)")
        lora.add_argument("--lora-dropout", type=float, default=0.0, help="dropout on the adapters' input")
        lora.add_argument("--lora-targets", default=None,
                          help=f"comma-separated linear layer names (default {','.join(DEFAULT_LORA_TARGETS)})")
        lora.add_argument("--merge", action="store_true", help=f"also write OUT/{MERGED_FOLDER}, adapters merged")
        lora.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="upload the adapter folder")
        lora.add_argument("--hub-private", action="store_true", help="create the Hub repo private")
        lora.add_argument("--hub-revision", default=None, help="the branch to commit to (default main)")
    return parser


def check_numbers(args: argparse.Namespace) -> None:
    """Command-line values that would only fail deep inside Trainer, named here with their fix."""
    for name in ("batch_size", "gradient_accumulation_steps", "logging_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}={getattr(args, name)} must be at least 1.")
    if args.max_steps is not None and args.max_steps < 1:
        raise ValueError(f"--max-steps={args.max_steps} must be at least 1 (or leave it out to use --epochs).")
    if args.max_steps is None and args.epochs <= 0:
        raise ValueError(f"--epochs={args.epochs} must be > 0.")
    if not 0.0 <= args.warmup_ratio < 1.0:
        raise ValueError(f"--warmup-ratio={args.warmup_ratio} must lie in [0, 1).")
    lora_options = {"--lora-rank": args.lora_rank != 8, "--lora-alpha": args.lora_alpha != 16.0,
                    "--lora-dropout": args.lora_dropout != 0.0, "--lora-targets": args.lora_targets is not None,
                    "--merge": args.merge}
    given = [name for name, changed in lora_options.items() if changed]
    if given and not args.lora:
        raise ValueError(f"{', '.join(given)} only apply with --lora; add --lora (or drop them).")
    if args.lora_rank < 1:
        raise ValueError(f"--lora-rank={args.lora_rank} must be at least 1 (8 or 16 are usual).")
    if not args.lora_alpha > 0:
        raise ValueError(f"--lora-alpha={args.lora_alpha} must be > 0 (often 2 x --lora-rank).")
    if not 0.0 <= args.lora_dropout < 1.0:
        raise ValueError(f"--lora-dropout={args.lora_dropout} must lie in [0, 1).")
    if args.lora:
        parse_lora_targets(args.lora_targets)
    if args.task == "causal-lm":
        check_fraction(args.eval_fraction)
    elif args.max_eval_samples is not None and args.max_eval_samples < 1:
        raise ValueError(f"--max-eval-samples={args.max_eval_samples} must be at least 1 (or leave it out).")


def one_line(error: BaseException) -> str:
    """The message of an error on one line. A DataLoader worker's error arrives re-raised with the worker's traceback
    as its message; its last line is the original "module.Class: message"."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    last = lines[-1]
    if len(lines) > 1:
        last = last.split(f"{type(error).__name__}: ", 1)[-1]
    return " ".join(last.split())


def fail(error: BaseException) -> SystemExit:
    """The command's one-line error and exit status 2 (as argparse's own errors)."""
    print(f"error: {one_line(error)}", file=sys.stderr)
    return SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        trainer, data = prepare(args)
    except (ValueError, OSError) as error:  # OSError: from_pretrained's missing weights or processor files
        raise fail(error) from None
    try:
        finetune(trainer, args, data)
    except UnreadableImageError as error:  # a file damaged after the check; nothing has been saved
        raise fail(error) from None
    except PublishError as error:  # the push failed after saving
        raise fail(RuntimeError(f"{error}; the adapter is saved in {args.output_dir}, push it again later")) from None
    if trainer.is_world_process_zero():
        print(f"saved the fine-tuned model and {RESULTS_FILE} to {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
