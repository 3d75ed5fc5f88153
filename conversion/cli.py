# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""What the conversion commands share on the command line: every failure is one line `error: ...` on stderr and exit
status 2, never a traceback, whether argparse rejects an argument or the work refuses its input."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

# The failures a command explains: bad values and files (ValueError, OSError and its FileNotFoundError,
# FileExistsError, PermissionError), tensors too large for memory. Anything else is a bug and keeps its traceback.
EXPLAINED = (ValueError, OSError, MemoryError)


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line like every other failure of the command."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see {self.prog} --help.\n")


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: `kind(text)`, refused unless > 0."""
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def describe(err: BaseException) -> str:
    """One line naming what failed. OSError's own text ("[Errno 13] Permission denied: 'x'") lacks the fix."""
    if isinstance(err, MemoryError):
        return "out of memory; the model or the requested size is too large for this machine."
    if isinstance(err, OSError) and err.errno is not None and err.strerror:  # from the system, not our own text
        if err.filename is None:
            return err.strerror
        return f"{err.strerror}: {err.filename!r}; check that the path exists and that you may read and write there."
    return " ".join(str(err).split()) or type(err).__name__


def run(work: Callable[[], int]) -> int:
    """work()'s exit status; an explained failure prints `error: ...` (one line) and gives 2."""
    try:
        return work()
    except EXPLAINED as err:
        print(f"error: {describe(err)}", file=sys.stderr)
        return 2
