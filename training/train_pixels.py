# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Train an AFT on images read as sequences of sub-pixels and report bits per dimension (the paper's CIFAR-10 task).

    python -m training.train_pixels                                      # Fashion-MNIST (Debian), CPU minutes
    python -m training.train_pixels --preset cifar10-local-256 --data /path/to/cifar-10-batches-py   # the paper's run

An image of H x W x C becomes H*W*C tokens in raster order (row, column, channel), each a 256-way target; the input
is a start token (id 256) followed by all sub-pixels but the last. Training augments with a random horizontal flip
and a +-10 intensity jitter. --data: nothing (Fashion-MNIST), a CIFAR-10 python folder (`cifar-10-batches-py`) or
its `cifar-10-python.tar.gz`, or an image folder (train/<class>/..., val/<class>/...). The run ends with a Hugging
Face folder OUTPUT_DIR/model with a grid of sampled images (samples.png) and a model card with the bits per dimension.
--dataset instead reads the Image column of a `datasets` dataset (as the image trainer does; labels are not needed),
at --image-size.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

import modeling_aft  # noqa: F401
from modeling_aft import AFTForCausalLM

from . import engine
from .atomic import atomic_file
from .augment import pixel_flip_jitter
from .data_images import is_fixed_size
from .train_image import add_dataset_args, load_data

START = 256  # the start-of-image token; sub-pixel values are 0..255
# The final evaluation also scores the first images of the validation split on their own (results.json keeps both),
# so that a shipped checkpoint can be re-measured quickly and compared with the number recorded at training time.
TEST_PART_IMAGES = 100


def parser():
    p = engine.base_parser("pixels", __doc__.split("\n\n")[0])
    p.add_argument("--eval-images", type=int, help="validation images read at each evaluation")
    p.add_argument("--final-eval-images", type=int, default=None, help="images of the final evaluation (all: default)")
    p.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--jitter", type=int, help="intensity jitter (+-) of the training augmentation; 0 disables")
    p.add_argument("--sample-images", type=int, help="images sampled into samples.png at the end (0: none)")
    p.add_argument("--image-size", type=int, default=None,
                   help="side of the square images read from an image folder (required there; Fashion-MNIST and "
                        "CIFAR-10 keep their own 28 and 32)")
    add_dataset_args(p, labels=False)
    return p


def to_tokens(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) uint8 -> (B, H*W*C) int64 in raster order, channels innermost (R, G, B of a pixel together)."""
    return images.permute(0, 2, 3, 1).reshape(images.shape[0], -1).long()


def from_tokens(tokens: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    return tokens.reshape(-1, height, width, channels).permute(0, 3, 1, 2).to(torch.uint8)  # (B, C, H, W)


def nll_per_image(model, tokens: torch.Tensor) -> torch.Tensor:
    """Summed negative log-likelihood (nats) of each image's sub-pixels, (B,)."""
    start = torch.full_like(tokens[:, :1], START)
    logits = model(input_ids=torch.cat([start, tokens[:, :-1]], dim=1), use_cache=False).logits  # (B, L, 257)
    logp = torch.log_softmax(logits[..., :256].float(), dim=-1)
    return -logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).sum(dim=1)


