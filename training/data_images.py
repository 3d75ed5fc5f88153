# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Image data for the two image trainers (the pixel language model and the classifier).

Every source gives the same `ImageSplits`: a train and a valid `Dataset` whose items are `(image, label)` with
`image` a `uint8` tensor `(C, H, W)` of square images, plus the class names, the channel count and the mean/std
the classifier normalises with. Sources:

- Fashion-MNIST from the Debian package `dataset-fashion-mnist` (IDX files), 60000 train / 10000 test as valid;
- CIFAR-10 "python version", the `cifar-10-batches-py` folder or the `cifar-10-python.tar.gz` archive itself;
- an ImageNet-style folder `root/train/<class>/*` and `root/val/<class>/*` (or `root/validation/...`), listed with
  `datasets.load_dataset("imagefolder")`, every file checked cheaply when the folder is opened (`check_image_files`:
  a truncated, empty or non-image file stops the run before its first step, named), and decoded lazily;
- a `datasets` dataset (`load_image_dataset`): a Hub name, a folder in datasets' "imagefolder" layout or a
  save_to_disk folder, with an Image column and class labels (a ClassLabel's names become the class names).

`make_image_processor` builds the processor saved next to a classifier (`modeling_aft.AFTImageProcessorPil`, which
lives in the model package so that a saved folder loads it without this one): it converts to the model's channel
count and resizes exactly as the image-folder loader does.
"""

import gzip
import io
import os
import pickle
import re
import struct
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

# Importing modeling_aft also registers the processor with AutoImageProcessor. convert_channels is defined there
# (one definition for the processor and the loaders) and re-exported here.
from modeling_aft import AFTImageProcessorPil
from modeling_aft.image_processing_aft import LUMA_WEIGHTS, convert_channels

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Measured once on the 60000 Fashion-MNIST training images (pixels / 255): mean 0.28604, std 0.35302.
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)
# CIFAR-10 and ImageNet models use the usual ImageNet statistics (as DeiT does).
IMAGENET_MEAN = tuple(IMAGENET_DEFAULT_MEAN)
IMAGENET_STD = tuple(IMAGENET_DEFAULT_STD)

# IDX type codes (http://yann.lecun.com/exdb/mnist/): all big-endian.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_RESAMPLE = Image.Resampling.BILINEAR


@dataclass
class ImageSplits:
    """Train and valid sets of square uint8 images `(C, H, W)` with integer labels, and what describes them."""

    train: Dataset
    valid: Dataset
    class_names: list[str]
    num_channels: int
    image_size: int
    source: str  # for model cards: "fashion_mnist", "cifar10", "imagefolder", or a dataset's name
    mean: tuple[float, ...]  # per channel, of pixels / 255: what `normalize` and the saved processor use
    std: tuple[float, ...]
    dataset_id: str | None = None  # a Hub dataset's id, for the model card's metadata


class ArrayImageDataset(Dataset):
    """An in-memory image set: `images` uint8 `(N, C, H, W)`, `labels` `(N,)`; `limit` keeps the first items."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | Sequence[int], limit: int | None = None):
        labels = torch.as_tensor(labels, dtype=torch.long)
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 tensor (N, C, H, W); got {images.dtype} of shape {tuple(images.shape)}. "
                "Convert with `images.to(torch.uint8)` and add the channel axis."
            )
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels has shape {tuple(labels.shape)} but there are {images.shape[0]} images; give one label "
                "per image."
            )
        if limit is not None:
            if limit < 1:
                raise ValueError(f"limit={limit} must be a positive number of items (or None for all).")
            images, labels = images[:limit], labels[:limit]
        self.images = images  # (N, C, H, W) uint8
        self.labels = labels  # (N,) long

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


# ----------------------------------------------------------------------------------------------------------------
# Pixels: resizing, normalisation (channels: convert_channels, from modeling_aft.image_processing_aft)
# ----------------------------------------------------------------------------------------------------------------


