# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""`--dataset`: the trainers read `datasets` datasets (local json/jsonl, parquet, csv and text files, save_to_disk
folders, image datasets), offline, with files made here. A text dataset gives exactly the bytes of the same
documents written as one plain file (joined by a blank line) and read with `--data`, streamed or not."""

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import modeling_aft  # noqa: F401
from tests.helpers import TINY_TEXT_OVERRIDES, one_line_error, reset_accelerate_state
from training import train_image, train_pixels, train_text
from training.data_images import load_image_dataset
from training.data_text import DOCUMENT_SEPARATOR, load_text, load_text_dataset, read_documents

TINY = TINY_TEXT_OVERRIDES
FAST = ["--seq-len", "64", "--batch-size", "8", "--log-every", "1", "--no-progress", "--no-tensorboard",
        "--config-overrides", TINY]
SHORT = ["--max-steps", "2", "--warmup-steps", "1", "--eval-every", "2", "--save-every", "2", "--eval-bytes", "256",
         "--sample-bytes", "0", "--skip-final-eval"]
TINY_IMAGE = "num_hidden_layers=1,hidden_size=32,intermediate_size=64,num_heads=4,image_size=8,patch_size=4"
TINY_PIXELS = "num_hidden_layers=1,hidden_size=32,intermediate_size=64,position_bias_dim=8,local_window=24"
QUIET = ["--no-progress", "--no-tensorboard"]


@pytest.fixture(autouse=True)
def offline_cache(tmp_path, monkeypatch):
    """datasets' cache in the test's folder (nothing shared between tests), and no network; fresh Accelerate state."""
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    yield
    reset_accelerate_state()


def documents(count: int = 24) -> list[str]:
    """Documents of varied length with multi-byte characters and inner blank lines; one empty (skipped, as an empty
    file in a folder is)."""
    docs = [f"Article {i}: caf\u00e9 \u00fcber \u65e5\u672c {i * 7 % 13}.\n\n" + "word " * (5 + i * 3) + "\nend"
            for i in range(count)]
    docs[3] = ""
    return docs


def plain_file(path: Path, docs: list[str]) -> Path:
    path.write_bytes(DOCUMENT_SEPARATOR.join(d.encode() for d in docs if d))
    return path


def write_format(folder: Path, fmt: str, docs: list[str]) -> Path:
    """The documents (with an extra integer column) as one file of `fmt`, or for "txt" a folder of one file each."""
    rows = {"id": list(range(len(docs))), "text": docs}
    if fmt == "jsonl":
        path = folder / "corpus.jsonl"
        path.write_text("".join(json.dumps({"id": i, "text": d}) + "\n" for i, d in enumerate(docs)))
    elif fmt == "json":
        path = folder / "corpus.json"
        path.write_text(json.dumps([{"id": i, "text": d} for i, d in enumerate(docs)]))
    elif fmt == "parquet":
        path = folder / "corpus.parquet"
        datasets.Dataset.from_dict(rows).to_parquet(str(path))
    elif fmt == "csv":
        path = folder / "corpus.csv"
        datasets.Dataset.from_dict(rows).to_csv(str(path), index=False)
    else:
        path = folder / "texts"
        path.mkdir()
        for i, d in enumerate(docs):
            (path / f"doc{i:02d}.txt").write_text(d, encoding="utf-8")
    return path


def assert_same_splits(a, b):
    for name in ("train", "valid", "test"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("streaming", [False, True], ids=["loaded", "streamed"])
@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet", "csv", "txt"])
def test_each_local_format_gives_the_bytes_of_the_same_documents_in_one_plain_file(tmp_path, fmt, streaming):
    docs = documents()
    reference = load_text(plain_file(tmp_path / "plain.txt", docs))
    got = load_text_dataset(write_format(tmp_path, fmt, docs), streaming=streaming)
    assert_same_splits(got, reference)
    assert got.train.size > 2000 and got.valid.size == got.test.size == int(reference.train.size / 0.9 * 0.05)


def test_streaming_stops_reading_at_the_byte_budget(tmp_path):
    consumed = []

    def rows():  # 10,000 rows; the budget is met in the first few
        for i in range(10_000):
            consumed.append(i)
            yield {"text": f"row {i} caf\u00e9"}

    stream = datasets.IterableDataset.from_generator(rows)
    joined = DOCUMENT_SEPARATOR.join(f"row {i} caf\u00e9".encode() for i in range(10_000))
    got = read_documents(stream, "text", 3000, "a stream")
    assert got.tobytes() == joined[:3000] and len(consumed) <= 1000  # one read batch of 1000 rows, not all
    docs = documents(200)
    joined = DOCUMENT_SEPARATOR.join(d.encode() for d in docs if d)
    # Through the loader: the first --max-bytes of the corpus, cut 90/5/5 exactly as that prefix in a file.
    budget = 5000
    path = write_format(tmp_path, "jsonl", docs)
    prefix = tmp_path / "prefix.txt"
    prefix.write_bytes(joined[:budget])
    assert_same_splits(load_text_dataset(path, streaming=True, max_bytes=budget), load_text(prefix))


def test_the_datasets_own_splits_are_kept_and_a_missing_one_is_cut_from_the_end_of_train(tmp_path):
    docs = documents(30)
    parts = {"train": docs[:20], "validation": docs[20:25], "test": docs[25:]}
    full, half = tmp_path / "full", tmp_path / "half"
    for folder, names in ((full, ("train", "validation", "test")), (half, ("train", "test"))):
        folder.mkdir()
        for name in names:
            (folder / f"{name}.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in parts[name]))
    joined = {name: DOCUMENT_SEPARATOR.join(d.encode() for d in texts if d) for name, texts in parts.items()}
    got = load_text_dataset(full)
    assert (got.train.tobytes(), got.valid.tobytes(), got.test.tobytes()) == (
        joined["train"], joined["validation"], joined["test"])
    got = load_text_dataset(half)
    n_valid = int(len(joined["train"]) * 0.05)
    assert got.train.tobytes() + got.valid.tobytes() == joined["train"] and got.valid.size == n_valid
    assert got.test.tobytes() == joined["test"]
    # A budget is shared 90/5/5: each split is read up to its share, a prefix of the split.
    got = load_text_dataset(full, streaming=True, max_bytes=2000)
    assert got.train.tobytes() == joined["train"][:1800] and got.valid.tobytes() == joined["validation"][:100]
    # --dataset-split: that split alone, cut as a file.
    one = load_text_dataset(full, split="validation")
    assert one.train.tobytes() + one.valid.tobytes() + one.test.tobytes() == joined["validation"]


def test_a_save_to_disk_folder_is_read_with_load_from_disk(tmp_path):
    docs = documents()
    reference = load_text(plain_file(tmp_path / "plain.txt", docs))
    datasets.Dataset.from_dict({"body": docs}).save_to_disk(str(tmp_path / "single"))
    assert_same_splits(load_text_dataset(tmp_path / "single", text_column="body"), reference)
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": docs[:20]}),
                          "validation": datasets.Dataset.from_dict({"text": docs[20:]})}
                         ).save_to_disk(str(tmp_path / "dict"))
    got = load_text_dataset(tmp_path / "dict")
    assert got.valid.tobytes() == DOCUMENT_SEPARATOR.join(d.encode() for d in docs[20:])
    assert got.train.size + got.test.size == len(DOCUMENT_SEPARATOR.join(d.encode() for d in docs[:20] if d))


def test_bad_datasets_are_refused_naming_the_columns_and_the_fix(tmp_path):
    path = write_format(tmp_path, "jsonl", documents())

    def message(*args, **kwargs) -> str:
        with pytest.raises(ValueError) as info:
            load_text_dataset(*args, **kwargs)
        return str(info.value)

    text = message(path, text_column="body")
    assert "no column 'body'; its columns: id, text; pass --text-column" in text and "text columns: text" in text
    assert "no column 'body'; its columns: id, text" in message(path, text_column="body", streaming=True)
    assert "the column 'id' holds Value('int64'), not text; pass --text-column" in message(path, text_column="id")
    (tmp_path / "blank.jsonl").write_text('{"text": ""}\n{"text": ""}\n')
    assert "holds no text in the column 'text'" in message(tmp_path / "blank.jsonl")
    assert "has no split 'dev'; its splits: train; pass one of them to --dataset-split" in message(path, split="dev")
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "a.csv").write_text("text\nx\n")
    (tmp_path / "mixed" / "b.jsonl").write_text('{"text": "y"}\n')
    assert "mixes csv and json files" in message(tmp_path / "mixed")
    text = message("no-such-user/no-such-dataset")
    assert text.startswith("--dataset no-such-user/no-such-dataset does not load (") and "OFFLINE" in text
    assert "--max-bytes 0 must be an integer" in message(path, max_bytes=0)


def test_a_run_from_a_dataset_trains_on_the_same_batches_as_the_plain_file(tmp_path, capsys):
    docs = documents()
    path = write_format(tmp_path, "jsonl", docs)
    plain = plain_file(tmp_path / "plain.txt", docs)
    from_dataset = train_text.main(["--dataset", str(path), "--streaming", "--output-dir", str(tmp_path / "a"),
                                    *SHORT, *FAST])
    from_file = train_text.main(["--data", str(plain), "--output-dir", str(tmp_path / "b"), *SHORT, *FAST])
    losses = [[json.loads(line)["train/loss"] for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()
               if "train/loss" in line] for run in ("a", "b")]
    assert len(losses[0]) == 2 and losses[0] == losses[1]
    assert from_dataset["bpc"] == from_file["bpc"]
    weights = [load_file(tmp_path / run / "model" / "model.safetensors") for run in ("a", "b")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[1])
    card = (tmp_path / "a" / "model" / "README.md").read_text()
    assert "column 'text'" in card
    # A checkpoint of one dataset does not continue on another.
    message = one_line_error(train_text.main, ["--dataset", str(plain), "--output-dir", str(tmp_path / "a"),
                                               "--resume", *SHORT[:-1], *FAST], capsys)
    assert "the data order differs (--dataset:" in message
    assert "--streaming only apply to --dataset" in one_line_error(
        train_text.main, ["--streaming", "--output-dir", str(tmp_path / "c"), *FAST], capsys)
    assert "pass either --data" in one_line_error(
        train_text.main, ["--data", str(plain), "--dataset", str(path), "--output-dir", str(tmp_path / "c"), *FAST],
        capsys)
    assert "no column 'body'" in one_line_error(
        train_text.main, ["--dataset", str(path), "--text-column", "body", "--output-dir", str(tmp_path / "c"),
                          *FAST], capsys)


# --- images ----------------------------------------------------------------------------------------------------


def grey_level_image(level: int, rng, size: int = 10) -> Image.Image:
    return Image.fromarray(np.clip(level + rng.integers(-20, 21, (size, size, 3)), 0, 255).astype(np.uint8), "RGB")


LEVELS = {"bright": 220, "dark": 30, "mid": 128}


def test_an_image_folder_in_datasets_layout_gives_its_folder_names_as_labels(tmp_path):
    rng = np.random.default_rng(0)
    for name, level in LEVELS.items():
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(7):
            grey_level_image(level, rng).save(tmp_path / "imgs" / name / f"{i}.png")
    data = load_image_dataset(tmp_path / "imgs", image_size=8)
    assert data.class_names == ["bright", "dark", "mid"] and data.source == "imgs"
    assert len(data.train) == 20 and len(data.valid) == 1  # no validation split: 5% (at least one) held out
    for split in (data.train, data.valid):
        for i in range(len(split)):
            image, label = split[i]
            assert image.shape == (3, 8, 8) and image.dtype == torch.uint8
            level = LEVELS[data.class_names[label]]
            assert abs(image.float().mean().item() - level) < 12, (label, image.float().mean())
    (tmp_path / "imgs" / "dark" / "3.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="3.png"):
        load_image_dataset(tmp_path / "imgs", image_size=8)


def saved_image_dataset(folder: Path, per_class: int = 6) -> Path:
    """A DatasetDict with an Image column 'picture' and a ClassLabel 'kind' whose names are not sorted."""
    rng = np.random.default_rng(1)
    names = ["dark", "bright"]
    features = datasets.Features({"picture": datasets.Image(), "kind": datasets.ClassLabel(names=names),
                                  "note": datasets.Value("string")})
    splits = {}
    for split, count in (("train", per_class), ("validation", 2)):
        rows = [(grey_level_image(LEVELS[n], rng), k) for _ in range(count) for k, n in enumerate(names)]
        splits[split] = datasets.Dataset.from_dict(
            {"picture": [r[0] for r in rows], "kind": [r[1] for r in rows], "note": ["x"] * len(rows)},
            features=features)
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    return folder


def test_the_image_trainers_read_a_dataset_with_an_image_feature_and_a_class_label(tmp_path, capsys):
    folder = saved_image_dataset(tmp_path / "saved")
    data = load_image_dataset(folder, image_size=8, image_column="picture", label_column="kind")
    assert data.class_names == ["dark", "bright"] and len(data.train) == 12 and len(data.valid) == 4
    means = {label: [] for label in (0, 1)}
    for i in range(len(data.valid)):
        image, label = data.valid[i]
        means[label].append(image.float().mean().item())
    assert max(means[0]) < 60 and min(means[1]) > 190
    out = tmp_path / "run"
    metrics = train_image.main(["--dataset", str(folder), "--image-column", "picture", "--label-column", "kind",
                                "--output-dir", str(out), "--max-steps", "3", "--warmup-steps", "1", "--batch-size",
                                "4", "--eval-every", "3", "--save-every", "3", "--eval-images", "4",
                                "--config-overrides", TINY_IMAGE, *QUIET])
    assert metrics["images"] == 4
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["id2label"] == {"0": "dark", "1": "bright"}
    message = one_line_error(train_image.main, ["--dataset", str(folder), "--output-dir", str(tmp_path / "x"),
                                                "--config-overrides", TINY_IMAGE, *QUIET], capsys)
    assert "no column 'image'; its columns: picture, kind, note; pass --image-column" in message
    message = one_line_error(train_image.main, ["--dataset", str(folder), "--image-column", "note",
                                                "--output-dir", str(tmp_path / "x"), "--config-overrides", TINY_IMAGE,
                                                *QUIET], capsys)
    assert "the column 'note' holds Value('string'), not images" in message
    message = one_line_error(train_image.main, ["--dataset", str(folder), "--image-column", "picture",
                                                "--output-dir", str(tmp_path / "x"), "--config-overrides", TINY_IMAGE,
                                                *QUIET], capsys)
    assert "no column 'label'; its columns: picture, kind, note; pass --label-column" in message
    # The pixel LM needs no labels; it reads the images at --image-size.
    metrics = train_pixels.main(["--dataset", str(folder), "--image-column", "picture", "--image-size", "8",
                                 "--output-dir", str(tmp_path / "pixels"), "--max-steps", "2", "--warmup-steps", "1",
                                 "--batch-size", "2", "--eval-every", "2", "--save-every", "2", "--eval-images", "2",
                                 "--final-eval-images", "2", "--sample-images", "0", "--config-overrides",
                                 TINY_PIXELS, *QUIET])
    assert metrics["images"] == 2
