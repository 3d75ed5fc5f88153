# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Every file and folder the project writes appears whole or not at all: written under a temporary name beside the
target, then renamed over it (a rename within one folder is atomic on POSIX).

One temporary-name style serves every writer: `.tmp-<name>-<random>` beside `<name>` (`TEMP_PREFIX`), or
`.tmp-<name>` where several processes or a later run must find it again (the trainers' checkpoints and final
folder). Every reader that lists a folder (checkpoints, manifests, ship, publish, the converters) skips names that
`is_temporary` says are one, so a run killed mid-write leaves nothing that is ever loaded or uploaded.

- `atomic_file(path, mode)`: a context manager giving an open file; renamed into place when the block ends, removed
  when it raises. `atomic_write_bytes/text/json(path, data)` on top of it.
- `staged_folder(output, overwrite=...)`: a folder built under a temporary name, swapped in whole; an existing
  output (folder, file or symlink) is restored on failure. `write_atomically(output, write, overwrite=...)` runs
  `write(tmp)` inside one.

Modes are what a plain write gives: 0666 & ~umask for a new file (an existing file keeps its mode, as open(path, "w")
would), 0777 & ~umask for a folder. tempfile.mkstemp and mkdtemp make 0600 and 0700, which the renamed target would
keep, unreadable to anyone else; nothing here uses them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TEMP_PREFIX = ".tmp-"
# How many fresh random names to try before giving up: each is 8 hex digits, so a clash is only ever a leftover.
_ATTEMPTS = 100


def is_temporary(name: str | os.PathLike) -> bool:
    """Whether a file or folder name (or the last part of a path) is a temporary of this module's writers."""
    return os.path.basename(os.fspath(name)).startswith(TEMP_PREFIX)


def temporary_path(path: str | os.PathLike, random: bool = True) -> Path:
    """`.tmp-<name>-<random>` beside `path`; `random=False` gives the fixed `.tmp-<name>` that a writer in another
    process (or a later run recovering a crash) must be able to name."""
    path = Path(path)
    suffix = f"-{secrets.token_hex(4)}" if random else ""
    return path.with_name(f"{TEMP_PREFIX}{path.name}{suffix}")


# ----------------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------------


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", encoding: str | None = None,
                newline: str | None = None) -> Iterator[IO]:
    """Yield a file open for writing (mode "w" or "wb") under a temporary name beside `path`; when the block ends
    without error it is flushed, synced and renamed to `path`. On any error (a full disk, an interrupt) it is removed
    and an existing `path` is left as it was."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file mode {mode!r} must be 'w' or 'wb' (a temporary file is always written anew).")
    path = Path(path)
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    fd, tmp = _new_file(path)
    try:
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())  # the data is on disk before the rename makes it the file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_file(path, "wb") as file:
        file.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """The text as given: newline="" writes "\\n" as "\\n" on every platform."""
    with atomic_file(path, "w", encoding=encoding, newline="") as file:
        file.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, **dumps_kwargs) -> None:
    """json.dumps(obj, **dumps_kwargs) (indent=2 unless given) and a final newline."""
    dumps_kwargs.setdefault("indent", 2)
    atomic_write_text(path, json.dumps(obj, **dumps_kwargs) + "\n")


def _new_file(path: Path) -> tuple[int, Path]:
    """A new empty temporary file beside `path`, created with mode 0666 so that the umask alone decides its mode (as
    for open(path, "w")); an existing `path` lends it its mode instead, which open(path, "w") would keep."""
    try:
        keep = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        keep = None
    for _ in range(_ATTEMPTS):
        tmp = temporary_path(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        if keep is not None:
            try:
                os.fchmod(fd, keep)
            except BaseException:
                os.close(fd)
                tmp.unlink(missing_ok=True)
                raise
        return fd, tmp
    raise FileExistsError(f"could not make a fresh {TEMP_PREFIX}{path.name}-* file in {str(path.parent)!r}; remove its "
                          f"old {TEMP_PREFIX}* files.")


# ----------------------------------------------------------------------------------------------------------------
# Folders
# ----------------------------------------------------------------------------------------------------------------


@contextmanager
def staged_folder(output: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield an empty `.tmp-*` folder beside `output`; when the block ends without error, rename it to `output`
    (an existing `output`, whether a folder, a file or a symlink, is swapped out and removed afterwards; a symlink is
    removed, never what it points to). With overwrite=False an existing `output` is refused before anything is made.
    On any error nothing is left: no temporary folder, no parent folders this call created (only empty ones are
    removed), and a swapped-out `output` is restored. The folder and the files written into it get the modes a plain
    mkdir and open() give under the umask (0755 and 0644 under 022)."""
    output = Path(output).absolute()
    if not overwrite and os.path.lexists(output):  # lexists: a dangling symlink is in the way too
        raise FileExistsError(f"output folder {str(output)!r} already exists; pass overwrite=True (--overwrite).")
    _check_parents(output)
    created_parents = [p for p in reversed(output.parents) if not p.exists()]
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_folder(output)
    old = None
    try:
        yield tmp
        plain_modes(tmp)
        if os.path.lexists(output):
            old = tmp.with_name(f"{tmp.name}-old")  # a temporary name too: readers skip it if a crash leaves it
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
        remove(old)


def write_atomically(output: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Run `write(tmp)` in a staged folder (see `staged_folder`) that becomes `output`; refuses an existing
    `output` unless `overwrite`."""
    output = Path(output).absolute()
    with staged_folder(output, overwrite=overwrite) as tmp:
        write(tmp)
    return output


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


def _new_folder(output: Path) -> Path:
    """An empty folder `.tmp-<name>-<random>` beside `output`, made by a plain mkdir: its mode follows the umask."""
    for _ in range(_ATTEMPTS):
        path = temporary_path(output)
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as err:  # the error would name the temporary folder, which the caller never asked for
            raise OSError(err.errno, f"cannot make a folder in {str(output.parent)!r} ({err.strerror}); choose an "
                          "output folder you may write to") from err
        return path
    raise FileExistsError(f"could not make a fresh {TEMP_PREFIX}{output.name}-* folder in {str(output.parent)!r}; "
                          f"remove its old {TEMP_PREFIX}* folders.")


def umask() -> int:
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


def plain_modes(root: str | os.PathLike) -> None:
    """Give the folder and everything in it the modes a plain mkdir and open() give under the umask: writers may
    make private temporary files (transformers' save_pretrained writes model.safetensors 0600 through one), which the
    renamed output would keep. Executable files stay executable; symlinks are left alone."""
    mask = umask()
    os.chmod(root, 0o777 & ~mask)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode):
                os.chmod(path, 0o777 & ~mask)
            elif stat.S_ISREG(info.st_mode):
                os.chmod(path, (0o777 if info.st_mode & stat.S_IXUSR else 0o666) & ~mask)


def remove(path: str | os.PathLike) -> None:
    """Remove a folder tree, a file or a symlink (the link itself; shutil.rmtree refuses links and skips files)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