def resize_and_crop(image: Image.Image, image_size: int) -> Image.Image:
    """Short side to `image_size` (bilinear), then the centre `image_size` square, as the saved processor does."""
    width, height = image.size
    short, long = min(width, height), max(width, height)
    # The processor's rounding (transformers' get_resize_output_image_size): the long side is truncated.
    new_short, new_long = image_size, int(image_size * long / short)
    new_size = (new_short, new_long) if width <= height else (new_long, new_short)
    if new_size != image.size:
        image = image.resize(new_size, resample=_RESAMPLE)
    left, top = (new_size[0] - image_size) // 2, (new_size[1] - image_size) // 2
    return image.crop((left, top, left + image_size, top + image_size))


def pil_to_tensor(image: Image.Image, num_channels: int, image_size: int | None = None) -> torch.Tensor:
    """A PIL image as uint8 `(C, H, W)` with `num_channels` channels, resized and centre-cropped if asked."""
    image = image.convert("L" if num_channels == 1 else "RGB")
    if image_size is not None:
        image = resize_and_crop(image, image_size)
    array = np.asarray(image, dtype=np.uint8).reshape(image.size[1], image.size[0], num_channels)  # (H, W, C)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)  # (C, H, W)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 `(B, C, H, W)` to float32 `(pixels / 255 - mean) / std`: what the saved processor gives a PIL image."""
    if images.dtype != torch.uint8:
        raise ValueError(f"normalize takes uint8 images (0..255); got {images.dtype}. Normalise raw pixels once.")
    channels = images.shape[-3]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(
            f"mean {tuple(mean)} and std {tuple(std)} need one value per channel ({channels}); pass "
            "ImageSplits.mean / .std of the same data."
        )
    mean_t = torch.tensor(mean, dtype=torch.float32, device=images.device).view(channels, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=images.device).view(channels, 1, 1)
    # The processor rescales in float64 and rounds to float32 before normalising; do the same for equal outputs.
    scaled = (images.to(torch.float64) / 255.0).to(torch.float32)  # (B, C, H, W)
    return (scaled - mean_t) / std_t


# ----------------------------------------------------------------------------------------------------------------
# Fashion-MNIST (IDX files)
# ----------------------------------------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """An IDX file (gzip-compressed or raw, told apart by the gzip magic) as a tensor of its type and dims."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {path} does not exist; check the dataset folder.")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise ValueError(f"{path} is a damaged gzip file ({error}); download it again.") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file: magic {raw[:4].hex()} should be 0000<type><ndim>.")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{type_code:02x}; known: 08, 09, 0b, 0c, 0d, 0e.")
    if ndim < 1 or len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: IDX header with {ndim} dims is missing or truncated; the file is damaged.")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise ValueError(
            f"{path}: dims {dims} need {expected} bytes of data but the file holds {len(raw) - offset}; the file "
            "is truncated or damaged."
        )
    array = np.frombuffer(raw, dtype=dtype, offset=offset).reshape(dims)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def _fashion_split(root: Path, prefix: str) -> ArrayImageDataset:
    images = read_idx(root / f"{prefix}-images-idx3-ubyte.gz")  # (N, 28, 28)
    labels = read_idx(root / f"{prefix}-labels-idx1-ubyte.gz")  # (N,)
    if images.dim() != 3 or images.dtype != torch.uint8 or labels.dim() != 1 or len(labels) != len(images):
        raise ValueError(
            f"{root}/{prefix}-*: images {tuple(images.shape)} {images.dtype} and labels {tuple(labels.shape)} are "
            "not (N, H, W) uint8 with N labels; reinstall dataset-fashion-mnist."
        )
    if int(labels.max()) >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f"{root}/{prefix}-labels holds label {int(labels.max())}; Fashion-MNIST has 10 classes.")
    return ArrayImageDataset(images.unsqueeze(1), labels)


