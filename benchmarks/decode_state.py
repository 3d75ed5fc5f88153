# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Does a decoding step cost the same after a short and after a long context? Measured side by side.

    python -m benchmarks.decode_state [--short 1024] [--long 65536] [--rounds 7] [--steps 32]
                                      [--variants local simple conv] [--baseline]
                                      [--out benchmarks/results/decode_state]

`benchmarks.generation` measures each context in its own process, one after the other; on a shared machine the
load drifts between them by tens of percent, which swamps a ratio that should be 1. Here one process holds two
decoding states of the same model, one after the short context and one after the long one, and times bare decode
steps (`model(token, cache=state)`, no generate() bookkeeping) on them in alternation: `--rounds` rounds of
`--steps` steps on each. The per-step median of each context and their ratio are reported per variant; the goal
for simple, local and conv is a ratio <= 1.2. `--baseline` adds GPT-2 (same width and depth, SDPA, KV cache),
whose step cost grows with its cache. Writes <out>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from benchmarks.generation import build_model


@torch.no_grad()
def prefill(model, length: int):
    context = torch.randint(1, 256, (1, length), generator=torch.Generator().manual_seed(length))
    out = model(context, use_cache=True, logits_to_keep=1)
    return out.cache if hasattr(out, "cache") else out.past_key_values


@torch.no_grad()
def time_steps(model, cache, steps: int) -> list[float]:
    token = torch.tensor([[65]])
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model(token, cache=cache, use_cache=True)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def measure(name: str, short: int, long: int, rounds: int, steps: int) -> dict:
    model = build_model(name, long + rounds * steps + 16)  # cpu-text-* size; GPT-2 of the same shape
    caches = {short: prefill(model, short), long: prefill(model, long)}
    time_steps(model, caches[short], 4)  # warm-up
    per_step = {short: [], long: []}
    for _ in range(rounds):
        for length in (short, long):
            per_step[length].extend(time_steps(model, caches[length], steps))
    medians = {length: statistics.median(values) for length, values in per_step.items()}
    return dict(
        model=name,
        short=short,
        long=long,
        median_ms_short=medians[short],
        median_ms_long=medians[long],
        ratio=medians[long] / medians[short],
        steps_each=len(per_step[short]),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", type=int, default=1024)
    parser.add_argument("--long", type=int, default=65536)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--variants", nargs="+", default=["local", "simple", "conv"])
    parser.add_argument("--baseline", action="store_true", help="also GPT-2 with its KV cache")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/decode_state"))
    args = parser.parse_args(argv)
    torch.set_num_threads(len(__import__("os").sched_getaffinity(0)))
    names = list(args.variants) + (["gpt2"] if args.baseline else [])
    rows = []
    for name in names:
        row = measure(name, args.short, args.long, args.rounds, args.steps)
        rows.append(row)
        label = name if name == "gpt2" else f"aft-{name}"
        verdict = "" if name == "gpt2" else ("  (meets <= 1.2)" if row["ratio"] <= 1.2 else "  (MISSES <= 1.2)")
        print(
            f"{label:11} step after {args.short:>6}: {row['median_ms_short']:7.2f} ms   after {args.long:>6}: "
            f"{row['median_ms_long']:7.2f} ms   ratio {row['ratio']:.3f}{verdict}",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    facts = dict(torch=torch.__version__, threads=torch.get_num_threads(), date=time.strftime("%Y-%m-%dT%H:%M:%S"))
    args.out.with_suffix(".json").write_text(
        json.dumps(dict(machine=facts, settings=vars(args) | {"out": str(args.out)}, results=rows), indent=2)
    )
    print(f"wrote {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
