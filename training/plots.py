# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The loss-curve plot of a training run, drawn from its metrics file (JSON lines) with matplotlib's Agg backend.

Each line of the metrics file is one logging event, e.g. `{"step": 10, "train/loss": 2.3, "train/lr": 0.001}` or
`{"step": 20, "eval/loss": 2.1, "eval/bpc": 3.0}`. The plot has a panel of every `*loss` series (training thin,
evaluation with markers), a panel of the other `eval/*` metrics and a small panel of the learning rate, each only
when the file has such a series. A line that is not valid JSON (a run killed mid-write) is skipped.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from pathlib import Path

from .atomic import atomic_file

Series = dict[str, list[tuple[float, float]]]


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def read_series(metrics_path: Path) -> Series:
    """Every numeric metric of the file as (step, value) points sorted by step; unreadable lines are skipped."""
    series: Series = {}
    with open(metrics_path, encoding="utf-8", errors="replace") as file:
        for line in file:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a truncated last line, or a stray non-JSON line
            if not isinstance(event, dict) or not is_number(event.get("step")):
                continue
            for key, value in event.items():
                if key != "step" and is_number(value):
                    series.setdefault(key, []).append((float(event["step"]), float(value)))
    return {key: sorted(points) for key, points in series.items()}


def is_learning_rate(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return name in ("lr", "learning_rate")


def split_panels(series: Series) -> list[tuple[str, list[str]]]:
    """(y label, keys) of each panel with data: losses, other evaluation metrics, learning rate."""
    losses = sorted((key for key in series if key.endswith("loss")), key=lambda key: (key.startswith("eval/"), key))
    evals = sorted(key for key in series if key.startswith("eval/") and not key.endswith("loss"))
    rates = sorted(key for key in series if is_learning_rate(key) and key not in evals)
    panels = [("loss", losses), ("evaluation", evals), ("learning rate", rates)]
    return [(label, keys) for label, keys in panels if keys]


def draw(series: Series, panels: list[tuple[str, list[str]]], title: str):
    """A figure bound to the Agg canvas directly: no pyplot, so no global backend switch and no screen."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ratios = [1 if label == "learning rate" else 3 for label, _ in panels]
    figure = Figure(figsize=(8, 1.2 + 1.3 * sum(ratios)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False, height_ratios=ratios)[:, 0]
    for ax, (label, keys) in zip(axes, panels):
        for key in keys:
            steps, values = zip(*series[key])
            if key.startswith("eval/"):
                ax.plot(steps, values, marker="o", markersize=3, linewidth=1.2, label=key)
            else:
                ax.plot(steps, values, linewidth=0.8, alpha=0.9, label=key)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("step")
    if title:
        figure.suptitle(title)
    return figure


def write_png_atomically(figure, png_path: Path) -> None:
    """Save beside the target, then rename: a viewer never reads half a PNG, a crash leaves no temporary file."""
    png_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(png_path, "wb") as file:
        figure.savefig(file, format="png")


def plot_loss_curves(metrics_path: str | os.PathLike, png_path: str | os.PathLike, title: str = "") -> Path:
    """Draw the run's loss curves (and evaluation metrics, learning rate) from `metrics_path` into `png_path`.

    Raises FileNotFoundError for a missing metrics file and ValueError when it holds no numeric series.
    Returns the path of the PNG.
    """
    metrics_path, png_path = Path(metrics_path), Path(png_path)
    if not metrics_path.is_file():
        raise FileNotFoundError(f"metrics file {metrics_path} does not exist; pass the run's metrics .jsonl file.")
    series = read_series(metrics_path)
    panels = split_panels(series)
    if not panels:
        raise ValueError(
            f"{metrics_path} has no numeric loss, eval/* or learning-rate series to plot (found: "
            f"{sorted(series) or 'nothing'}); log lines such as {{\"step\": 10, \"train/loss\": 2.3}}."
        )
    write_png_atomically(draw(series, panels, title), png_path)
    return png_path


def plot_runs(runs: dict[str, str | os.PathLike], png_path: str | os.PathLike, title: str = "") -> Path:
    """Several runs' curves in one figure (e.g. an AFT and its baseline trained on the same batches): each series is
    labelled `train/<run>/loss`, `eval/<run>/bpc`, ...; the learning rate is drawn once (the runs share the
    schedule)."""
    merged: Series = {}
    for index, (label, metrics_path) in enumerate(runs.items()):
        if not Path(metrics_path).is_file():
            raise FileNotFoundError(f"metrics file {metrics_path} of run {label!r} does not exist.")
        for key, points in read_series(Path(metrics_path)).items():
            prefix, _, name = key.partition("/")
            if is_learning_rate(key):
                if index == 0:
                    merged[key] = points
            elif prefix in ("train", "eval") and name:
                merged[f"{prefix}/{label}/{name}"] = points
    panels = split_panels(merged)
    if not panels:
        raise ValueError(f"the runs {sorted(runs)} hold no loss or evaluation series to plot.")
    write_png_atomically(draw(merged, panels, title), Path(png_path))
    return Path(png_path)


__all__ = ["plot_loss_curves", "plot_runs", "read_series"]
