# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The Gradio demo of the three shipped AFT checkpoints, laid out as a Hugging Face Space (this folder is the Space).

    python -m demo.app                       # http://127.0.0.1:7860 (`make app`)
    python demo/app.py --port 7861 --text-model my-org/aft-local-wikipedia

Three tabs: streamed text from the byte-level AFT-local LM, Fashion-MNIST classification of an uploaded or drawn
image by the AFT-conv classifier, and garments drawn sub-pixel by sub-pixel by the AFT-local pixel LM.

Every model loads through the Auto classes with trust_remote_code=True: a folder or Hub repo carries its own modeling
code. The pixel sampler imported from training/ brings the modeling_aft package along, and transformers 5 then serves
the package's registered classes (the same code) rather than the folders' copies.

Where each model comes from, first match wins: the command-line option, the environment variable (AFT_TEXT_MODEL,
AFT_IMAGE_MODEL, AFT_PIXEL_MODEL: a folder or a Hub repo id), the folder models/<name> next to this file (what
`python -m demo.publish` uploads to a Space), the repo's pretrained/<name>.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
# `python demo/app.py` puts demo/ first on sys.path, not the checkout: add it so `training` is this checkout's (on a
# Space the copy uploaded next to app.py is found without this).
if (HERE.parent / "training" / "train_pixels.py").is_file() and str(HERE.parent) not in sys.path:
    sys.path.insert(1, str(HERE.parent))

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import (  # noqa: E402
    AutoImageProcessor,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoTokenizer,
    TextIteratorStreamer,
)

# The pixel LM's sampler and grid writer, imported rather than copied: one definition of the start token, the
# raster order and the sampling settings for the trainer, `make demo` and this app.
from training.train_pixels import sample_images, save_grid  # noqa: E402

NAMES = {"text": "aft-local-wikipedia", "image": "aft-conv-fashion-mnist", "pixels": "aft-local-fashion-mnist-pixels"}
ENV = {"text": "AFT_TEXT_MODEL", "image": "AFT_IMAGE_MODEL", "pixels": "AFT_PIXEL_MODEL"}
DEFAULT_PROMPT = "The city of "
GRID_COLUMNS = 4


def default_model(kind: str) -> str:
    """Where the `kind` model comes from when no option names it (see the module docstring for the order)."""
    if os.environ.get(ENV[kind]):
        return os.environ[ENV[kind]]
    for folder in (HERE / "models" / NAMES[kind], HERE.parent / "pretrained" / NAMES[kind]):
        if (folder / "config.json").is_file():
            return str(folder)
    raise FileNotFoundError(f"no {NAMES[kind]} model: set {ENV[kind]} to its folder or Hub repo id, or run from a "
                            f"checkout of aft-transformers (pretrained/{NAMES[kind]}).")


def check_source(kind: str, source: str) -> str:
    """A model folder, or a Hub repo id; a path that is neither is named here (transformers would call it a bad
    repo id)."""
    if not Path(source).is_dir() and (source.startswith((".", "/", "~")) or source.count("/") > 1):
        raise FileNotFoundError(f"{NAMES[kind]} model {source!r}: no such folder; pass a model folder or a Hub repo "
                                f"id (namespace/name) with --{kind}-model or {ENV[kind]}.")
    return source


def read_json(source: str, name: str) -> dict:
    """A small JSON file of a model folder or Hub repo (the pixel LM's image_format.json)."""
    path = Path(source) / name
    if not path.is_file():
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(source, name))
    return json.loads(path.read_text())


@dataclass
class Models:
    """The three models and what feeds them; each loaded through the Auto classes with the folder's own code."""

    text_model: torch.nn.Module
    tokenizer: object
    image_model: torch.nn.Module
    processor: object
    pixel_model: torch.nn.Module
    pixel_shape: tuple[int, int, int]  # (C, H, W) of the images the pixel LM draws

    @classmethod
    def load(cls, text: str | None = None, image: str | None = None, pixels: str | None = None) -> "Models":
        text, image, pixels = (check_source(kind, given or default_model(kind))
                               for kind, given in (("text", text), ("image", image), ("pixels", pixels)))
        layout = read_json(pixels, "image_format.json")
        return cls(
            AutoModelForCausalLM.from_pretrained(text, trust_remote_code=True).eval(),
            AutoTokenizer.from_pretrained(text, trust_remote_code=True),
            AutoModelForImageClassification.from_pretrained(image, trust_remote_code=True).eval(),
            AutoImageProcessor.from_pretrained(image, trust_remote_code=True),
            AutoModelForCausalLM.from_pretrained(pixels, trust_remote_code=True).eval(),
            (layout["channels"], layout["height"], layout["width"]),
        )


