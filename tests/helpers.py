# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The shared test helpers live in tests/conftest.py (with the shared fixtures); test files import them from here."""

from tests.conftest import (
    BLOCK_PACKAGE,
    HUB_VARIABLES,
    REPO,
    TINY_TEXT_OVERRIDES,
    assert_nothing_written,
    error_of,
    hub_env,
    metrics_records,
    no_output_left,
    offline_env,
    one_line_error,
    randomize,
    record_fast_path,
    reset_accelerate_state,
    run_command,
    run_module,
    train_losses,
)

__all__ = [
    "BLOCK_PACKAGE", "HUB_VARIABLES", "REPO", "TINY_TEXT_OVERRIDES", "assert_nothing_written", "error_of",
    "hub_env", "metrics_records", "no_output_left", "offline_env", "one_line_error", "randomize",
    "record_fast_path", "reset_accelerate_state", "run_command", "run_module", "train_losses",
]
