# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""One atomic-write helper serves every writer: a file or folder appears whole or not at all, with the mode a plain
write gives; a write that fails midway leaves the old file as it was and no temporary behind; and every reader that
lists a folder skips the one temporary-name style."""

import json
import os
import stat
from pathlib import Path

import pytest
import torch

from training import atomic, engine, plots, train_pixels
from training.atomic import atomic_file, atomic_write_bytes, atomic_write_json, atomic_write_text, is_temporary


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class Boom(Exception):
    pass


# ----------------------------------------------------------------------------------------------------------------
# The helper
# ----------------------------------------------------------------------------------------------------------------


def test_the_three_writers_write_what_they_are_given(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\xffbytes")
    atomic_write_text(tmp_path / "b.txt", "line one\r\nline two\n")
    atomic_write_json(tmp_path / "c.json", {"b": 1, "a": [1.5, None]}, sort_keys=True)
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\xffbytes"
    assert (tmp_path / "b.txt").read_bytes() == b"line one\r\nline two\n"  # as given, no newline translation
    assert (tmp_path / "c.json").read_text() == '{\n  "a": [\n    1.5,\n    null\n  ],\n  "b": 1\n}\n'
    assert _names(tmp_path) == ["a.bin", "b.txt", "c.json"]


@pytest.mark.parametrize("mask, file_mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_a_new_file_gets_the_mode_a_plain_write_gives(tmp_path, umask, mask, file_mode):
    umask(mask)
    (tmp_path / "plain").write_bytes(b"")
    atomic_write_bytes(tmp_path / "atomic", b"")
    assert _mode(tmp_path / "plain") == file_mode  # what the umask gives to any new file
    assert _mode(tmp_path / "atomic") == file_mode  # tempfile.mkstemp would have made it 0600


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664])
def test_a_rewritten_file_keeps_its_mode_as_a_plain_write_would(tmp_path, umask, mode):
    umask(0o022)
    for name in ("plain", "atomic"):
        (tmp_path / name).write_bytes(b"old")
        os.chmod(tmp_path / name, mode)
    (tmp_path / "plain").write_bytes(b"new")
    atomic_write_bytes(tmp_path / "atomic", b"new")
    assert _mode(tmp_path / "plain") == _mode(tmp_path / "atomic") == mode
    assert (tmp_path / "atomic").read_bytes() == b"new"


@pytest.mark.parametrize("existing", [True, False], ids=["over-a-file", "new-file"])
def test_a_write_that_fails_midway_keeps_the_old_file_and_leaves_no_temporary(tmp_path, existing):
    path = tmp_path / "results.json"
    if existing:
        path.write_text("old")
    with pytest.raises(Boom):
        with atomic_file(path, "w") as file:
            file.write("half of it")
            file.flush()
            raise Boom()
    assert _names(tmp_path) == (["results.json"] if existing else [])
    if existing:
        assert path.read_text() == "old"


def test_a_failed_rename_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "card.md"
    path.write_text("old")

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(path, "new")
    assert _names(tmp_path) == ["card.md"] and path.read_text() == "old"


def test_json_that_cannot_be_encoded_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "x.json", {"a": object()})
    assert _names(tmp_path) == []


def test_the_temporary_is_a_hidden_sibling_with_the_one_prefix(tmp_path):
    with atomic_file(tmp_path / "model.safetensors", "wb") as file:
        (temporary,) = [p for p in tmp_path.iterdir()]
        assert temporary.name.startswith(".tmp-model.safetensors-") and is_temporary(temporary)
        assert os.fstat(file.fileno()).st_ino == os.stat(temporary).st_ino  # the open file is that temporary
    assert _names(tmp_path) == ["model.safetensors"]
    assert is_temporary(atomic.temporary_path(tmp_path / "x", random=False)) and not is_temporary("x.tmp")


def test_a_staged_folder_that_fails_keeps_the_old_folder_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "config.json").write_text("old")
    with pytest.raises(Boom):
        with atomic.staged_folder(out) as tmp:
            (tmp / "config.json").write_text("half")
            raise Boom()
    assert _names(tmp_path) == ["model"] and (out / "config.json").read_text() == "old"


def test_a_staged_folder_refuses_an_existing_output_without_overwrite(tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        with atomic.staged_folder(tmp_path / "model", overwrite=False):
            pytest.fail("the block ran")
    assert _names(tmp_path) == ["model"]


# ----------------------------------------------------------------------------------------------------------------
# Each writer of training/ on it: a failure midway leaves the old file and nothing else
# ----------------------------------------------------------------------------------------------------------------


def test_the_trainers_json_writer_leaves_nothing_when_a_value_fails_to_encode(tmp_path):
    class Unprintable:
        def __str__(self):
            raise Boom()

    engine.write_json_atomic(tmp_path / "trainer_state.json", {"step": 2})
    with pytest.raises(Boom):
        engine.write_json_atomic(tmp_path / "trainer_state.json", {"step": 4, "args": Unprintable()})
    assert _names(tmp_path) == ["trainer_state.json"]
    assert json.loads((tmp_path / "trainer_state.json").read_text()) == {"step": 2}


def test_the_metrics_log_cut_back_on_resume_leaves_the_old_log_when_the_rewrite_fails(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "train/loss": 1.0 / s}) for s in (1, 2, 3, 4)]
    path.write_text("".join(line + "\n" for line in lines))

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="No space left"):
        engine.MetricsLog(path, True, resume_step=2)
    assert _names(tmp_path) == ["metrics.jsonl"] and path.read_text().splitlines() == lines
    monkeypatch.undo()
    engine.MetricsLog(path, True, resume_step=2)
    assert path.read_text().splitlines() == lines[:2]


def test_the_loss_plot_leaves_the_old_png_when_drawing_fails_midway(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"step": s, "train/loss": 2.0 / s}) + "\n" for s in range(1, 6)))
    png = tmp_path / "loss_curves.png"
    plots.plot_loss_curves(metrics, png)
    before = png.read_bytes()

    def half_a_png(self, file, **kwargs):
        file.write(b"\x89PNG half")
        raise Boom()

    monkeypatch.setattr(Figure, "savefig", half_a_png)
    with pytest.raises(Boom):
        plots.plot_loss_curves(metrics, png)
    assert _names(tmp_path) == ["loss_curves.png", "metrics.jsonl"] and png.read_bytes() == before


def test_the_pixel_samples_grid_leaves_the_old_png_when_saving_fails_midway(tmp_path, monkeypatch):
    from PIL import Image

    images = torch.randint(0, 256, (3, 1, 6, 6), dtype=torch.uint8)
    path = tmp_path / "samples.png"
    train_pixels.save_grid(images, path)
    before = path.read_bytes()
    assert Image.open(path).size == (4 * 8 * 4, 1 * 8 * 4)

    def half_a_png(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half")
        raise Boom()

    monkeypatch.setattr(Image.Image, "save", half_a_png)
    with pytest.raises(Boom):
        train_pixels.save_grid(images, path)
    assert _names(tmp_path) == ["samples.png"] and path.read_bytes() == before


def test_the_demo_folder_writer_leaves_the_old_folder_when_saving_fails_midway(tmp_path):
    from training import demo

    class HalfSaved:
        def save_pretrained(self, folder):
            (Path(folder) / "model.safetensors").write_bytes(b"half")
            raise Boom()

    out = tmp_path / "aft-local-text"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"old")
    with pytest.raises(Boom):
        demo.save_atomically(HalfSaved(), out)
    assert _names(tmp_path) == ["aft-local-text"] and (out / "model.safetensors").read_bytes() == b"old"


def test_the_model_card_writer_keeps_its_name_and_leaves_nothing_when_it_fails(tmp_path, monkeypatch):
    from training import model_card

    card = tmp_path / "README.md"
    model_card.write_atomically(card, "old card\n")

    def no_sync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", no_sync)
    with pytest.raises(OSError):
        model_card.write_atomically(card, "new card\n")
    assert _names(tmp_path) == ["README.md"] and card.read_text() == "old card\n"


# ----------------------------------------------------------------------------------------------------------------
# Readers skip the temporaries a killed writer leaves
# ----------------------------------------------------------------------------------------------------------------


def _leftovers(folder: Path) -> None:
    """What a writer killed mid-write leaves: a temporary file, and a temporary folder with a file in it."""
    (folder / ".tmp-config.json-0a1b2c3d").write_text("{half")
    (folder / ".tmp-sub-0a1b2c3d").mkdir()
    (folder / ".tmp-sub-0a1b2c3d" / "weights.bin").write_bytes(b"half")


def test_checkpoint_listing_skips_temporary_folders_even_with_a_state_file(tmp_path):
    for name in ("checkpoint-2", ".tmp-checkpoint-4", ".tmp-checkpoint-6-0a1b2c3d"):
        (tmp_path / name).mkdir()
        (tmp_path / name / engine.STATE_FILE).write_text("{}")
    assert engine.list_checkpoints(tmp_path) == [(2, tmp_path / "checkpoint-2")]


def test_the_manifest_leaves_out_temporaries_at_any_depth(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "optimizer.bin").write_bytes(b"moments")
    _leftovers(tmp_path)
    _leftovers(tmp_path / "nested")
    engine.write_manifest(tmp_path)
    files = json.loads((tmp_path / engine.MANIFEST_FILE).read_text())["files"]
    assert sorted(files) == ["model.safetensors", "nested/optimizer.bin"]


def test_publishing_a_folder_uploads_no_temporaries(tmp_path):
    from training import publish

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "kept.txt").write_text("kept")
    _leftovers(tmp_path)
    _leftovers(tmp_path / "sub")
    assert [f.path_in_repo for f in publish.collect_files(tmp_path)] == ["config.json", "sub/kept.txt"]