def load_fashion_mnist(root: str | os.PathLike = FASHION_MNIST_ROOT) -> ImageSplits:
    """Fashion-MNIST: 60000 train and the 10000 test images as valid, 1 x 28 x 28, ten classes."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"Fashion-MNIST folder {root} does not exist; install it with `apt-get install dataset-fashion-mnist` "
            "or pass the folder holding train-images-idx3-ubyte.gz etc."
        )
    train, valid = _fashion_split(root, "train"), _fashion_split(root, "t10k")
    size = train.images.shape[-1]
    return ImageSplits(
        train, valid, list(FASHION_MNIST_CLASSES), 1, size, "fashion_mnist", FASHION_MNIST_MEAN, FASHION_MNIST_STD
    )


# ----------------------------------------------------------------------------------------------------------------
# CIFAR-10 (python version: pickled dicts)
# ----------------------------------------------------------------------------------------------------------------


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches (dicts of bytes, lists and numpy arrays) and nothing else: a pickle from the
    internet must not run arbitrary code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol 2 spells bytes when written by Python 3
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"CIFAR pickle refers to {module}.{name}, which a CIFAR batch never does.")
        if module.startswith("numpy.core.") and np.lib.NumpyVersion(np.__version__) >= "2.0.0":
            module = module.replace("numpy.core.", "numpy._core.")  # batches pickled by NumPy 1 (the real ones)
        return super().find_class(module, name)


def _unpickle(data: bytes, name: str) -> dict:
    try:
        batch = _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as error:
        raise ValueError(f"CIFAR file {name} cannot be unpickled ({error}); download the archive again.") from error
    if not isinstance(batch, dict):
        raise ValueError(f"CIFAR file {name} holds a {type(batch).__name__}, not a dict; is it a CIFAR-10 batch?")
    return batch


def _cifar_batch(data: bytes, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    batch = _unpickle(data, name)
    if b"data" not in batch or b"labels" not in batch:
        raise ValueError(f"CIFAR file {name} has keys {sorted(batch)}; a CIFAR-10 batch has b'data' and b'labels'.")
    pixels = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != 3 * 32 * 32 or len(labels) != len(pixels):
        raise ValueError(
            f"CIFAR file {name}: data {pixels.shape} {pixels.dtype} with {len(labels)} labels; expected uint8 "
            "(N, 3072) with N labels (is this CIFAR-100 or a damaged file?)."
        )
    # Each row: the 1024 red values, then green, then blue, each plane row-major.
    images = torch.from_numpy(pixels.reshape(-1, 3, 32, 32).copy())  # (N, 3, 32, 32)
    return images, torch.from_numpy(labels)


def _cifar_files(path: Path) -> dict[str, bytes]:
    """The bytes of every CIFAR batch file by base name, from the folder or straight from the archive."""
    wanted = re.compile(r"(data_batch_\d+|test_batch|batches\.meta)")
    if path.is_dir():
        return {f.name: f.read_bytes() for f in path.iterdir() if f.is_file() and wanted.fullmatch(f.name)}
    files = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and wanted.fullmatch(base):
                    files[base] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ValueError(
            f"{path} is not a readable tar archive ({error}); pass cifar-10-python.tar.gz (download it again if "
            "damaged) or a folder."
        ) from error
    return files


def load_cifar10(path: str | os.PathLike) -> ImageSplits:
    """CIFAR-10 from the `cifar-10-batches-py` folder or the `cifar-10-python.tar.gz` archive (read in place): the
    data_batch_* files present (in numeric order) as train, test_batch as valid."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"CIFAR-10 path {path} does not exist; pass cifar-10-batches-py or its .tar.gz.")
    if path.is_dir() and (path / "cifar-10-batches-py").is_dir():
        path = path / "cifar-10-batches-py"
    files = _cifar_files(path)
    train_names = sorted((n for n in files if n.startswith("data_batch_")), key=lambda n: int(n.rsplit("_", 1)[1]))
    if not train_names or "test_batch" not in files:
        raise FileNotFoundError(
            f"{path} holds {sorted(files) or 'no CIFAR files'}; CIFAR-10 needs at least one data_batch_N and "
            "test_batch (the python version, cifar-10-python.tar.gz)."
        )
    class_names = list(CIFAR10_CLASSES)
    if "batches.meta" in files:
        meta = _unpickle(files["batches.meta"], "batches.meta")
        class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(b"label_names", class_names)]
    batches = [_cifar_batch(files[n], n) for n in train_names]
    train_images, train_labels = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    valid_images, valid_labels = _cifar_batch(files["test_batch"], "test_batch")
    top = int(max(train_labels.max(), valid_labels.max()))
    if top >= len(class_names):
        raise ValueError(f"{path}: label {top} but only {len(class_names)} class names; is this CIFAR-100?")
    train, valid = ArrayImageDataset(train_images, train_labels), ArrayImageDataset(valid_images, valid_labels)
    return ImageSplits(train, valid, class_names, 3, 32, "cifar10", IMAGENET_MEAN, IMAGENET_STD)


