# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Image loading: tiny files in the real formats (IDX, CIFAR-10 pickles and archive, an image folder) read back
pixel for pixel, every error, and the processor saved with a classifier working in `pipeline`."""

import gzip
import io
import os
import pickle
import re
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import modeling_aft  # registers "aft" and the image processor with the Auto classes
from modeling_aft import AFTConfig, AFTForImageClassification, image_processing_aft
from training import data_images as di

# ----------------------------------------------------------------------------------------------------------------
# Writers of the real formats, independent of the loader
# ----------------------------------------------------------------------------------------------------------------

_IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> None:
    header = struct.pack(">BBBB", 0, 0, _IDX_CODES[array.dtype.type], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    body = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(body) if compress else body)


def write_fashion(root: Path, train: int = 5, test: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    data = {}
    for prefix, n in (("train", train), ("t10k", test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
        data[prefix] = (images, labels)
    return data


CIFAR_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def cifar_batch(rng, n: int, name: bytes) -> dict:
    # Keys and types exactly as in cifar-10-python.tar.gz (pickled by Python 2, so every string is bytes).
    return {
        b"batch_label": name,
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def write_cifar(folder: Path, train_batches=("data_batch_2", "data_batch_10"), n: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    batches = {name: cifar_batch(rng, n, name.encode()) for name in (*train_batches, "test_batch")}
    meta = {b"num_cases_per_batch": n, b"label_names": CIFAR_NAMES, b"num_vis": 3072}
    for name, content in (*batches.items(), ("batches.meta", meta)):
        (folder / name).write_bytes(pickle.dumps(content, protocol=2))
    return batches


def pack_tar(folder: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")


def assert_cifar_pixels(images: torch.Tensor, data: np.ndarray) -> None:
    """image[c, y, x] == data[n, c * 1024 + y * 32 + x], checked one sub-pixel at a time."""
    assert images.shape == (len(data), 3, 32, 32) and images.dtype == torch.uint8
    array = images.numpy()
    for n in range(len(data)):
        for c in range(3):
            for y in range(32):
                for x in range(32):
                    assert array[n, c, y, x] == data[n, c * 1024 + y * 32 + x]


def all_items(dataset):
    images, labels = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(images), list(labels)


# ----------------------------------------------------------------------------------------------------------------
# IDX and Fashion-MNIST
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float64])
def test_read_idx_round_trip(tmp_path, compress, dtype):
    array = (np.random.default_rng(1).normal(size=(3, 4, 5)) * 100).astype(dtype)
    write_idx(tmp_path / "a.idx", array, compress)
    out = di.read_idx(tmp_path / "a.idx")
    assert out.shape == (3, 4, 5)
    assert np.array_equal(out.numpy(), array)


def test_read_idx_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.idx"):
        di.read_idx(tmp_path / "missing.idx")
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="magic 01020801"):
        di.read_idx(bad)
    bad.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="type code 0x07"):
        di.read_idx(bad)
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x02" + struct.pack(">II", 2, 3) + b"\x00" * 5))
    with pytest.raises(ValueError, match=r"dims \(2, 3\) need 6 bytes .* holds 5"):
        di.read_idx(bad)
    bad.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">I", 2))
    with pytest.raises(ValueError, match="truncated"):
        di.read_idx(bad)
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 4) + b"abcd")[:-6])
    with pytest.raises(ValueError, match="damaged gzip"):
        di.read_idx(bad)


def test_fashion_mnist_tiny_round_trip(tmp_path):
    data = write_fashion(tmp_path / "fm")
    splits = di.load_fashion_mnist(tmp_path / "fm")
    assert (splits.num_channels, splits.image_size, splits.source) == (1, 28, "fashion_mnist")
    assert splits.class_names[0] == "T-shirt/top" and splits.class_names[9] == "Ankle boot"
    assert len(splits.class_names) == 10
    for dataset, (images, labels) in ((splits.train, data["train"]), (splits.valid, data["t10k"])):
        got_images, got_labels = all_items(dataset)
        assert got_images.shape == (len(images), 1, 28, 28) and got_images.dtype == torch.uint8
        assert np.array_equal(got_images[:, 0].numpy(), images)
        assert got_labels == [int(v) for v in labels] and all(type(v) is int for v in got_labels)


def test_fashion_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        di.load_fashion_mnist(tmp_path / "nowhere")
    write_fashion(tmp_path / "fm")
    write_idx(tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz", np.array([1, 2], dtype=np.uint8))  # 3 images
    with pytest.raises(ValueError, match="t10k"):
        di.load_fashion_mnist(tmp_path / "fm")
    write_idx(tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz", np.array([1, 2, 10], dtype=np.uint8))
    with pytest.raises(ValueError, match="label 10"):
        di.load_fashion_mnist(tmp_path / "fm")


def test_fashion_mnist_real_set():
    """The Debian package when installed (60000 / 10000 grey 28 x 28, 10 classes, the stated mean/std); where it
    is not, the error that says how to install it."""
    if not Path(di.FASHION_MNIST_ROOT).is_dir():
        with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
            di.load_images(None)
        return
    splits = di.load_images(None)
    assert (len(splits.train), len(splits.valid), len(splits.class_names)) == (60000, 10000, 10)
    image, label = splits.valid[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.uint8 and 0 <= label < 10
    counts = np.bincount(splits.train.images.numpy().ravel(), minlength=256).astype(np.float64)  # exact histogram
    values = np.arange(256) / 255
    mean = (counts * values).sum() / counts.sum()
    std = np.sqrt((counts * (values - mean) ** 2).sum() / counts.sum())
    assert abs(mean - splits.mean[0]) < 1e-4 and abs(std - splits.std[0]) < 1e-4
    assert np.bincount(splits.valid.labels.numpy()).tolist() == [1000] * 10


# ----------------------------------------------------------------------------------------------------------------
# CIFAR-10
# ----------------------------------------------------------------------------------------------------------------


def test_cifar_folder_and_archive_round_trip(tmp_path):
    batches = write_cifar(tmp_path / "cifar-10-batches-py")
    pack_tar(tmp_path / "cifar-10-batches-py", tmp_path / "cifar-10-python.tar.gz")
    train_data = np.concatenate([batches["data_batch_2"][b"data"], batches["data_batch_10"][b"data"]])  # 2 < 10
    train_labels = batches["data_batch_2"][b"labels"] + batches["data_batch_10"][b"labels"]
    loaded = [
        di.load_cifar10(tmp_path / "cifar-10-batches-py"),
        di.load_cifar10(tmp_path),  # the folder above it
        di.load_cifar10(tmp_path / "cifar-10-python.tar.gz"),
        di.load_images(str(tmp_path / "cifar-10-python.tar.gz")),
        di.load_images(str(tmp_path / "cifar-10-batches-py"), image_size=32, num_channels=3),
    ]
    for splits in loaded:
        assert (splits.num_channels, splits.image_size, splits.source) == (3, 32, "cifar10")
        assert splits.class_names == [n.decode() for n in CIFAR_NAMES]
        assert tuple(splits.mean) == di.IMAGENET_MEAN and tuple(splits.std) == di.IMAGENET_STD
        images, labels = all_items(splits.train)
        assert labels == train_labels
        assert_cifar_pixels(images, train_data)
        images, labels = all_items(splits.valid)
        assert labels == batches["test_batch"][b"labels"]
        assert_cifar_pixels(images, batches["test_batch"][b"data"])


def test_cifar_to_grey_is_pil_luma(tmp_path):
    batches = write_cifar(tmp_path / "c")
    splits = di.load_images(str(tmp_path / "c"), num_channels=1)
    assert splits.num_channels == 1 and len(splits.mean) == 1
    rgb = batches["test_batch"][b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, H, W, 3)
    for n in range(len(rgb)):
        expected = np.asarray(Image.fromarray(rgb[n], mode="RGB").convert("L"))
        assert np.array_equal(splits.valid[n][0][0].numpy(), expected)


class _NotCifar:
    def __reduce__(self):
        return (list, ())


def test_cifar_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        di.load_cifar10(tmp_path / "missing")
    write_cifar(tmp_path / "c")
    os.remove(tmp_path / "c" / "test_batch")
    with pytest.raises(FileNotFoundError, match="test_batch"):
        di.load_cifar10(tmp_path / "c")
    (tmp_path / "c" / "test_batch").write_bytes(pickle.dumps({b"fine_labels": [1], b"data": np.zeros((1, 3072))}))
    with pytest.raises(ValueError, match="b'labels'"):
        di.load_cifar10(tmp_path / "c")
    (tmp_path / "c" / "test_batch").write_bytes(
        pickle.dumps({b"labels": [1], b"data": np.zeros((1, 3072), np.float32)}, protocol=2)
    )
    with pytest.raises(ValueError, match=r"expected uint8 \(N, 3072\)"):
        di.load_cifar10(tmp_path / "c")
    (tmp_path / "c" / "test_batch").write_bytes(pickle.dumps({b"labels": [1], b"data": _NotCifar()}))
    with pytest.raises(ValueError, match="builtins.list"):  # refused before anything runs
        di.load_cifar10(tmp_path / "c")
    (tmp_path / "broken.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="not a readable tar archive"):
        di.load_cifar10(tmp_path / "broken.tar.gz")
    write_cifar(tmp_path / "ok")
    with pytest.raises(ValueError, match="image_size=64"):
        di.load_images(str(tmp_path / "ok"), image_size=64)
    with pytest.raises(FileNotFoundError, match="fashion_mnist"):
        di.load_images("cifar10-which-does-not-exist")


# ----------------------------------------------------------------------------------------------------------------
# Image folders
# ----------------------------------------------------------------------------------------------------------------


def write_folder(root: Path, layout: dict, seed: int = 0) -> dict:
    """layout: {split: {class: [(width, height), ...]}}; returns {path: RGB array}."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, classes in layout.items():
        for name, sizes in classes.items():
            (root / split / name).mkdir(parents=True)
            for k, (width, height) in enumerate(sizes):
                array = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                path = root / split / name / f"{k}.png"
                Image.fromarray(array, mode="RGB").save(path)
                arrays[str(path)] = array
    return arrays


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    # datasets writes its Arrow cache under HF_DATASETS_CACHE: keep it inside the test's folder.
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    return tmp_path / "hf-cache"