def make_task(args) -> engine.Task:
    if args.image_size is not None and args.image_size < 1:
        raise engine.TrainingError(f"--image-size must be a positive integer, got {args.image_size}.")
    if args.image_size is None and args.dataset is not None:
        raise engine.TrainingError(f"--dataset {args.dataset}: pass --image-size (e.g. 32), the side its images are "
                                   "resized and cropped to; each becomes side x side x 3 sub-pixels.")
    if args.image_size is None and not is_fixed_size(args.data):
        raise engine.TrainingError(f"--data {args.data} is an image folder: pass --image-size (e.g. 32), the side its "
                                   "images are resized and cropped to; each becomes side x side x 3 sub-pixels.")
    data = load_data(args, args.image_size, None)
    length = data.image_size * data.image_size * data.num_channels
    config = engine.model_config(args, defaults={"max_position_embeddings": length},
                                 fixed={"vocab_size": 257, "bos_token_id": START})
    engine.check_positions(config, length, f"images of {data.num_channels}x{data.image_size}x{data.image_size} are "
                                           f"sequences of {length} sub-pixels,")
    if len(data.train) == 0 or len(data.valid) == 0:
        raise engine.TrainingError(f"{args.dataset or args.data or 'Fashion-MNIST'}: an empty train or validation "
                                   "split.")
    shape = (data.num_channels, data.image_size, data.image_size)

    def prepare(batch, generator):
        images, labels = batch
        return pixel_flip_jitter(images, generator, jitter=args.jitter or 0), labels

    def loss(model, batch):
        tokens = to_tokens(batch[0])
        return nll_per_image(model, tokens).mean() / tokens.shape[1]

    @torch.no_grad()
    def evaluate(model, accelerator, final: bool) -> dict:
        limit = args.final_eval_images if final else args.eval_images
        out = evaluate_first(model, accelerator, len(data.valid) if limit is None else min(limit, len(data.valid)))
        if final:
            part = evaluate_first(model, accelerator, min(TEST_PART_IMAGES, len(data.valid)))
            out.update(part_bpd=part["bpd"], part_images=part["images"])
        else:
            del out["images"]
        return out

    def evaluate_first(model, accelerator, n: int) -> dict:
        return evaluate_bits_per_dim(model, data.valid, n, args.eval_batch_size, accelerator)

    def finish(folder: Path, model, metrics, final):
        (folder / "image_format.json").write_text(json.dumps(
            {"channels": shape[0], "height": shape[1], "width": shape[2], "start_token_id": START,
             "order": "raster (row, column, channel)", "source": data.source}, indent=2))
        images = int(metrics["images"]) if final else min(args.eval_images, len(data.valid))
        name = "Bits per dimension" + ("" if final else " (last evaluation during training)")
        results = [{"type": "bpd", "name": name, "value": metrics["bpd"], "split": "validation",
                    "args": {"images": images}}]
        image = None
        if args.sample_images:
            grid = sample_images(model, args.sample_images, shape, args.seed)
            save_grid(grid, folder / "samples.png")
            image = "samples.png"
        return results, None, image

    return engine.Task(
        name="pixels", config=config, model_class=AFTForCausalLM, train_set=data.train, loss=loss,
        prepare=prepare, evaluate=evaluate, finish=finish, card_task="pixel-lm", unit="sub-pixels", metric="bpd",
        dataset_info={"name": data.source, "type": data.source, "split": "validation",
                      **({"id": data.dataset_id} if data.dataset_id else {})},
        extra_state={"units_per_item": length},
    )


@torch.no_grad()
def evaluate_bits_per_dim(model, dataset, n: int, batch_size: int, accelerator=None) -> dict:
    """Mean negative log2-likelihood of one sub-pixel over the first n images of `dataset` ((C, H, W) uint8, label);
    with an accelerator the images are shared out over its processes."""
    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count, length = 0.0, 0.0, 0
    for idx, weight in engine.sharded_batches(n, batch_size, accelerator):
        tokens = to_tokens(torch.stack([dataset[int(i)][0] for i in idx]).to(device))  # (B, C*H*W)
        length = tokens.shape[1]
        nll = nll_per_image(model, tokens).double().cpu()
        total += float((nll * weight.double()).sum())
        count += float(weight.sum())
    model.train(was_training)
    total, count = engine.reduce_sums([total, count], accelerator)
    nats = total / (count * length)
    return {"loss": nats, "bpd": nats / math.log(2), "images": count}


@torch.no_grad()
def sample_images(model, count: int, shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    """`count` images drawn sub-pixel by sub-pixel from the model (its recurrent state for simple/local/conv)."""
    model.eval()
    c, h, w = shape
    torch.manual_seed(seed)
    start = torch.full((count, 1), START, dtype=torch.long, device=model.device)
    out = model.generate(start, attention_mask=torch.ones_like(start), do_sample=True, top_k=0, temperature=1.0,
                         max_new_tokens=c * h * w, suppress_tokens=[START], pad_token_id=0, eos_token_id=None)
    return from_tokens(out[:, 1:].cpu(), c, h, w)


def save_grid(images: torch.Tensor, path: Path, columns: int = 4, scale: int = 4) -> None:
    """(N, C, H, W) uint8 -> one PNG, images in rows of `columns`, enlarged `scale` times, 2-pixel gaps."""
    from PIL import Image

    n, c, h, w = images.shape
    rows = math.ceil(n / columns)
    canvas = torch.full((c, rows * (h + 2), columns * (w + 2)), 255, dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, columns)
        canvas[:, r * (h + 2) + 1:r * (h + 2) + 1 + h, col * (w + 2) + 1:col * (w + 2) + 1 + w] = images[i]
    array = canvas.permute(1, 2, 0).numpy()
    img = Image.fromarray(array[..., 0] if c == 1 else array, mode="L" if c == 1 else "RGB")
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    with atomic_file(path, "wb") as file:
        img.save(file, format="PNG")


def report(metrics: dict, args) -> bool:
    if "images" not in metrics:  # no final evaluation ran
        return False
    print(f"validation bits per dimension: {metrics['bpd']:.4f} over {int(metrics['images'])} images")
    return True


def main(argv: list[str] | None = None) -> dict:
    return engine.cli("pixels", parser(), make_task, report, argv)

if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