def _is_cifar(path: Path) -> bool:
    """A file (the only archive source is CIFAR-10's) or a folder holding CIFAR batches."""
    markers = ("cifar-10-batches-py", "test_batch", "batches.meta")
    return path.is_file() or any((path / name).exists() for name in markers)


# ----------------------------------------------------------------------------------------------------------------
# Image folders (ImageNet layout)
# ----------------------------------------------------------------------------------------------------------------


class UnreadableImageError(ValueError):
    """An image file that cannot be decoded; the message names the file(s) and the fix. One positional message
    argument only, so that a DataLoader worker can re-raise it in the main process."""


# What PIL raises for a damaged or foreign file: OSError ("image file is truncated", UnidentifiedImageError),
# SyntaxError (PIL's "broken PNG file" and the like), and a few plugins' own slips on garbage.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)
_JPEG_END = b"\xff\xd9"  # the EOI marker, the last two bytes a complete JPEG writer puts down


def _reason(path: str | os.PathLike, error: BaseException) -> str:
    """PIL's complaint, on one line; PIL's own message for an unidentified file names a file object, not the path."""
    if isinstance(error, Image.UnidentifiedImageError):
        try:
            empty = os.path.getsize(path) == 0
        except OSError:
            empty = False
        return "an empty file" if empty else "not an image file PIL can identify"
    return " ".join(f"{type(error).__name__}: {error}".split())


def unreadable_image_message(path: str | os.PathLike, error: BaseException) -> str:
    return f"cannot read image {path} ({_reason(path, error)}); remove or replace the file."


def check_image_file(path: str | os.PathLike) -> str | None:
    """Why the image file cannot be read, or None when it can: cheap where a cheap check catches truncation.

    PIL's `verify()` reads a PNG's chunks and their CRCs up to IEND without inflating the pixels, so it catches a
    truncated PNG; for a JPEG (and GIF, BMP, TIFF) it checks nothing. A truncated JPEG lacks the EOI marker at its
    end, so a JPEG that ends with EOI passes on those two bytes; one that does not (truncated, or with data appended
    by its writer) is decoded at 1/8 scale (`draft`), which raises for a truncated file exactly as the full decode in
    training would. Other formats have no cheap check and are decoded. Measured (one core, warm page cache): 30-50 ms
    per 1,000 files, small PNGs and JPEGs or 500 x 375 JPEGs alike, against 1.5-2 s per 1,000 to decode the latter."""
    try:
        with open(path, "rb") as file, Image.open(file) as image:
            if image.format == "PNG":
                image.verify()
                return None
            if image.format in ("JPEG", "MPO"):  # MPO: a camera's JPEG with extra pictures after the first
                file.seek(-len(_JPEG_END), os.SEEK_END)
                if file.read(len(_JPEG_END)) == _JPEG_END:
                    return None
        with Image.open(path) as image:
            image.draft(image.mode, (1, 1))  # JPEG: decode at the smallest scale libjpeg offers; others: no-op
            image.load()
    except Exception as error:  # noqa: BLE001 -- whatever reading the file raises, the file is what is wrong
        return _reason(path, error)
    return None