def test_image_folder_round_trip(tmp_path, hf_cache):
    layout = {
        "train": {"dog": [(6, 6), (6, 6)], "cat": [(6, 6), (12, 20)]},
        "val": {"cat": [(6, 6)], "dog": [(20, 12)]},
    }
    arrays = write_folder(tmp_path / "img", layout)
    splits = di.load_images(str(tmp_path / "img"), image_size=6)
    assert (splits.source, splits.image_size, splits.num_channels) == ("imagefolder", 6, 3)
    assert splits.class_names == ["cat", "dog"]  # sorted folder names
    assert (len(splits.train), len(splits.valid)) == (4, 2)
    for dataset in (splits.train, splits.valid):
        for index, path in enumerate(dataset.paths):
            image, label = dataset[index]
            assert label == splits.class_names.index(Path(path).parent.name)
            array = arrays[path]
            height, width = array.shape[:2]
            if (height, width) == (6, 6):  # already the size: the very pixels
                expected = array
            elif height > width:  # 12 x 20 -> 6 x 10, then the middle rows 2..8
                expected = np.asarray(Image.fromarray(array).resize((6, 10), Image.Resampling.BILINEAR))[2:8]
            else:  # 20 x 12 -> 10 x 6, then the middle columns 2..8
                expected = np.asarray(Image.fromarray(array).resize((10, 6), Image.Resampling.BILINEAR))[:, 2:8]
            assert image.dtype == torch.uint8 and image.shape == (3, 6, 6)
            assert np.array_equal(image.permute(1, 2, 0).numpy(), expected)


