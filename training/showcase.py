# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""First contact with AFT: load the shipped checkpoints (pretrained/) as any Hugging Face user would, and use them.

    python -m training.showcase                       # `make demo`: about 15 seconds on 2 CPU cores
    python -m training.showcase --prompt "Paris is" --max-new-tokens 400

1. The byte-level AFT-local LM, through `pipeline("text-generation")`, streams a sampled continuation of a prompt.
2. The AFT-conv classifier, through `pipeline("image-classification")`, labels Fashion-MNIST test images.
3. The pixel LM draws garments sub-pixel by sub-pixel on its constant-size decoding state (printed, and saved as
   a PNG).
4. Each model's metric is measured again on the fixed part of its test split that the training run also scored on
   its own, and printed beside the value recorded then (and the full test split's value from its card).

Everything loads through the Auto classes from local folders: no network, no hub.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import modeling_aft  # noqa: F401  (registers "aft" with the Auto classes: the folders' own code is not needed)

REPO = Path(__file__).resolve().parent.parent
PRETRAINED = REPO / "pretrained"
TEXT, IMAGE, PIXELS = "aft-local-wikipedia", "aft-conv-fashion-mnist", "aft-local-fashion-mnist-pixels"
SHADES = " .:-=+*#%@"  # a terminal picture of a grey image, dark to light


class ShowcaseError(ValueError):
    pass


def folder_of(name: str, root: Path) -> Path:
    folder = root / name
    if not (folder / "config.json").is_file():
        raise ShowcaseError(f"{folder} holds no checkpoint; run from a full checkout of aft-transformers, or pass "
                            f"--pretrained with the folder that holds {name}/.")
    return folder


def recorded(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())["metrics"]


def show_text(folder: Path, prompt: str, max_new_tokens: int, seed: int) -> dict:
    from transformers import AutoTokenizer, TextStreamer, pipeline

    from .data_text import load_text
    from .evaluate_text import evaluate_bits_per_byte
    from .train_text import TEST_PART_BYTES

    generator = pipeline("text-generation", model=str(folder))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    print(f"\n== {folder.name}: {type(generator.model).__name__}, {generator.model.num_parameters() / 1e6:.2f}M "
          f"parameters, pipeline('text-generation') ==")
    limit = generator.model.config.max_position_embeddings
    max_new_tokens = min(max_new_tokens, limit - len(tokenizer(prompt).input_ids))
    torch.manual_seed(seed)
    print(prompt, end="", flush=True)
    start = time.perf_counter()
    generator(prompt, max_new_tokens=max_new_tokens, do_sample=True, temperature=0.8, top_k=40,
              streamer=TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True))
    print(f"[{max_new_tokens} bytes in {time.perf_counter() - start:.1f} s, decoded on AFT's recurrent state]")
    test = load_text(None).test
    measured = evaluate_bits_per_byte(generator.model, test, generator.model.config.max_position_embeddings, 16,
                                      max_bytes=TEST_PART_BYTES)
    return dict(name=folder.name, metric="bits per character", measured=measured["bpc"], part=f"first "
                f"{TEST_PART_BYTES:,} test bytes", recorded=recorded(folder)["part_bpc"],
                full=recorded(folder)["bpc"], full_part="the whole test split")


def show_image(folder: Path, count: int) -> dict:
    from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline

    from .data_images import load_fashion_mnist
    from .train_image import TEST_PART_IMAGES, evaluate_classifier

    # trust_remote_code=False: the package's classes serve; without it transformers 5's pipeline also probes an
    # optional AutoVideoProcessor, which sees the processor's auto_map and asks on the terminal whether to run code.
    classifier = pipeline("image-classification", model=str(folder), trust_remote_code=False)
    print(f"\n== {folder.name}: {type(classifier.model).__name__}, {classifier.model.num_parameters() / 1e6:.2f}M "
          f"parameters, pipeline('image-classification') ==")
    test = load_fashion_mnist().valid
    names = classifier.model.config.id2label
    pictures = [tensor_to_pil(test[i][0]) for i in range(count)]
    for i, predictions in enumerate(classifier(pictures, top_k=2)):
        best, second = predictions
        verdict = "right" if best["label"] == names[test[i][1]] else f"wrong (it is a {names[test[i][1]]})"
        print(f"test image {i}: {best['label']:<12} {best['score']:.2f}  (then {second['label']} {second['score']:.2f})"
              f"  {verdict}")
    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    processor = AutoImageProcessor.from_pretrained(folder)
    size = model.config.image_size
    measured = evaluate_classifier(model, test, TEST_PART_IMAGES, size, processor.image_mean, processor.image_std, 64)
    return dict(name=folder.name, metric="top-1", measured=measured["top1"], part=f"first {TEST_PART_IMAGES:,} test "
                "images", recorded=recorded(folder)["part_top1"], full=recorded(folder)["top1"],
                full_part="all 10,000 test images")


