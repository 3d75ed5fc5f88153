# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Training speed of the shipped checkpoints' recipes: every AFT variant against its attention baseline, side by side.

    python -m benchmarks.side_by_side --preset wiki-local-4x256                        # text: AFT variants vs GPT-2
    python -m benchmarks.side_by_side --preset fashion-mnist-conv --variants conv full  # images: vs ViT

The models are built exactly as the trainer builds them for the preset (the same config, `--baseline` for the
attention model) and each takes full optimizer steps (the trainer's own loss, backward, AdamW) on the preset's real
batches. The models take turns, one step each per round, so that the machine's drift (this machine is shared)
falls on all of them alike; the median step of each is reported, as tokens (sub-pixels, images) per second and as a
ratio to the baseline. Writes JSON (benchmarks/results/side_by_side_<preset>.json by default).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import default_collate

from modeling_aft import AFTConfig
from training import engine, train_image, train_pixels, train_text
from training.baselines import BASELINES, with_baseline

TRAINERS = {"text": train_text, "pixels": train_pixels, "image": train_image}


def build_models(preset: str, variants: list[str]):
    """(task, {name: (model, optimizer)}) for the preset's AFT of each variant and its baseline."""
    task_name = engine.preset_table.PRESETS[preset]["task"]
    trainer = TRAINERS[task_name]
    args = engine.parse_args(trainer.parser(), task_name, ["--preset", preset])
    task = trainer.make_task(args)
    tasks = {}
    for variant in variants:
        config = AFTConfig.from_dict({**task.config.to_dict(), "aft_variant": variant})
        tasks[f"aft-{variant}"] = (config, task.model_class)
    baseline = with_baseline(task, BASELINES[task_name][0])
    tasks[BASELINES[task_name][0]] = (baseline.config, baseline.model_class)
    models = {}
    for name, (config, model_class) in tasks.items():
        torch.manual_seed(args.seed)
        model = model_class(config).train()
        optimizer = torch.optim.AdamW(engine.param_groups(model, args.weight_decay), lr=args.learning_rate,
                                      betas=(0.9, args.adam_beta2))
        models[name] = (model, optimizer)
    return args, task, models


def batch_of_step(task, args, step: int):
    sampler = engine.StepBatchSampler(len(task.train_set), args.batch_size, 1, 1, 0, args.seed, step, step + 1)
    batch = default_collate([task.train_set[i] for i in next(iter(sampler))])
    if task.prepare is not None:
        batch = task.prepare(batch, engine.step_generator(args.seed, step, 0, 0))
    return batch


def measure(preset: str, variants: list[str], rounds: int, warmup: int) -> dict:
    args, task, models = build_models(preset, variants)
    units = args.batch_size * task.extra_state.get("units_per_item", 1)
    times: dict[str, list[float]] = {name: [] for name in models}
    for r in range(warmup + rounds):
        batch = batch_of_step(task, args, r)
        for name, (model, optimizer) in models.items():
            start = time.perf_counter()
            loss = task.loss(model, batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
        print(f"round {r + 1}/{warmup + rounds}", file=sys.stderr, flush=True)
    baseline = BASELINES[task.name][0]
    rows = []
    for name, (model, _) in models.items():
        median = statistics.median(times[name])
        rows.append(dict(model=name, parameters=sum(p.numel() for p in model.parameters()), seconds_per_step=median,
                         units_per_second=units / median, steps=len(times[name])))
    base = next(row for row in rows if row["model"] == baseline)
    for row in rows:
        row["speed_x_baseline"] = row["units_per_second"] / base["units_per_second"]
    return dict(preset=preset, task=task.name, unit=task.unit, units_per_step=units, baseline=baseline,
                rounds=rounds, warmup=warmup, threads=torch.get_num_threads(), torch=torch.__version__,
                machine=platform.processor() or platform.machine(), rows=rows,
                command="python -m benchmarks.side_by_side " + " ".join(sys.argv[1:]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", required=True, help="a training preset (wiki-local-4x256, fashion-mnist-conv, ...)")
    p.add_argument("--variants", nargs="+", default=None, help="AFT variants (default: every variant that fits)")
    p.add_argument("--rounds", type=int, default=10, help="measured rounds (one step of every model each)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/side_by_side_<preset>.json)")
    a = p.parse_args(argv)
    if a.preset not in engine.preset_table.PRESETS:
        p.error(f"unknown preset {a.preset!r}; choose one of {', '.join(sorted(engine.preset_table.PRESETS))}.")
    task_name = engine.preset_table.PRESETS[a.preset]["task"]
    variants = a.variants or (["local", "simple", "conv", "full"] if task_name != "image" else ["conv", "full"])
    result = measure(a.preset, variants, a.rounds, a.warmup)
    out = Path(a.out or f"benchmarks/results/side_by_side_{a.preset}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    engine.write_json_atomic(out, result)
    print(f"{'model':<12} {'params':>10} {'s/step':>8} {result['unit'] + '/s':>14} {'x ' + result['baseline']:>8}")
    for row in result["rows"]:
        print(f"{row['model']:<12} {row['parameters']:>10,} {row['seconds_per_step']:>8.3f} "
              f"{row['units_per_second']:>14,.0f} {row['speed_x_baseline']:>8.2f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
