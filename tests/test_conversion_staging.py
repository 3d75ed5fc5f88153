# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The converters' output folder appears whole or not at all, with the mode a plain mkdir gives, and leaves no
`.tmp-*` name behind whatever it replaces (a folder, a file, a symlink) and however the write ends."""

import os
import stat

import pytest
import torch

from conversion import aft_pytorch_to_aft
from conversion.staging import staged_folder, write_atomically


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _write(tmp):
    (tmp / "weights.bin").write_bytes(b"new")


@pytest.mark.parametrize("mask, folder_mode, file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)],
                         ids=["umask-022", "umask-027"])
def test_the_output_has_the_mode_a_plain_mkdir_gives(tmp_path, umask, mask, folder_mode, file_mode):
    umask(mask)
    write_atomically(tmp_path / "out", _write)
    (tmp_path / "plain").mkdir()
    assert _mode(tmp_path / "plain") == folder_mode  # what the umask gives to any folder
    assert _mode(tmp_path / "out") == folder_mode  # tempfile.mkdtemp made it 0700
    assert _mode(tmp_path / "out" / "weights.bin") == file_mode


def test_a_converters_output_is_readable_by_others_under_umask_022(tmp_path, umask):
    umask(0o022)
    torch.manual_seed(0)
    state = {f"{name}.{part}": torch.randn(8, 8) if part == "weight" else torch.randn(8)
             for name in ("to_q", "to_k", "to_v", "project") for part in ("weight", "bias")}
    state["wbias"] = torch.randn(16, 16)
    torch.save(state, tmp_path / "layer.pt")
    aft_pytorch_to_aft.convert_file(tmp_path / "layer.pt", tmp_path / "out", "full", 8, 8)
    assert _mode(tmp_path / "out") == 0o755
    assert {_mode(p) for p in (tmp_path / "out").iterdir()} == {0o644}


@pytest.mark.parametrize("kind", ["folder", "file", "symlink to a folder", "dangling symlink"])
def test_overwrite_replaces_whatever_is_there_and_leaves_no_tmp_name(tmp_path, kind):
    out, target = tmp_path / "out", tmp_path / "target"
    if kind == "folder":
        out.mkdir()
        (out / "old.bin").write_bytes(b"old")
    elif kind == "file":
        out.write_bytes(b"old")
    else:
        target.mkdir()
        (target / "kept.bin").write_bytes(b"kept")
        out.symlink_to(target if kind == "symlink to a folder" else tmp_path / "nowhere")
    if kind == "dangling symlink":
        with pytest.raises(FileExistsError):  # a dangling link is something in the way too
            write_atomically(out, _write)
    write_atomically(out, _write, overwrite=True)
    assert out.is_dir() and not out.is_symlink() and _names(out) == ["weights.bin"]
    assert [n for n in _names(tmp_path) if n.startswith(".tmp-")] == []  # the file case left `.tmp-out-*-old`
    if kind == "symlink to a folder":
        assert _names(target) == ["kept.bin"]  # the link is replaced, never what it points to


@pytest.mark.parametrize("kind", ["nothing", "folder", "file"])
def test_a_failure_inside_the_write_leaves_nothing_and_restores_the_old_output(tmp_path, kind):
    out = tmp_path / "deeper" / "out"
    if kind == "folder":
        out.mkdir(parents=True)
        (out / "old.bin").write_bytes(b"old")
    elif kind == "file":
        out.parent.mkdir()
        out.write_bytes(b"old")

    def broken(tmp):
        (tmp / "weights.bin").write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(out, broken, overwrite=True)
    if kind == "nothing":
        assert _names(tmp_path) == []  # not even the parent folder it made
    else:
        assert _names(out.parent) == ["out"]
        assert (out / "old.bin").read_bytes() == b"old" if kind == "folder" else out.read_bytes() == b"old"


def test_a_failure_while_swapping_in_restores_the_old_output(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.write_bytes(b"old")
    real_replace = os.replace

    def replace(src, dst):
        if os.path.basename(src).startswith(".tmp-out-") and not str(src).endswith("-old"):  # the new one, in
            raise OSError("rename failed")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="rename failed"):
        with staged_folder(out) as tmp:
            _write(tmp)
    assert _names(tmp_path) == ["out"] and out.read_bytes() == b"old"


def test_a_file_where_a_parent_folder_should_be_is_named(tmp_path):
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(NotADirectoryError, match="'.*taken' is a file, not a folder"):
        write_atomically(tmp_path / "taken" / "sub" / "out", _write)
    assert _names(tmp_path) == ["taken"]
