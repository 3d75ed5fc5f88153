# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Train an AFT image classifier with the DeiT recipe and report top-1 accuracy (the paper's ImageNet task).

    python -m training.train_image                                          # Fashion-MNIST (Debian), CPU minutes
    python -m training.train_image --preset imagenet-conv-tiny-32-11 --data /path/to/imagenet   # train/ and val/
    python -m training.train_image --dataset uoft-cs/cifar10 --image-column img --config-overrides image_size=32

DeiT recipe: AdamW, linear warmup then cosine decay, label smoothing, random-resized crop and horizontal flip,
mixup and cutmix (--mixup-alpha, --cutmix-alpha; 0 disables each). --data: nothing (Fashion-MNIST), an image folder in
the ImageNet layout (train/<class>/*, val/<class>/*), or a CIFAR-10 python folder / archive. The run ends with a
Hugging Face folder OUTPUT_DIR/model (weights, image processor, model card with the measured top-1). --dataset instead
reads a `datasets` dataset (a Hub name, a folder in datasets' imagefolder layout, a save_to_disk folder) with an Image
column and a label column (a ClassLabel's names become id2label); valid is its validation (else test) split, or 5% of
train held out.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import modeling_aft  # noqa: F401
from modeling_aft import AFTForImageClassification

from . import engine
from .augment import mixup_cutmix, random_flip, random_resized_crop, soft_target_cross_entropy
from .data_images import is_fixed_size, load_image_dataset, load_images, make_image_processor, normalize

# Images of a folder are decoded at image_size / 0.875 (256 for 224), cropped at random for training and in the
# centre for evaluation, as DeiT does.
CROP_RATIO = 0.875
# The final evaluation also scores the first images of the validation split on their own (results.json keeps both),
# so that a shipped checkpoint can be re-measured quickly and compared with the number recorded at training time.
TEST_PART_IMAGES = 1000


def parser():
    p = engine.base_parser("image", __doc__.split("\n\n")[0])
    p.add_argument("--eval-images", type=int, help="validation images read at each evaluation")
    p.add_argument("--final-eval-images", type=int, default=None, help="images of the final evaluation (all: default)")
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--mixup-alpha", type=float)
    p.add_argument("--cutmix-alpha", type=float)
    p.add_argument("--mixup-prob", type=float, help="probability that a batch is mixed at all")
    p.add_argument("--crop-scale-min", type=float, help="smallest area fraction of the random-resized crop")
    add_dataset_args(p, labels=True)
    return p


def add_dataset_args(p, labels: bool) -> None:
    """--dataset and its options, shared with the pixel trainer (which needs no labels)."""
    d = p.add_argument_group("datasets input (instead of --data)")
    d.add_argument("--dataset", metavar="NAME_OR_PATH",
                   help="a Hub dataset, a folder in datasets' imagefolder layout, or a save_to_disk folder")
    d.add_argument("--dataset-config", metavar="NAME", help="the dataset's configuration (Hub datasets with several)")
    d.add_argument("--dataset-split", metavar="SPLIT",
                   help="train on this split alone, 5%% held out as valid (default: train, and validation or test)")
    d.add_argument("--image-column", metavar="COLUMN", help="the column of images (default: image)")
    if labels:
        d.add_argument("--label-column", metavar="COLUMN",
                       help="the column of class labels: ClassLabel, strings or integers (default: label)")


def load_data(args, image_size: int | None, num_channels: int | None):
    """--data (Fashion-MNIST, CIFAR-10, an ImageNet-layout folder) or --dataset (`datasets`), as ImageSplits."""
    options = [name for name in ("dataset_config", "dataset_split", "image_column", "label_column")
               if getattr(args, name, None) is not None]
    if args.dataset is None and options:
        given = ", ".join(f"--{name.replace('_', '-')}" for name in options)
        raise engine.TrainingError(f"{given} only apply to --dataset; pass --dataset NAME_OR_PATH, or drop them.")
    if args.dataset is not None and args.data is not None:
        raise engine.TrainingError(f"pass either --data {args.data} or --dataset {args.dataset}, not both.")
    try:
        if args.dataset is None:
            return load_images(args.data, image_size=image_size, num_channels=num_channels)
        labels = (args.label_column or "label") if hasattr(args, "label_column") else None
        return load_image_dataset(args.dataset, image_size, 3 if num_channels is None else num_channels,
                                  config=args.dataset_config, split=args.dataset_split,
                                  image_column=args.image_column or "image", label_column=labels)
    except (ValueError, FileNotFoundError) as err:
        raise engine.TrainingError(str(err)) from None


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    h, w = images.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top:top + size, left:left + size]


def make_task(args) -> engine.Task:
    base = engine.model_config(args)  # the image size and channels, before the data is read at them
    size = base.image_size
    # A folder's images are decoded at size / 0.875 (then cropped); Fashion-MNIST and CIFAR-10 come at their own size,
    # which the crops below cut to the model's.
    load_size = None if is_fixed_size(args.data) and args.dataset is None else round(size / CROP_RATIO)
    data = load_data(args, load_size, base.num_channels)
    if data.image_size < size:
        raise engine.TrainingError(
            f"{data.source} images are {data.image_size}x{data.image_size}, smaller than the model's image_size "
            f"{size}; pass --config-overrides image_size={data.image_size} (with a patch_size that divides it).")
    if data.num_channels != base.num_channels:
        raise engine.TrainingError(f"{data.source} images have {data.num_channels} channel(s), the model "
                                   f"{base.num_channels}; pass --config-overrides num_channels={data.num_channels}.")
    if len(data.train) == 0 or len(data.valid) == 0:
        raise engine.TrainingError(f"{args.dataset or args.data or 'Fashion-MNIST'}: an empty train or validation "
                                   "split.")
    names = list(data.class_names)
    config = engine.model_config(args, fixed=dict(num_labels=len(names), id2label=dict(enumerate(names)),
                                                  label2id={n: i for i, n in enumerate(names)}))
    mean, std = data.mean, data.std

    def prepare(batch, generator):
        images, labels = batch  # (B, C, H, W) uint8, (B,)
        x = images.float() / 255.0
        x = random_resized_crop(x, size, generator, scale=(args.crop_scale_min, 1.0))
        x = random_flip(x, generator)
        x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
        return mixup_cutmix(x, labels, len(names), generator, mixup_alpha=args.mixup_alpha,
                            cutmix_alpha=args.cutmix_alpha, prob=args.mixup_prob,
                            label_smoothing=args.label_smoothing)

    def loss(model, batch):
        x, targets = batch  # (B, C, size, size) normalised, (B, classes) soft targets
        return soft_target_cross_entropy(model(pixel_values=x).logits.float(), targets)

    @torch.no_grad()
    def evaluate(model, accelerator, final: bool) -> dict:
        limit = args.final_eval_images if final else args.eval_images
        out = evaluate_first(model, accelerator, len(data.valid) if limit is None else min(limit, len(data.valid)))
        if final:
            part = evaluate_first(model, accelerator, min(TEST_PART_IMAGES, len(data.valid)))
            out.update(part_top1=part["top1"], part_loss=part["loss"], part_images=part["images"])
        else:
            del out["images"]
        return out

    def evaluate_first(model, accelerator, n: int) -> dict:
        return evaluate_classifier(model, data.valid, n, size, mean, std, args.eval_batch_size, accelerator)

    def finish(folder: Path, model, metrics, final):
        make_image_processor(size, data.num_channels, mean, std).save_pretrained(folder)
        images = int(metrics["images"]) if final else min(args.eval_images, len(data.valid))
        name = "Top-1 accuracy" + ("" if final else " (last evaluation during training)")
        results = [{"type": "accuracy", "name": name, "value": metrics["top1"], "split": "validation",
                    "args": {"images": images}}]
        return results, None, None

    return engine.Task(
        name="image", config=config, model_class=AFTForImageClassification, train_set=data.train, loss=loss,
        prepare=prepare, evaluate=evaluate, finish=finish, card_task="image-classification", unit="images",
        metric="top1",
        dataset_info={"name": data.source, "type": data.source, "split": "validation",
                      **({"id": data.dataset_id} if data.dataset_id else {})},
    )


@torch.no_grad()
def evaluate_classifier(model, dataset, n: int, size: int, mean, std, batch_size: int, accelerator=None) -> dict:
    """Loss, top-1 and count of the first n images of `dataset` ((C, H, W) uint8, label), centre-cropped to `size`
    and normalised; with an accelerator the images are shared out over its processes."""
    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    nll, correct, count = 0.0, 0.0, 0.0
    for idx, weight in engine.sharded_batches(n, batch_size, accelerator):
        items = [dataset[int(i)] for i in idx]
        images = center_crop(torch.stack([im for im, _ in items]), size).to(device)
        labels = torch.tensor([lab for _, lab in items], device=device)
        logits = model(pixel_values=normalize(images, mean, std)).logits.float()
        w = weight.to(logits.device).double()
        nll += float((F.cross_entropy(logits, labels, reduction="none").double() * w).sum())
        correct += float(((logits.argmax(-1) == labels).double() * w).sum())
        count += float(w.sum())
    model.train(was_training)
    nll, correct, count = engine.reduce_sums([nll, correct, count], accelerator)
    return {"loss": nll / count, "top1": correct / count, "images": count}


def report(metrics: dict, args) -> bool:
    if "images" not in metrics:  # no final evaluation ran
        return False
    print(f"validation top-1: {metrics['top1']:.4f} over {int(metrics['images'])} images")
    return True


def main(argv: list[str] | None = None) -> dict:
    return engine.cli("image", parser(), make_task, report, argv)

if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
