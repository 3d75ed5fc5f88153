# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The pixel LM and the image classifier trainers end to end on tiny models: Fashion-MNIST (the embedded default),
a CIFAR-10 python folder and an ImageNet-layout image folder made here in the real formats."""

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import modeling_aft  # noqa: F401
from tests.helpers import error_of, train_losses
from training import train_image, train_pixels

FASHION = Path("/usr/share/datasets/fashion-mnist")
TINY_PIXELS = "num_hidden_layers=1,hidden_size=32,intermediate_size=64,position_bias_dim=8,local_window=28"
TINY_IMAGE = "num_hidden_layers=2,hidden_size=48,intermediate_size=96,num_heads=4"
QUIET = ["--no-progress", "--no-tensorboard"]


pytestmark = pytest.mark.usefixtures("fresh_accelerate_state")


def reference_bits_per_dimension(model, images: torch.Tensor) -> float:
    """Written from the definition: sub-pixels in (row, column, channel) order, each predicted from the start token
    and the sub-pixels before it, as a 256-way distribution; float64."""
    total, count = 0.0, 0
    for image in images:  # (C, H, W) uint8
        seq = [int(v) for v in image.permute(1, 2, 0).reshape(-1)]
        inputs = torch.tensor([[256] + seq[:-1]])
        with torch.no_grad():
            logits = model(input_ids=inputs).logits[0, :, :256].double()  # (L, 256)
        logp = torch.log_softmax(logits, dim=-1)
        total -= sum(float(logp[t, v]) for t, v in enumerate(seq))
        count += len(seq)
    return total / count / math.log(2)


@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST is installed by `make setup` (Debian package)")
def test_the_pixel_trainer_learns_fashion_mnist_and_reports_bits_per_dimension(tmp_path):
    from transformers import AutoModelForCausalLM

    from training.data_images import load_fashion_mnist
    from training.model_card import read_model_card_metrics

    out = tmp_path / "run"
    metrics = train_pixels.main([
        "--output-dir", str(out), "--max-steps", "30", "--warmup-steps", "3", "--batch-size", "4",
        "--eval-every", "30", "--save-every", "30", "--log-every", "5", "--eval-images", "4",
        "--final-eval-images", "6", "--sample-images", "4", "--config-overrides", TINY_PIXELS, *QUIET])
    losses = train_losses(out)
    assert losses[-1] < losses[0] - 0.5, losses  # per sub-pixel, from ~ln 256 = 5.55
    folder = out / "model"
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert model.config.vocab_size == 257 and model.config.max_position_embeddings == 784
    valid = load_fashion_mnist().valid
    expected = reference_bits_per_dimension(model, torch.stack([valid[i][0] for i in range(6)]))
    assert metrics["bpd"] == pytest.approx(expected, rel=1e-5)
    assert read_model_card_metrics(folder)["bpd"] == metrics["bpd"]
    grid = Image.open(folder / "samples.png")
    assert grid.mode == "L" and grid.size == (4 * 4 * 30, 1 * 4 * 30)  # 4 columns of 28 + 2 gap pixels, x4
    assert json.loads((folder / "image_format.json").read_text())["start_token_id"] == 256


def write_cifar_folder(root: Path, per_batch: int = 4) -> Path:
    """A tiny `cifar-10-batches-py` in the real format: pickled dicts of (N, 3072) uint8 rows, R then G then B."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("data_batch_1", "test_batch"):
        labels = [i % 10 for i in range(per_batch)]
        # Smooth images (a gradient per class), so there is something to learn.
        base = np.linspace(0, 255, 32 * 32).reshape(1, 32, 32)
        data = np.stack([np.concatenate([(base * (lab + 1) / 10 + 10 * c) % 256 for c in range(3)]).reshape(-1)
                         for lab in labels]).astype(np.uint8)
        data = np.clip(data.astype(int) + rng.integers(-3, 4, data.shape), 0, 255).astype(np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)], b"num_cases_per_batch": per_batch,
                     b"num_vis": 3072}, f)
    return folder


def test_the_pixel_trainer_reads_a_cifar10_python_folder(tmp_path):
    data = write_cifar_folder(tmp_path)
    out = tmp_path / "run"
    metrics = train_pixels.main([
        "--data", str(data), "--output-dir", str(out), "--max-steps", "12", "--warmup-steps", "2", "--batch-size",
        "2", "--eval-every", "12", "--save-every", "12", "--log-every", "3", "--eval-images", "2",
        "--sample-images", "0", "--config-overrides", TINY_PIXELS.replace("local_window=28", "local_window=96"),
        *QUIET])
    assert train_losses(out)[-1] < train_losses(out)[0]
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["max_position_embeddings"] == 3072 and metrics["images"] == 4