# --------------------------------------------------------------------------------------------------------------------
# The three functions behind the tabs (no Gradio in them: the tests call them directly)
# --------------------------------------------------------------------------------------------------------------------


def generate_text(model, tokenizer, prompt: str, max_new_tokens: int = 200, temperature: float = 0.8,
                  top_k: int = 40, top_p: float = 1.0, do_sample: bool = True, seed: int = 0) -> Iterator[str]:
    """Yield the prompt followed by the continuation so far, once per decoded piece, while the model generates."""
    if not prompt:
        raise ValueError("the prompt is empty; type a few words for the model to continue.")
    ids = tokenizer(prompt, return_tensors="pt").input_ids  # (1, T)
    room = model.config.max_position_embeddings - ids.shape[1]
    if room < 1:
        raise ValueError(f"the prompt is {ids.shape[1]} bytes; this model reads at most "
                         f"{model.config.max_position_embeddings - 1} plus one new byte: shorten it.")
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    sampling = dict(do_sample=True, temperature=float(temperature), top_k=int(top_k), top_p=float(top_p)) \
        if do_sample else dict(do_sample=False)
    # The seed is set here, before the thread starts: torch's CPU generator is one per process.
    torch.manual_seed(int(seed))
    worker = threading.Thread(target=model.generate, daemon=True, kwargs=dict(
        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=min(int(max_new_tokens), room),
        streamer=streamer, pad_token_id=0, **sampling))
    worker.start()
    text = prompt
    yield text
    for piece in streamer:
        text += piece
        yield text
    worker.join()


def to_fashion_mnist_look(image) -> Image.Image:
    """An uploaded picture or a drawing as the classifier saw its training images: a light garment on black.

    Transparent pixels (the sketchpad's empty canvas) become black; a picture with a light background (a photo on
    white, dark strokes) is inverted, since every Fashion-MNIST image has a black background. The background is
    judged by the border's median, not the whole picture's mean: a pullover can fill most of its frame (565 of the
    10,000 test images are brighter than mid-grey overall; none has a light border)."""
    if isinstance(image, dict):  # an ImageEditor value: the drawing is its composite
        image = image.get("composite")
    if image is None:
        raise ValueError("no image: upload a picture or draw a garment first.")
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        black = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, image)
    grey = np.asarray(image.convert("L"))  # (H, W)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return Image.fromarray(255 - grey if np.median(border) > 127 else grey)  # uint8 (H, W): mode L


@torch.no_grad()
def classify(model, processor, image, top: int = 5) -> dict[str, float]:
    """Class name -> probability for the `top` most likely classes of one image (PIL, numpy or an editor value)."""
    pixels = processor(images=to_fashion_mnist_look(image), return_tensors="pt").pixel_values  # (1, C, H, W)
    probs = model(pixel_values=pixels).logits.softmax(dim=-1)[0]  # (num_labels,)
    best = probs.topk(min(top, probs.numel()))
    return {model.config.id2label[int(i)]: float(p) for p, i in zip(best.values, best.indices)}


def draw_samples(model, shape: tuple[int, int, int], count: int = 4, seed: int = 0) -> tuple[torch.Tensor, Image.Image]:
    """`count` images drawn by the pixel LM, (N, C, H, W) uint8, and the grid picture the tab shows."""
    images = sample_images(model, int(count), shape, int(seed))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "samples.png"
        save_grid(images, path, columns=min(GRID_COLUMNS, int(count)))
        grid = Image.open(path)
        grid.load()  # read before the folder goes
    return images, grid


# --------------------------------------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------------------------------------