def check_image_files(paths: Sequence[str | os.PathLike], shown: int = 5) -> None:
    """Raise UnreadableImageError naming the files that `check_image_file` refuses (the first `shown` of them, and
    how many more), so that a damaged file stops the run before its first step rather than at its batch."""
    bad = [(path, reason) for path in paths if (reason := check_image_file(path)) is not None]
    if bad:
        listed = "; ".join(f"{path} ({reason})" for path, reason in bad[:shown])
        more = f"; and {len(bad) - shown} more" if len(bad) > shown else ""
        raise UnreadableImageError(
            f"{len(bad)} image file(s) cannot be read: {listed}{more}. Remove or replace them; every file is checked "
            "when the folder is opened, before training."
        )


class ImageFileDataset(Dataset):
    """Image files decoded lazily: each item is read, converted, resized and centre-cropped in `__getitem__`."""

    def __init__(self, paths: list[str], labels: list[int], image_size: int, num_channels: int):
        self.paths, self.labels = paths, labels
        self.image_size, self.num_channels = image_size, num_channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path = self.paths[index]
        try:
            with Image.open(path) as image:
                pixels = pil_to_tensor(image, self.num_channels, self.image_size)  # (C, S, S)
        except DECODE_ERRORS as error:  # a file damaged after the folder was checked
            raise UnreadableImageError(unreadable_image_message(path, error)) from error
        return pixels, self.labels[index]


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(entry.name for entry in split_dir.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def _split_files(split, split_dir: Path, class_index: dict[str, int]) -> tuple[list[str], list[int]]:
    """The image paths of a `datasets.Dataset` split and their labels from the class folders."""
    paths = split.data.column("image").combine_chunks().field("path").to_pylist()
    labels = []
    for path in paths:
        name = Path(path).parent.name
        if Path(path).parent.parent.resolve() != split_dir.resolve() or name not in class_index:
            raise ValueError(
                f"{path} is not in a class folder of {split_dir}; the layout is {split_dir}/<class>/<image> with "
                f"the classes of train ({', '.join(class_index)})."
            )
        labels.append(class_index[name])
    return paths, labels


def load_image_folder(
    root: str | os.PathLike,
    image_size: int,
    num_channels: int = 3,
    cache_dir: str | os.PathLike | None = None,
    check_files: bool = True,
) -> ImageSplits:
    """An ImageNet-layout folder: `root/train/<class>/*` and `root/val/<class>/*` (or `root/validation`), listed by
    `datasets` ("imagefolder"), class names from the train folder names (sorted), images decoded per item. With
    `check_files` every file is checked first (`check_image_files`); an unreadable one raises UnreadableImageError."""
    root = Path(root)
    if image_size is None or image_size < 1:
        raise ValueError(f"image_size={image_size}: an image folder needs the model's image size (e.g. 224).")
    if num_channels not in (1, 3):
        raise ValueError(f"num_channels={num_channels}; images are read as grey (1) or RGB (3).")
    train_dir = root / "train"
    valid_dir = next((root / n for n in ("val", "validation") if (root / n).is_dir()), None)
    if not train_dir.is_dir() or not _class_folders(train_dir):
        raise FileNotFoundError(f"{train_dir} has no class folders; the layout is {root}/train/<class>/<image>.")
    if valid_dir is None:
        raise FileNotFoundError(f"{root} has no val/ or validation/ folder; add {root}/val/<class>/<image>.")
    import datasets  # slow to import; only image folders need it

    try:
        splits = datasets.load_dataset(
            "imagefolder", data_dir=str(root), drop_labels=True, cache_dir=None if cache_dir is None else str(cache_dir)
        )
    except (datasets.data_files.EmptyDatasetError, ValueError) as error:  # ValueError: a split without images
        raise FileNotFoundError(
            f"{root}: no images found for a split ({error}); put images in the class folders of train/ and val/."
        ) from error
    for split in ("train", "validation"):
        if split not in splits or len(splits[split]) == 0:
            raise FileNotFoundError(f"{root}: no images found for the {split} split; add images to its class folders.")
    class_names = _class_folders(train_dir)
    class_index = {name: i for i, name in enumerate(class_names)}
    listed = [_split_files(splits[split], split_dir, class_index)
              for split, split_dir in (("train", train_dir), ("validation", valid_dir))]
    if check_files:  # both splits in one pass: every damaged file is named at once
        check_image_files([path for paths, _ in listed for path in paths])
    sets = [ImageFileDataset(paths, labels, image_size, num_channels) for paths, labels in listed]
    mean, std = imagenet_mean_std(num_channels)
    return ImageSplits(sets[0], sets[1], class_names, num_channels, image_size, "imagefolder", mean, std)


def imagenet_mean_std(num_channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """ImageNet's per-channel statistics, or for grey images their luma (the default of every non-Fashion-MNIST
    source, and of the converters)."""
    if num_channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    # A grey image's value is the luma of its RGB, so the luma of the RGB statistics stands in for it.
    weights = [w / 65536 for w in LUMA_WEIGHTS]
    return (round(sum(w * m for w, m in zip(weights, IMAGENET_MEAN)), 4),), (
        round(sum(w * s for w, s in zip(weights, IMAGENET_STD)), 4),
    )


# ----------------------------------------------------------------------------------------------------------------
# `datasets` datasets: the Hub, an image folder in datasets' layout, a save_to_disk folder
# ----------------------------------------------------------------------------------------------------------------


class DatasetImages(Dataset):
    """The images of a `datasets` split with an Image feature, decoded per item (converted, resized, centre-cropped
    as a folder's files are), with labels read once."""

    def __init__(self, split, image_column: str, labels: list[int], image_size: int, num_channels: int):
        self.split = split.select_columns([image_column])  # never decode the other columns
        self.image_column, self.labels = image_column, labels
        self.image_size, self.num_channels = image_size, num_channels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        try:
            image = self.split[int(index)][self.image_column]
            pixels = pil_to_tensor(image, self.num_channels, self.image_size)  # (C, S, S)
        except DECODE_ERRORS as error:  # datasets decodes with PIL
            raise UnreadableImageError(f"cannot read image {index} of the dataset ({_reason('', error)}); remove or "
                                       "replace it.") from error
        return pixels, self.labels[index]


def _class_labels(split, column: str, what: str, names: list[str] | None = None) -> tuple[list[int], list[str]]:
    """Integer labels and the class names: a ClassLabel's names; strings' sorted values; integers as their digits.
    `names`: those of the train split, which the other splits' labels must use."""
    import datasets

    feature = split.features[column]
    values = split.data.column(column).to_pylist()
    if isinstance(feature, datasets.ClassLabel):
        own = list(feature.names)
        if names is not None and own != names:
            raise ValueError(f"{what} has the classes {own}, the train split {names}; pass a dataset whose splits "
                             "share their classes.")
    elif getattr(feature, "dtype", None) in ("string", "large_string"):
        own = sorted({v for v in values if v is not None})
        index = {name: i for i, name in enumerate(names if names is not None else own)}
        values = [index.get(v, -1) for v in values]
    elif str(getattr(feature, "dtype", "")).startswith(("int", "uint")):
        own = [str(i) for i in range(max((v for v in values if v is not None), default=-1) + 1)]
    else:
        raise ValueError(f"{what}: the column {column!r} holds {feature}, not class labels; pass --label-column with a "
                         "ClassLabel, string or integer column.")
    names = own if names is None else names
    bad = [v for v in values if v is None or not 0 <= v < len(names)]
    if bad:
        raise ValueError(f"{what}: the column {column!r} holds {len(bad)} label(s) outside the {len(names)} classes of "
                         f"the train split (such as {bad[0]!r}: an unlabelled image?); pass a labelled split with "
                         "--dataset-split.")
    return values, names


def _check_image_column(split, column: str, what: str) -> None:
    import datasets

    from .data_text import _missing_column

    if column not in split.features:
        images = [name for name, f in split.features.items() if isinstance(f, datasets.Image)]
        raise ValueError(f"{_missing_column(column, list(split.features), what, '--image-column')} (image columns: "
                         f"{', '.join(images) or 'none'})")
    if not isinstance(split.features[column], datasets.Image):
        raise ValueError(f"{what}: the column {column!r} holds {split.features[column]}, not images; pass "
                         "--image-column with a column of the Image feature.")


def _local_files(split, column: str) -> list[str]:
    """The paths of the images a split reads from files (an image folder; embedded images have bytes)."""
    storage = split.data.column(column).combine_chunks()
    paths, raw = storage.field("path").to_pylist(), storage.field("bytes").to_pylist()
    return [path for path, data in zip(paths, raw) if data is None and path]


def load_image_dataset(
    source: str | os.PathLike,
    image_size: int,
    num_channels: int = 3,
    config: str | None = None,
    split: str | None = None,
    image_column: str = "image",
    label_column: str | None = "label",
    valid_fraction: float = 0.05,
    cache_dir: str | os.PathLike | None = None,
    check_files: bool = True,
) -> ImageSplits:
    """A `datasets` image dataset: a Hub name (`config`), a folder read by `load_dataset("imagefolder")` (class
    folders give the labels; train/ and validation/ (or val/, test/) folders the splits) or a save_to_disk folder.

    `image_column` holds an Image feature; `label_column` a ClassLabel (its names become the class names), strings
    or integers; None: no labels (the pixel LM), every label 0. Splits: train, and as valid the dataset's validation
    (or valid / val / dev), else its test split; with neither, or with `split` alone, a fixed pseudo-random
    `valid_fraction` of the images (seed 0, at least one) is held out as valid. Images are decoded per item; with
    `check_files` the files of a local image folder are checked first (`check_image_files`)."""
    from .data_text import _missing_column, open_dataset, pick_splits

    if image_size is None or image_size < 1:
        raise ValueError(f"image_size={image_size}: a dataset's images need the model's image size (e.g. 224).")
    if num_channels not in (1, 3):
        raise ValueError(f"num_channels={num_channels}; images are read as grey (1) or RGB (3).")
    if not 0 < valid_fraction < 1:
        raise ValueError(f"valid_fraction={valid_fraction!r} is outside (0, 1); pass a fraction such as 0.05.")
    splits, hub_id = open_dataset(source, config, local_builder=lambda path: "imagefolder", cache_dir=cache_dir)
    train_name, valid_name, _ = pick_splits(splits, source, split)
    if split is None and valid_name is None and "test" in splits:
        valid_name = "test"
    label = f"--dataset {source}" + (f" ({config})" if config else "")
    parts = {"train": splits[train_name]}
    if valid_name is not None:
        parts["valid"] = splits[valid_name]
    names: list[str] | None = None if label_column is not None else ["image"]
    labels = {}
    for key, part in parts.items():  # train first: its classes are the model's
        what = f"the {train_name if key == 'train' else valid_name!r} split of {label}"
        if len(part) == 0:
            raise ValueError(f"{what} holds no images; pass a dataset with images (or another --dataset-split).")
        _check_image_column(part, image_column, what)
        if label_column is None:
            labels[key] = [0] * len(part)
        elif label_column not in part.features:
            raise _missing_column(label_column, list(part.features), what, "--label-column")
        else:
            labels[key], names = _class_labels(part, label_column, what, names)
    if check_files and hub_id is None:
        check_image_files([path for part in parts.values() for path in _local_files(part, image_column)])
    if valid_name is None:  # hold out a fixed random share: a dataset's rows are often sorted by class
        order = np.random.default_rng(0).permutation(len(parts["train"]))
        n_valid = max(1, int(len(order) * valid_fraction))
        if len(order) - n_valid < 1:
            raise ValueError(f"{label} holds {len(order)} image(s): too few to hold out a validation split; add "
                             "images or a validation split.")
        keep, held = np.sort(order[:-n_valid]), np.sort(order[-n_valid:])
        train = parts["train"]
        parts = {"train": train.select(keep), "valid": train.select(held)}
        labels = {"train": [labels["train"][i] for i in keep], "valid": [labels["train"][i] for i in held]}
    sets = [DatasetImages(parts[key], image_column, labels[key], image_size, num_channels)
            for key in ("train", "valid")]
    mean, std = imagenet_mean_std(num_channels)
    name = hub_id or Path(source).name
    return ImageSplits(sets[0], sets[1], names, num_channels, image_size, name, mean, std, dataset_id=hub_id)


# ----------------------------------------------------------------------------------------------------------------
# One entry point
# ----------------------------------------------------------------------------------------------------------------


def _adapt(splits: ImageSplits, image_size: int | None, num_channels: int | None) -> ImageSplits:
    """In-memory sets at their native size; channels converted (1 <-> 3) on request."""
    if image_size is not None and image_size != splits.image_size:
        raise ValueError(
            f"image_size={image_size}, but {splits.source} images are {splits.image_size} x {splits.image_size}; "
            f"use a model with image_size={splits.image_size} (or pass image_size=None)."
        )
    if num_channels is None or num_channels == splits.num_channels:
        return splits
    train, valid = (
        ArrayImageDataset(convert_channels(split.images, num_channels), split.labels)
        for split in (splits.train, splits.valid)
    )
    if splits.source == "fashion_mnist":
        mean, std = FASHION_MNIST_MEAN * num_channels, FASHION_MNIST_STD * num_channels
    else:
        mean, std = imagenet_mean_std(num_channels)
    return ImageSplits(train, valid, splits.class_names, num_channels, splits.image_size, splits.source, mean, std)


def is_fixed_size(source: str | None) -> bool:
    """Whether the source's images all have one size of their own (Fashion-MNIST, CIFAR-10), unlike a folder."""
    return source is None or source == "fashion_mnist" or (Path(source).exists() and _is_cifar(Path(source)))


def load_images(source: str | None, image_size: int | None = None, num_channels: int | None = None) -> ImageSplits:
    """None or "fashion_mnist": Fashion-MNIST; a CIFAR-10 folder or archive: CIFAR-10; another folder: an
    ImageNet-layout image folder (needs `image_size`). Fixed-size sets must match `image_size` when it is given;
    `num_channels` converts grey <-> RGB."""
    if source is None or source == "fashion_mnist":
        return _adapt(load_fashion_mnist(), image_size, num_channels)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(
            f"image source {source!r} is neither 'fashion_mnist' nor an existing path; pass 'fashion_mnist', a "
            "CIFAR-10 folder/archive or an image folder with train/ and val/."
        )
    if _is_cifar(path):
        return _adapt(load_cifar10(path), image_size, num_channels)
    if image_size is None:
        raise ValueError(f"image_size is required for the image folder {source}; pass the model's image_size.")
    return load_image_folder(path, image_size, 3 if num_channels is None else num_channels)


# ----------------------------------------------------------------------------------------------------------------
# The image processor saved with a classifier
# ----------------------------------------------------------------------------------------------------------------


def make_image_processor(
    image_size: int, num_channels: int, mean: Sequence[float], std: Sequence[float]
) -> AFTImageProcessorPil:
    """The processor to save with a classifier: PIL images of any size and mode -> normalised `(C, S, S)` floats,
    equal to `normalize` of what the image-folder loader reads from the same file."""
    if num_channels not in (1, 3):
        raise ValueError(f"num_channels={num_channels}; the processor makes grey (1) or RGB (3) images.")
    if len(mean) != num_channels or len(std) != num_channels:
        raise ValueError(f"mean {tuple(mean)} / std {tuple(std)} need {num_channels} values, one per channel.")
    return AFTImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=list(mean),
        image_std=list(std),
        num_channels=num_channels,
    )
