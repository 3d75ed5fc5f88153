# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Loaders for the project's lm-evaluation-harness tasks (the YAML files beside this one name them with
`!function aft_tasks.NAME`). The documents are read from data/*.jsonl next to this file, written by
`python -m training.eval_harness make-data` from the embedded Wikipedia test split, so the tasks run offline from any
working directory (a relative `data_files` path would be resolved against the caller's directory instead)."""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def _read_jsonl(name: str, max_docs: int | None = None) -> list[dict]:
    path = DATA / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; write it with `python -m training.eval_harness make-data`.")
    with path.open(encoding="utf-8") as file:
        rows = [json.loads(line) for line in file if line.strip()]
    return rows[:max_docs] if max_docs else rows


def _as_dataset(rows: list[dict]) -> dict:
    import datasets

    return {"test": datasets.Dataset.from_list(rows)}


def wikipedia_test_articles(max_docs: int | None = None, **_metadata) -> dict:
    """The test split's articles ("title\\n\\nlead text"), one document each; `--metadata '{"max_docs": N}'` takes
    the first N."""
    return _as_dataset(_read_jsonl("wikipedia_test.jsonl", max_docs))


def wikipedia_continuations(max_docs: int | None = None, **_metadata) -> dict:
    """Multiple choice: the true continuation of a test article's opening among three from other test articles."""
    return _as_dataset(_read_jsonl("wikipedia_continuations.jsonl", max_docs))


def article_text(doc: dict) -> str:
    # A function, not the template "{{text}}": Jinja would drop a trailing newline and the byte count would differ.
    return doc["text"]
