# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Make a shipped checkpoint folder (pretrained/NAME) from an AFT run, its attention baseline and the speed benchmark.

    python -m training.ship runs/wiki-local-4x256 --baseline-run runs/wiki-gpt2-4x256 \\
        --speed benchmarks/results/side_by_side_wiki-local-4x256.json --name aft-local-wikipedia

Both runs must come from the same preset, steps, batch size and seed (so the same batches in the same order) and
have ended with a final evaluation. The folder is the AFT run's final folder (weights, config and modeling code,
tokenizer or image processor, samples, loss curves) plus `comparison.png` (both runs' curves), a results.json that
also holds the baseline's metrics and the side-by-side speeds, and a model card re-rendered with the comparison
table. Nothing is typed by hand: every number comes from the runs' results.json and the benchmark's JSON. The folder
is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from huggingface_hub import ModelCard

from modeling_aft import AFTConfig

from .atomic import atomic_write_json, staged_folder
from .model_card import format_duration, write_model_card
from .plots import plot_runs

# The headline metric of each task, read from results.json, with the card's task name and its wording.
TASKS = {
    "bpc": dict(card_task="causal-lm", label="Test bits per character", unit="tokens", lower_is_better=True),
    "bpd": dict(card_task="pixel-lm", label="Test bits per dimension", unit="sub-pixels", lower_is_better=True),
    "top1": dict(card_task="image-classification", label="Test top-1", unit="images", lower_is_better=False),
}
SAME_BATCHES = ("preset", "steps", "batch_size")


class ShipError(ValueError):
    """A run or benchmark that cannot be shipped; the message names the file and the fix."""


def read_results(run: Path) -> dict:
    path = run / "model" / "results.json"
    if not path.is_file():
        raise ShipError(f"{path} does not exist; pass a run folder (--output-dir of a trainer) whose run finished.")
    results = json.loads(path.read_text())
    if not results.get("final_evaluation"):
        raise ShipError(f"{path}: the run ended without its final test evaluation (--skip-final-eval); rerun it.")
    return results


def headline(metrics: dict) -> str:
    found = [key for key in TASKS if key in metrics]
    if len(found) != 1:
        raise ShipError(f"results hold none or several of the metrics {list(TASKS)}: {sorted(metrics)}.")
    return found[0]


def check_same_batches(aft: dict, baseline: dict, aft_run: Path, baseline_run: Path) -> None:
    differ = [k for k in SAME_BATCHES if aft["training"].get(k) != baseline["training"].get(k)]
    if differ:
        details = "; ".join(f"{k}: {aft['training'].get(k)!r} vs {baseline['training'].get(k)!r}" for k in differ)
        raise ShipError(f"{aft_run} and {baseline_run} were not trained on the same batches ({details}); train the "
                        "baseline with the AFT run's preset and --baseline.")
    if aft["model"]["model_type"] != "aft" or baseline["model"]["model_type"] == "aft":
        raise ShipError(f"{aft_run} must be the AFT run and {baseline_run} its --baseline run.")


def read_speed(speed_path: Path | None, preset: str) -> dict | None:
    """benchmarks.side_by_side's JSON for the preset, its rows keyed by model; None without a file."""
    if speed_path is None:
        return None
    data = json.loads(Path(speed_path).read_text())
    if data.get("preset") != preset:
        raise ShipError(f"{speed_path} measured preset {data.get('preset')!r}, not {preset!r}; run "
                        f"`python -m benchmarks.side_by_side --preset {preset}`.")
    return dict(data, rows={row["model"]: row for row in data["rows"]})


def card_inputs(folder: Path) -> tuple[list[dict], dict]:
    """The measured results and dataset of the run's card, as write_model_card takes them."""
    card = ModelCard.load(folder / "README.md")
    results, dataset = [], {}
    for entry in card.data.eval_results:
        results.append({"type": entry.metric_type, "name": entry.metric_name, "value": entry.metric_value,
                        "split": entry.dataset_split, "args": entry.metric_args})
        dataset = {"name": entry.dataset_name, "type": entry.dataset_type, "split": entry.dataset_split}
    return results, dataset


def comparison(aft: dict, baseline: dict, metric: str, speed: dict | None, variant: str, baseline_name: str,
               plot: str) -> dict:
    spec = TASKS[metric]
    unit = spec["unit"]
    speeds = speed["rows"] if speed else {}

    def row(name: str, results: dict | None, key: str) -> dict:
        measured = speeds.get(key)
        return dict(
            model=name,
            parameters=f"{(results['model']['parameters'] if results else measured['parameters']) / 1e6:.2f}M",
            metric=f"{results['metrics'][metric]:.4f}" if results else "not trained",
            speed=f"{measured['units_per_second']:,.0f}" if measured else "",
            ratio=f"{measured['speed_x_baseline']:.2f}x" if measured else "",
            seconds=format_duration(results["training"]["seconds"]) if results else "",
        )

    rows = [row(f"AFT-{variant} (this model)", aft, f"aft-{variant}"),
            row(f"{baseline['model']['class']} (attention)", baseline, baseline_name)]
    rows += [row(f"{key.replace('aft-', 'AFT-')} (speed only)", None, key) for key in speeds
             if key.startswith("aft-") and key != f"aft-{variant}"]
    difference = aft["metrics"][metric] - baseline["metrics"][metric]
    training = aft["training"]
    return dict(
        intro=(f"Trained by the same loop on the same batches, in the same order, for the same {training['steps']:,} "
               f"steps of {training['batch_size']} (`{training['preset']}`, then `--baseline {baseline_name}`): "
               f"transformers' `{baseline['model']['class']}` of the same width, depth and MLP size. "
               f"{spec['label']}: AFT {aft['metrics'][metric]:.4f}, attention {baseline['metrics'][metric]:.4f} "
               f"(AFT {difference:+.4f})."),
        metric_label=spec["label"],
        speed_label=f"Training {unit}/s",
        rows=rows,
        note=(f"Training speed: the median optimizer step (forward, backward, AdamW) on the preset's batches, every "
              f"model in turn in one process (`{speed['command']}`, {speed['threads']} threads). " if speed else "") +
             "Wall time: the whole run with its evaluations; the two runs shared this 2-core machine with other "
             "runs, so the speed column, measured side by side, is the one to compare.",
        plot=plot,
    ), difference


def ship(aft_run: Path, baseline_run: Path, name: str, speed: Path | None, out_root: Path) -> Path:
    aft, baseline = read_results(aft_run), read_results(baseline_run)
    check_same_batches(aft, baseline, aft_run, baseline_run)
    metric = headline(aft["metrics"])
    source = aft_run / "model"
    config = AFTConfig.from_pretrained(source)
    baseline_name = baseline["model"]["model_type"]
    speed_table = read_speed(speed, aft["training"]["preset"])
    results, dataset = card_inputs(source)
    with staged_folder(out_root / name) as tmp:
        for path in sorted(source.iterdir()):
            if path.is_file() and not path.name.startswith("."):  # hidden: temporaries (.tmp-*), caches
                shutil.copy2(path, tmp / path.name)
        plot_runs({f"aft-{config.aft_variant}": aft_run / "metrics.jsonl",
                   baseline_name: baseline_run / "metrics.jsonl"},
                  tmp / "comparison.png", f"{aft['training']['preset']}: AFT-{config.aft_variant} and {baseline_name}, "
                                          "same batches")
        table, difference = comparison(aft, baseline, metric, speed_table, config.aft_variant, baseline_name,
                                       "comparison.png")
        shipped = dict(aft, comparison=dict(
            metric=metric, difference=difference, baseline=dict(model=baseline["model"], metrics=baseline["metrics"],
                                                                 training=baseline["training"]),
            speed=speed_table))
        atomic_write_json(tmp / "results.json", shipped, sort_keys=True, default=str)
        sample = (tmp / "sample.txt").read_text() if (tmp / "sample.txt").is_file() else None
        write_model_card(tmp, task=TASKS[metric]["card_task"], config=config, results=results, dataset=dataset,
                         training=aft["training"], sample=sample,
                         sample_image="samples.png" if (tmp / "samples.png").is_file() else None,
                         model_name=name, comparison=table)
    return out_root / name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("aft_run", type=Path, help="the AFT run's --output-dir")
    p.add_argument("--baseline-run", type=Path, required=True, help="the --baseline run's --output-dir")
    p.add_argument("--name", required=True, help="the folder's name under --out-root (the Hub repo's name)")
    p.add_argument("--speed", type=Path, default=None, help="benchmarks.side_by_side's JSON for the same preset")
    p.add_argument("--out-root", type=Path, default=Path("pretrained"))
    a = p.parse_args(argv)
    try:
        folder = ship(a.aft_run, a.baseline_run, a.name, a.speed, a.out_root)
    except (ShipError, FileNotFoundError, json.JSONDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    print(f"wrote {folder} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
