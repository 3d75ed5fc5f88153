# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Every converter's output folder appears whole or not at all: built in a `.tmp-*` sibling, then renamed."""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_folder(output: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty `.tmp-*` folder beside `output`; when the block ends without error, rename it to `output`
    (an existing `output`, whether a folder, a file or a symlink, is swapped out and removed afterwards; a symlink is
    removed, never what it points to). On any error nothing is left: no temporary folder, no parent folders this call
    created (only empty ones are removed), and a swapped-out `output` is restored. The folder and the files written
    into it get the modes a plain mkdir and open() give under the umask (0755 and 0644 under 022)."""
    output = Path(output).absolute()
    _check_parents(output)
    created_parents = [p for p in reversed(output.parents) if not p.exists()]
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_folder(output.parent, f".tmp-{output.name}-")
    old = None
    try:
        yield tmp
        _plain_modes(tmp)
        if os.path.lexists(output):  # lexists: a dangling symlink is in the way too
            old = output.with_name(f"{tmp.name}-old")
            os.replace(output, old)
        os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not os.path.lexists(output):
            os.replace(old, output)
        for parent in reversed(created_parents):  # deepest first
            try:
                parent.rmdir()
            except OSError:
                break
        raise
    if old is not None:
        _remove(old)


def _check_parents(output: Path) -> None:
    """A file where a parent folder of `output` should be: mkdir would say only "File exists"."""
    for parent in output.parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise NotADirectoryError(
                    f"{str(parent)!r} is a file, not a folder, so the output {str(output)!r} cannot be made inside "
                    "it; choose another output path."
                )
            return


def _new_folder(parent: Path, prefix: str) -> Path:
    """An empty folder with a fresh random name, made by a plain mkdir: its mode follows the umask. (tempfile.mkdtemp
    makes 0700, which the renamed output would keep, unreadable to anyone else.)"""
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as err:  # the error would name the temporary folder, which the caller never asked for
            raise OSError(err.errno, f"cannot make a folder in {str(parent)!r} ({err.strerror}); choose an output "
                          "folder you may write to") from err
        return path
    raise FileExistsError(f"could not make a fresh {prefix}* folder in {str(parent)!r}; remove its old .tmp-* folders.")


def _umask() -> int:
    """The process umask, read without changing it where Linux shows it (os.umask can only set it, and setting it
    for a moment would race with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _plain_modes(root: Path) -> None:
    """Give the folder and everything in it the modes a plain mkdir and open() give under the umask: writers may
    make private temporary files (transformers' save_pretrained writes model.safetensors 0600 through one), which the
    renamed output would keep. Executable files stay executable; symlinks are left alone."""
    mask = _umask()
    os.chmod(root, 0o777 & ~mask)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode):
                os.chmod(path, 0o777 & ~mask)
            elif stat.S_ISREG(info.st_mode):
                os.chmod(path, (0o777 if info.st_mode & stat.S_IXUSR else 0o666) & ~mask)


def _remove(path: Path) -> None:
    """Remove a folder tree, a file or a symlink (the link itself; shutil.rmtree refuses links and skips files)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_atomically(output: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Run `write(tmp)` in a staged folder (see `staged_folder`) that becomes `output`; refuses an existing
    `output` unless `overwrite`."""
    output = Path(output).absolute()
    if os.path.lexists(output) and not overwrite:
        raise FileExistsError(f"output folder {str(output)!r} already exists; pass overwrite=True (--overwrite).")
    with staged_folder(output) as tmp:
        write(tmp)
    return output
