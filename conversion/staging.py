# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Every converter's output folder appears whole or not at all: built in a `.tmp-*` sibling, then renamed.

The logic lives in training.atomic, which every writer of the project shares (one temporary-name style that every
reader skips); this module keeps the converters' import path."""

from training.atomic import TEMP_PREFIX, is_temporary, staged_folder, write_atomically

__all__ = ["TEMP_PREFIX", "is_temporary", "staged_folder", "write_atomically"]
