# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Model card templates (Jinja, filled through huggingface_hub.ModelCard from measured results)."""

from __future__ import annotations

from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent


def template_names() -> list[str]:
    """The templates shipped with the package, by file stem (`causal_lm`, `image_classification`, ...)."""
    return sorted(path.stem for path in TEMPLATE_DIR.glob("*.md"))


def template_path(name: str) -> Path:
    """The path of the template `name` (a file stem such as `causal_lm`, or a task such as `causal-lm`)."""
    stem = name.replace("-", "_")
    path = TEMPLATE_DIR / f"{stem}.md"
    if not path.is_file():
        raise FileNotFoundError(f"no model card template {name!r} in {TEMPLATE_DIR}; choose one of {template_names()}.")
    return path


__all__ = ["TEMPLATE_DIR", "template_names", "template_path"]