def show_pixels(folder: Path, count: int, seed: int, out: Path) -> dict:
    from transformers import AutoModelForCausalLM

    from .data_images import load_fashion_mnist
    from .train_pixels import TEST_PART_IMAGES, evaluate_bits_per_dim, sample_images, save_grid

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    layout = json.loads((folder / "image_format.json").read_text())
    shape = (layout["channels"], layout["height"], layout["width"])
    print(f"\n== {folder.name}: {type(model).__name__}, {model.num_parameters() / 1e6:.2f}M parameters, "
          f"{count} images of {shape[1]}x{shape[2]} drawn sub-pixel by sub-pixel ==")
    start = time.perf_counter()
    images = sample_images(model, count, shape, seed)  # (N, C, H, W) uint8
    print(f"[{count} x {shape[0] * shape[1] * shape[2]} sub-pixels in {time.perf_counter() - start:.1f} s]")
    for row in terminal_picture(images):
        print(row)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_grid(images, out)
    print(f"saved {out}")
    test = load_fashion_mnist().valid
    measured = evaluate_bits_per_dim(model, test, TEST_PART_IMAGES, 16)
    return dict(name=folder.name, metric="bits per dimension", measured=measured["bpd"], part=f"first "
                f"{TEST_PART_IMAGES:,} test images", recorded=recorded(folder)["part_bpd"],
                full=recorded(folder)["bpd"], full_part="all 10,000 test images")


def tensor_to_pil(image: torch.Tensor):
    from PIL import Image

    array = image.permute(1, 2, 0).numpy()  # (H, W, C)
    return Image.fromarray(array[..., 0], mode="L") if array.shape[-1] == 1 else Image.fromarray(array, mode="RGB")


def terminal_picture(images: torch.Tensor) -> list[str]:
    """Grey images side by side as characters, two pixels a character across (terminals are twice as tall)."""
    grey = images.float().mean(dim=1)  # (N, H, W)
    rows = []
    for y in range(0, grey.shape[1], 2):
        parts = []
        for image in grey:
            cells = image[y:y + 2].mean(dim=0)  # (W,)
            parts.append("".join(SHADES[min(len(SHADES) - 1, int(v) * len(SHADES) // 256)] for v in cells))
        rows.append("  ".join(parts))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pretrained", type=Path, default=PRETRAINED, help="the folder that holds the checkpoints")
    p.add_argument("--prompt", default="The city of ")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--images", type=int, default=8, help="test images to classify")
    p.add_argument("--samples", type=int, default=4, help="images to draw with the pixel LM")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/showcase/pixel_samples.png"))
    a = p.parse_args(argv)
    start = time.perf_counter()
    try:
        folders = [folder_of(name, a.pretrained) for name in (TEXT, IMAGE, PIXELS)]
        rows = [show_text(folders[0], a.prompt, a.max_new_tokens, a.seed), show_image(folders[1], a.images),
                show_pixels(folders[2], a.samples, a.seed, a.out)]
    except (ShowcaseError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n== each model's metric, measured again now and as recorded at training time ==")
    for row in rows:
        print(f"{row['name']:<32} {row['metric']:<19} {row['part']}: now {row['measured']:.4f}, recorded "
              f"{row['recorded']:.4f}; {row['full_part']} (card): {row['full']:.4f}")
    print(f"{time.perf_counter() - start:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
