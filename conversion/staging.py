# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Every converter's output folder appears whole or not at all: built in a `.tmp-*` sibling, then renamed."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_folder(output: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty `.tmp-*` folder beside `output`; when the block ends without error, rename it to `output`
    (an existing `output` is swapped out and removed afterwards). On any error nothing is left: no temporary folder,
    no parent folders this call created (only empty ones are removed), and a swapped-out `output` is restored."""
    output = Path(output).absolute()
    created_parents = [p for p in reversed(output.parents) if not p.exists()]
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{output.name}-", dir=output.parent))
    old = None
    try:
        yield tmp
        if output.exists():
            old = output.with_name(f"{tmp.name}-old")
            os.replace(output, old)
        os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not output.exists():
            os.replace(old, output)
        for parent in reversed(created_parents):  # deepest first
            try:
                parent.rmdir()
            except OSError:
                break
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_atomically(output: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Run `write(tmp)` in a staged folder (see `staged_folder`) that becomes `output`; refuses an existing
    `output` unless `overwrite`."""
    output = Path(output).absolute()
    if output.exists() and not overwrite:
        raise FileExistsError(f"output folder {str(output)!r} already exists; pass overwrite=True (--overwrite).")
    with staged_folder(output) as tmp:
        write(tmp)
    return output