def test_image_folder_grey_and_validation_name(tmp_path, hf_cache):
    arrays = write_folder(tmp_path / "img", {"train": {"a": [(5, 5)], "b": [(5, 5)]}, "validation": {"b": [(5, 5)]}})
    splits = di.load_image_folder(tmp_path / "img", image_size=5, num_channels=1, cache_dir=tmp_path / "cache")
    image, label = splits.valid[0]
    assert label == 1 and image.shape == (1, 5, 5)
    expected = np.asarray(Image.fromarray(arrays[splits.valid.paths[0]]).convert("L"))
    assert np.array_equal(image[0].numpy(), expected)


def test_image_folder_errors(tmp_path, hf_cache):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="train"):
        di.load_image_folder(tmp_path / "empty", 8)
    write_folder(tmp_path / "noval", {"train": {"a": [(4, 4)]}})
    with pytest.raises(FileNotFoundError, match="no val/ or validation/"):
        di.load_image_folder(tmp_path / "noval", 8)
    (tmp_path / "noval" / "val" / "a").mkdir(parents=True)
    (tmp_path / "noval" / "val" / "a" / "notes.txt").write_text("not an image")
    with pytest.raises(FileNotFoundError, match="no images found"):
        di.load_image_folder(tmp_path / "noval", 8)
    write_folder(tmp_path / "extra", {"train": {"a": [(4, 4)]}, "val": {"zebra": [(4, 4)]}})
    with pytest.raises(ValueError, match="zebra"):
        di.load_image_folder(tmp_path / "extra", 8)
    write_folder(tmp_path / "bad", {"train": {"a": [(4, 4)]}, "val": {"a": [(4, 4)]}})
    with pytest.raises(ValueError, match="image_size is required"):
        di.load_images(str(tmp_path / "bad"))


