# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Bring the modeling code inside saved folders up to the package's: `trust_remote_code=True` runs the copies that
save_pretrained put next to the weights, so a shipped folder must hold the package's current files.

    python -m training.refresh_code [FOLDER ...]     (default: every folder in pretrained/)

Each `.py` file a folder already has is replaced by the package's version, and every sibling module the code imports
relatively (`from .ops_common import ...`) is added; weights, configs and cards are left alone. Files are written
atomically; the command prints what changed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import modeling_aft
from training.atomic import atomic_write_bytes

PACKAGE = Path(modeling_aft.__file__).resolve().parent
PRETRAINED = Path(__file__).resolve().parent.parent / "pretrained"
_RELATIVE_IMPORT = re.compile(r"^\s*from \.(\w+) import", re.MULTILINE)


def code_files(folder: Path) -> list[str]:
    """The module files the folder's code needs: those it has, and all they import relatively, transitively."""
    wanted, queue = set(), [p.name for p in folder.glob("*.py")]
    while queue:
        name = queue.pop()
        if name in wanted or not (PACKAGE / name).is_file():
            continue
        wanted.add(name)
        queue += [f"{module}.py" for module in _RELATIVE_IMPORT.findall((PACKAGE / name).read_text())]
    return sorted(wanted)


def stale_files(folder: Path) -> list[str]:
    """The files of code_files(folder) that are missing or differ from the package's."""
    return [name for name in code_files(folder)
            if not (folder / name).is_file() or (folder / name).read_bytes() != (PACKAGE / name).read_bytes()]


def refresh(folder: Path) -> list[str]:
    changed = stale_files(folder)
    for name in changed:
        atomic_write_bytes(folder / name, (PACKAGE / name).read_bytes())
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.refresh_code", description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="*", type=Path, help="saved model folders (default: every one in pretrained/)")
    args = p.parse_args(argv)
    folders = args.folders or sorted(f for f in PRETRAINED.iterdir() if (f / "config.json").is_file())
    for folder in folders:
        if not (folder / "config.json").is_file():
            print(f"error: {folder} holds no config.json; pass a folder written by save_pretrained.", file=sys.stderr)
            return 2
        changed = refresh(folder)
        print(f"{folder}: {', '.join(changed) if changed else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