def build_demo(models: Models | None = None) -> gr.Blocks:
    """The three-tab app around `models` (loaded from the default places when None); not yet launched."""
    models = models or Models.load()

    def on_generate(prompt, max_new_tokens, temperature, top_k, top_p, do_sample, seed):
        try:
            yield from generate_text(models.text_model, models.tokenizer, prompt, max_new_tokens, temperature,
                                     top_k, top_p, do_sample, seed)
        except ValueError as error:
            raise gr.Error(str(error)) from None

    def on_classify(image):
        try:
            return classify(models.image_model, models.processor, image)
        except ValueError as error:
            raise gr.Error(str(error)) from None

    def on_draw(count, seed):
        return draw_samples(models.pixel_model, models.pixel_shape, count, seed)[1]

    limit = models.text_model.config.max_position_embeddings
    with gr.Blocks(title="Attention Free Transformer (AFT) demo") as demo:
        gr.Markdown("# Attention Free Transformer (AFT)\nThree small models of the Attention Free Transformer "
                    "([Zhai et al., 2021](https://arxiv.org/abs/2105.14103)) trained on 2 CPU cores by "
                    "aft-transformers, loaded with `trust_remote_code=True` through the transformers Auto classes.")
        with gr.Tab("Text (AFT-local LM)"):
            gr.Markdown(f"A byte-level AFT-local-32 language model (3.5M parameters, 1.65 bits per character) trained "
                        f"on Wikipedia text. It reads at most {limit} bytes, prompt included; the text appears as "
                        "it is decoded on the model's constant-size recurrent state.")
            prompt = gr.Textbox(DEFAULT_PROMPT, label="Prompt", elem_id="prompt")
            with gr.Row():
                max_new_tokens = gr.Slider(1, limit - 1, value=200, step=1, label="Max new tokens (bytes)")
                temperature = gr.Slider(0.1, 2.0, value=0.8, step=0.05, label="Temperature")
                top_k = gr.Slider(0, 256, value=40, step=1, label="Top-k (0: off)")
                top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p")
            with gr.Row():
                do_sample = gr.Checkbox(True, label="Sample (off: greedy)")
                seed = gr.Number(0, precision=0, label="Seed")
                generate = gr.Button("Generate", variant="primary", elem_id="generate")
            output = gr.Textbox(label="Prompt and continuation", lines=8, elem_id="output")
            generate.click(on_generate, [prompt, max_new_tokens, temperature, top_k, top_p, do_sample, seed], output,
                           api_name="generate")
        with gr.Tab("Classify (AFT-conv)"):
            gr.Markdown("An AFT-conv-16-5 classifier (0.74M parameters, 86.8% top-1 on Fashion-MNIST's 10,000 test "
                        "images). Upload a picture or draw a garment (light strokes on the black canvas); a picture "
                        "with a light background is inverted first, as Fashion-MNIST garments are light on black.")
            with gr.Row():
                with gr.Column():
                    upload = gr.Image(type="pil", sources=["upload", "clipboard"], label="Picture",
                                      elem_id="upload")
                    classify_upload = gr.Button("Classify picture", variant="primary", elem_id="classify")
                with gr.Column():
                    sketch = gr.Sketchpad(type="pil", canvas_size=(280, 280), label="Drawing", elem_id="sketch",
                                          value=Image.new("RGB", (280, 280)),
                                          brush=gr.Brush(default_size=18, colors=["#ffffff"], color_mode="fixed"))
                    classify_sketch = gr.Button("Classify drawing", elem_id="classify-drawing")
            label = gr.Label(num_top_classes=5, label="Top classes", elem_id="label")
            classify_upload.click(on_classify, upload, label, api_name="classify")
            classify_sketch.click(on_classify, sketch, label, api_name="classify_drawing")
        with gr.Tab("Draw garments (AFT-local pixel LM)"):
            c, h, w = models.pixel_shape
            gr.Markdown(f"An AFT-local-56 pixel language model (1.2M parameters, 3.14 bits per dimension) draws "
                        f"{h} x {w} garments one sub-pixel at a time ({c * h * w} steps an image), sampling each from "
                        "the 256 grey levels.")
            with gr.Row():
                count = gr.Slider(1, 8, value=4, step=1, label="Garments")
                pixel_seed = gr.Number(0, precision=0, label="Seed")
                draw = gr.Button("Draw", variant="primary", elem_id="draw")
            samples = gr.Image(type="pil", label="Samples", elem_id="samples", interactive=False)
            draw.click(on_draw, [count, pixel_seed], samples, api_name="draw")
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m demo.app", description=__doc__.split("\n\n")[0])
    # A Space sets GRADIO_SERVER_NAME=0.0.0.0 and GRADIO_SERVER_PORT; on a workstation the app stays on loopback.
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    for kind in NAMES:
        p.add_argument(f"--{kind}-model", metavar="FOLDER_OR_REPO",
                       help=f"the {NAMES[kind]} model (default: ${ENV[kind]}, models/{NAMES[kind]} next to app.py, "
                            f"pretrained/{NAMES[kind]})")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        models = Models.load(args.text_model, args.image_model, args.pixels_model)
    except (OSError, ValueError) as error:  # a missing folder or repo, a damaged checkpoint
        print(f"error: {error}", file=sys.stderr)
        return 2
    build_demo(models).queue().launch(server_name=args.host, server_port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
