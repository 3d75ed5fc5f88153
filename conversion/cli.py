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


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """The text-generation options of training.generate and training.onnx_runtime (the same flags, the same
    defaults)."""
    parser.add_argument("--prompt", default="The ", help="text to continue (default: %(default)r)")
    parser.add_argument("--max-new-tokens", type=positive(int), default=200)
    parser.add_argument("--temperature", type=positive(float), default=0.8)
    parser.add_argument("--top-k", type=int, default=50, help="0 disables top-k filtering")
    parser.add_argument("--top-p", type=positive(float), default=0.95)
    parser.add_argument("--repetition-penalty", type=positive(float), default=1.0)
    parser.add_argument("--greedy", action="store_true", help="take the most likely byte instead of sampling")
    parser.add_argument("--seed", type=int, default=0)


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