@pytest.mark.skipif(not FASHION.is_dir(), reason="Fashion-MNIST is installed by `make setup` (Debian package)")
def test_the_image_trainer_learns_fashion_mnist_and_its_folder_classifies_grey_images(tmp_path):
    from transformers import AutoModelForImageClassification, pipeline

    from training.data_images import load_fashion_mnist, normalize
    from training.model_card import read_model_card_metrics

    out = tmp_path / "run"
    metrics = train_image.main([
        "--output-dir", str(out), "--max-steps", "60", "--warmup-steps", "5", "--batch-size", "32",
        "--learning-rate", "3e-3", "--eval-every", "30", "--save-every", "60", "--log-every", "10",
        "--eval-images", "200", "--final-eval-images", "300", "--crop-scale-min", "1.0",
        "--config-overrides", TINY_IMAGE, *QUIET])
    losses = train_losses(out)
    assert losses[-1] < losses[0] - 0.2, losses
    assert metrics["top1"] > 0.25  # chance is 0.1; 60 steps of a tiny model
    folder = out / "model"
    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    valid = load_fashion_mnist().valid
    images = torch.stack([valid[i][0] for i in range(300)])
    labels = torch.tensor([valid[i][1] for i in range(300)])
    with torch.no_grad():
        logits = model(pixel_values=normalize(images, valid_mean(), valid_std())).logits
    assert metrics["top1"] == pytest.approx(float((logits.argmax(-1) == labels).double().mean()), abs=1e-12)
    assert read_model_card_metrics(folder)["accuracy"] == metrics["top1"]
    assert model.config.id2label[0] == "T-shirt/top"

    classify = pipeline("image-classification", model=str(folder))
    grey = Image.fromarray(images[0, 0].numpy(), mode="L")
    best = classify(grey, top_k=1)[0]
    assert best["label"] == model.config.id2label[int(logits[0].argmax())]
    assert best["score"] == pytest.approx(float(logits[0].softmax(-1).max()), rel=1e-4)


def valid_mean():
    from training.data_images import FASHION_MNIST_MEAN

    return FASHION_MNIST_MEAN


def valid_std():
    from training.data_images import FASHION_MNIST_STD

    return FASHION_MNIST_STD


def write_image_folder(root: Path, size: int = 20, per_class: int = 6) -> Path:
    """ImageNet layout: train/<class>/*.png and val/<class>/*.png; dark and bright RGB images."""
    rng = np.random.default_rng(1)
    for split, count in (("train", per_class), ("val", per_class // 2)):
        for name, level in (("dark", 40), ("bright", 210)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(level + rng.integers(-30, 31, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels, mode="RGB").save(folder / f"{i}.png")
    return root


def test_the_image_trainer_reads_an_imagenet_layout_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    data = write_image_folder(tmp_path / "images")
    out = tmp_path / "run"
    metrics = train_image.main([
        "--data", str(data), "--output-dir", str(out), "--max-steps", "30", "--warmup-steps", "3",
        "--batch-size", "4", "--learning-rate", "3e-3", "--eval-every", "30", "--save-every", "30",
        "--eval-images", "6", "--mixup-alpha", "0.8", "--cutmix-alpha", "1.0", "--crop-scale-min", "0.5",
        "--config-overrides", TINY_IMAGE + ",image_size=16,patch_size=4,num_channels=3", *QUIET])
    assert metrics["top1"] == 1.0 and metrics["images"] == 6
    config = json.loads((out / "model" / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["bright", "dark"]


def test_the_pixel_trainer_reads_an_image_folder_at_the_size_it_is_given(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    data = write_image_folder(tmp_path / "images")
    out = tmp_path / "run"
    common = ["--data", str(data), "--output-dir", str(out), "--max-steps", "2", "--warmup-steps", "1",
              "--batch-size", "2", "--eval-every", "2", "--save-every", "2", "--eval-images", "2",
              "--final-eval-images", "2", "--sample-images", "0", "--config-overrides",
              TINY_PIXELS.replace("local_window=28", "local_window=24"), *QUIET]
    message = error_of(train_pixels.main, common, capsys)
    assert "is an image folder: pass --image-size" in message
    metrics = train_pixels.main(common + ["--image-size", "8"])
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["max_position_embeddings"] == 8 * 8 * 3 and metrics["images"] == 2


def test_the_image_trainer_reads_cifar10_at_its_own_32_pixels(tmp_path):
    data = write_cifar_folder(tmp_path)
    out = tmp_path / "run"
    metrics = train_image.main([
        "--data", str(data), "--output-dir", str(out), "--max-steps", "2", "--warmup-steps", "1", "--batch-size",
        "2", "--eval-every", "2", "--save-every", "2", "--eval-images", "4",
        "--config-overrides", TINY_IMAGE + ",image_size=32,patch_size=8,num_channels=3", *QUIET])
    assert metrics["images"] == 4
    assert json.loads((out / "model" / "config.json").read_text())["image_size"] == 32


def test_bad_image_input_is_refused_before_training(tmp_path, capsys):
    out = str(tmp_path / "run")
    message = error_of(train_image.main, ["--data", str(tmp_path / "none"), "--output-dir", out], capsys)
    assert f"image source '{tmp_path / 'none'}' is neither" in message
    message = error_of(train_pixels.main, ["--output-dir", out, "--preset", "cpu-fashion-mnist-pixels",
                                           "--config-overrides", "aft_variant=full,max_position_embeddings=100"],
                       capsys)
    assert "784 sub-pixels, above max_position_embeddings 100" in message
    message = error_of(train_image.main, ["--output-dir", out, "--config-overrides", "image_size=32"], capsys)
    assert "fashion_mnist images are 28x28, smaller than the model's image_size 32" in message
    assert "unknown image preset 'cpu-wiki-local'" in error_of(
        train_image.main, ["--preset", "cpu-wiki-local", "--output-dir", out], capsys)
    assert not Path(out).exists()