# ----------------------------------------------------------------------------------------------------------------
# Damaged image files: found when the folder is opened, named, with the fix
# ----------------------------------------------------------------------------------------------------------------


def _encoded(fmt: str, size: tuple[int, int] = (40, 30), seed: int = 0) -> bytes:
    """A whole image file in `fmt`, of smooth content plus noise (so that a JPEG has many bytes of scan data)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    array = np.stack([x * 255 // size[0], y * 255 // size[1], (x + y) * 127 // sum(size)], -1) + rng.normal(0, 20, (
        size[1], size[0], 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), mode="RGB").save(buffer, fmt)
    return buffer.getvalue()


DAMAGED = {  # name: what the file holds
    "cut.png": lambda: _encoded("PNG")[: len(_encoded("PNG")) * 2 // 3],  # a download cut short
    "cut.jpg": lambda: _encoded("JPEG")[: len(_encoded("JPEG")) * 2 // 3],
    "empty.png": lambda: b"",
    "notes.jpg": lambda: b"a text file that only carries an image's name\n",
}


@pytest.mark.parametrize("name", sorted(DAMAGED))
@pytest.mark.parametrize("split", ["train", "val"])
def test_a_damaged_file_stops_the_folder_when_it_is_opened_and_is_named(tmp_path, hf_cache, name, split):
    write_folder(tmp_path / "img", {"train": {"a": [(6, 6)], "b": [(6, 6)]}, "val": {"a": [(6, 6)]}})
    damaged = tmp_path / "img" / split / "a" / name
    damaged.write_bytes(DAMAGED[name]())
    with pytest.raises(di.UnreadableImageError) as error:
        di.load_images(str(tmp_path / "img"), image_size=6)
    message = str(error.value)
    assert message.startswith("1 image file(s) cannot be read: ") and str(damaged) in message, message
    assert "Remove or replace" in message and "\n" not in message
    # Only the damaged file is named, and PIL's complaint comes with it.
    assert message.count(str(tmp_path / "img")) == 1
    reason = {"cut.png": "Truncated File Read", "cut.jpg": "image file is truncated", "empty.png": "an empty file",
              "notes.jpg": "not an image file PIL can identify"}[name]
    assert f"{damaged} (" in message and reason in message, message


def test_every_damaged_file_is_named_at_once_up_to_five(tmp_path, hf_cache):
    write_folder(tmp_path / "img", {"train": {"a": [(6, 6)], "b": [(6, 6)]}, "val": {"a": [(6, 6)]}})
    for k in range(7):  # in both splits
        folder = tmp_path / "img" / "train" / "b" if k % 2 else tmp_path / "img" / "val" / "a"
        (folder / f"bad{k}.png").write_bytes(b"")
    with pytest.raises(di.UnreadableImageError, match=r"^7 image file\(s\) cannot be read: .*; and 2 more\. "):
        di.load_image_folder(tmp_path / "img", 6)


def test_healthy_jpegs_pass_the_check_even_with_bytes_after_their_end(tmp_path, hf_cache):
    layout = {"train": {"a": [(6, 6)], "b": [(6, 6)]}, "val": {"a": [(6, 6)]}}
    write_folder(tmp_path / "img", layout)
    whole = _encoded("JPEG", (12, 10))
    (tmp_path / "img" / "train" / "a" / "photo.jpg").write_bytes(whole)
    (tmp_path / "img" / "train" / "b" / "padded.jpg").write_bytes(whole + b"\0" * 32)  # some writers pad
    for fmt in ("GIF", "BMP", "TIFF", "WEBP"):  # no cheap check: decoded whole, and they are whole
        (tmp_path / "img" / "val" / "a" / f"other.{fmt.lower()}").write_bytes(_encoded(fmt, (8, 8)))
    splits = di.load_image_folder(tmp_path / "img", 6)
    assert len(splits.train) == 4 and len(splits.valid) == 5
    assert all(splits.train[i][0].shape == (3, 6, 6) for i in range(4))


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "WEBP", "PNG", "JPEG"])
def test_the_check_catches_a_cut_file_of_every_format(tmp_path, fmt):
    whole = _encoded(fmt)
    path = tmp_path / f"image.{fmt.lower()}"
    path.write_bytes(whole)
    assert di.check_image_file(path) is None
    path.write_bytes(whole[: len(whole) * 9 // 10])
    assert di.check_image_file(path) is not None


def test_a_file_damaged_after_the_check_is_named_when_its_item_is_read(tmp_path, hf_cache):
    write_folder(tmp_path / "img", {"train": {"a": [(6, 6)], "b": [(6, 6)]}, "val": {"a": [(6, 6)]}})
    splits = di.load_image_folder(tmp_path / "img", 6)
    path = splits.train.paths[0]
    Path(path).write_bytes(Path(path).read_bytes()[:40])
    with pytest.raises(di.UnreadableImageError, match=rf"^cannot read image {re.escape(path)} \(.+\); remove or "):
        splits.train[0]


def test_the_image_trainer_stops_at_a_damaged_file_before_its_first_step(tmp_path, hf_cache, capsys, monkeypatch):
    from training import train_image

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    write_folder(tmp_path / "img", {"train": {"a": [(8, 8)] * 2, "b": [(8, 8)] * 2}, "val": {"a": [(8, 8)]}})
    damaged = tmp_path / "img" / "val" / "a" / "cut.jpg"
    damaged.write_bytes(DAMAGED["cut.jpg"]())
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        train_image.main(["--data", str(tmp_path / "img"), "--output-dir", str(out), "--max-steps", "2",
                          "--batch-size", "2", "--no-progress", "--no-tensorboard", "--config-overrides",
                          "num_hidden_layers=1,hidden_size=16,intermediate_size=32,num_heads=2,image_size=8,"
                          "patch_size=4,num_channels=3"])
    line = capsys.readouterr().err.strip().splitlines()[-1]  # after datasets' progress bars
    assert exit_.value.code == 2 and line.startswith("error: 1 image file(s) cannot be read: "), line
    assert str(damaged) in line and "image file is truncated" in line and "Remove or replace" in line
    assert not (out / "metrics.jsonl").exists() and not (out / "checkpoints").exists()


# ----------------------------------------------------------------------------------------------------------------
# In-memory sets, channels, normalisation
# ----------------------------------------------------------------------------------------------------------------


def test_array_dataset_and_limit():
    images = torch.randint(0, 256, (5, 3, 4, 4), dtype=torch.uint8)
    dataset = di.ArrayImageDataset(images, [4, 3, 2, 1, 0], limit=3)
    assert len(dataset) == 3
    image, label = dataset[2]
    assert torch.equal(image, images[2]) and label == 2 and type(label) is int
    assert len(di.ArrayImageDataset(images, [0] * 5, limit=99)) == 5
    with pytest.raises(ValueError, match="uint8"):
        di.ArrayImageDataset(images.float(), [0] * 5)
    with pytest.raises(ValueError, match="one label per image"):
        di.ArrayImageDataset(images, [0] * 4)
    with pytest.raises(ValueError, match="limit=0"):
        di.ArrayImageDataset(images, [0] * 5, limit=0)


def test_convert_channels_matches_pil():
    rgb = np.random.default_rng(3).integers(0, 256, (2, 7, 9, 3), dtype=np.uint8)
    grey = di.convert_channels(torch.from_numpy(rgb).permute(0, 3, 1, 2), 1)  # (2, 1, 7, 9)
    for n in range(2):
        assert np.array_equal(grey[n, 0].numpy(), np.asarray(Image.fromarray(rgb[n]).convert("L")))
    assert torch.equal(di.convert_channels(grey, 3), grey.repeat(1, 3, 1, 1))
    with pytest.raises(ValueError, match="num_channels=2"):
        di.convert_channels(grey, 2)
    # One definition, shared with the processor saved next to a classifier.
    assert di.convert_channels is image_processing_aft.convert_channels


def test_normalize_is_float64_reference():
    images = torch.randint(0, 256, (2, 3, 5, 5), dtype=torch.uint8)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    expected = np.empty((2, 3, 5, 5))
    for c in range(3):
        expected[:, c] = (images[:, c].numpy().astype(np.float64) / 255 - mean[c]) / std[c]
    out = di.normalize(images, mean, std)
    assert out.dtype == torch.float32
    assert np.abs(out.numpy() - expected).max() < 1e-6
    with pytest.raises(ValueError, match="uint8"):
        di.normalize(images.float(), mean, std)
    with pytest.raises(ValueError, match="one value per channel"):
        di.normalize(images, (0.5,), (0.5,))


# ----------------------------------------------------------------------------------------------------------------
# The processor saved with a classifier, through AutoImageProcessor and pipeline
# ----------------------------------------------------------------------------------------------------------------


def test_processor_equals_normalize_of_the_same_pixels():
    rng = np.random.default_rng(4)
    for channels, mean, std in ((1, (0.3,), (0.4,)), (3, di.IMAGENET_MEAN, di.IMAGENET_STD)):
        processor = di.make_image_processor(6, channels, mean, std)
        pixels = rng.integers(0, 256, (6, 6, channels), dtype=np.uint8)  # (H, W, C)
        image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
        out = processor(images=image, return_tensors="pt")["pixel_values"]
        expected = di.normalize(torch.from_numpy(pixels).permute(2, 0, 1)[None], mean, std)
        assert out.shape == (1, channels, 6, 6)
        assert torch.allclose(out, expected, atol=1e-6, rtol=0)
    # Other sizes and modes: what the image-folder loader reads, normalised.
    big = Image.fromarray(rng.integers(0, 256, (13, 21, 3), dtype=np.uint8))
    for channels, mean, std in ((1, (0.3,), (0.4,)), (3, (0.5,) * 3, (0.25,) * 3)):
        out = di.make_image_processor(6, channels, mean, std)(images=big, return_tensors="pt")["pixel_values"]
        expected = di.normalize(di.pil_to_tensor(big, channels, 6)[None], mean, std)
        assert torch.allclose(out, expected, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="need 3 values"):
        di.make_image_processor(6, 3, (0.5,), (0.5,))


@pytest.mark.parametrize("channels", [1, 3])
def test_pipeline_on_pil_images(tmp_path, channels):
    from transformers import AutoImageProcessor, pipeline

    torch.manual_seed(0)
    config = AFTConfig.from_preset("cpu-image-simple", num_channels=channels, num_hidden_layers=1)
    model = AFTForImageClassification(config).eval()
    mean, std = ((0.2860,), (0.3530,)) if channels == 1 else (di.IMAGENET_MEAN, di.IMAGENET_STD)
    model.save_pretrained(tmp_path)
    di.make_image_processor(config.image_size, channels, mean, std).save_pretrained(tmp_path)

    processor = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(processor) is modeling_aft.AFTImageProcessorPil and processor.num_channels == channels
    classifier = pipeline("image-classification", model=str(tmp_path))
    rng = np.random.default_rng(channels)
    mode_shape = (35, 30) if channels == 1 else (35, 30, 3)  # not the model's size: resized and cropped
    image = Image.fromarray(rng.integers(0, 256, mode_shape, dtype=np.uint8))
    assert image.mode == ("L" if channels == 1 else "RGB")
    predictions = classifier(image, top_k=config.num_labels)
    # The same numbers by hand: the loader's pixels, normalize, the model, a softmax.
    pixel_values = di.normalize(di.pil_to_tensor(image, channels, config.image_size)[None], mean, std)
    with torch.no_grad():
        probabilities = model(pixel_values).logits[0].double().softmax(-1)
    assert len(predictions) == config.num_labels
    for item in predictions:
        assert abs(item["score"] - probabilities[model.config.label2id[item["label"]]].item()) < 1e-5
    # The other mode goes in as well: RGB to a grey model (luma; exact for grey pixels), grey to an RGB model
    # (repeated); and an (H, W, C) array.
    other = image.convert("RGB" if channels == 1 else "L")
    same_pixels = image if channels == 1 else other.convert("RGB")
    expected = di.normalize(di.pil_to_tensor(same_pixels, channels, config.image_size)[None], mean, std)
    assert torch.allclose(processor(images=other, return_tensors="pt")["pixel_values"], expected, atol=1e-6, rtol=0)
    array = np.asarray(image).reshape(35, 30, channels)
    expected = di.normalize(di.pil_to_tensor(image, channels, config.image_size)[None], mean, std)
    assert torch.allclose(processor(images=array, return_tensors="pt")["pixel_values"], expected, atol=1e-6, rtol=0)
