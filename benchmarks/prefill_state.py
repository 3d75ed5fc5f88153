# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""A prompt read on top of an existing decoding state, and long prompts read in pieces: speed and memory.

    python -m benchmarks.prefill_state [--prompt 4096] [--held 4096] [--long 65536] [--rounds 5]
                                       [--variants local simple conv] [--threads 1]
                                       [--out benchmarks/results/prefill_state]

(a) Speed, side by side in one process per variant: a --prompt-token prompt fed to a state that already holds
    --held tokens (multi-turn, a continued cache: the operators' parallel prefill from the state) against the same
    prompt from an empty state, `model(prompt, cache=..., use_cache=True, logits_to_keep=1)`, in alternation for
    --rounds rounds (the held state is copied before each run, outside the timing); medians and their ratio (goal
    <= 1.3). For scale, the per-token cost of one-token steps on the held state (how such a prompt ran before) is
    measured too, over --stepwise tokens.
(b) Memory: peak RSS (VmHWM) of `generate(context, max_new_tokens=1)` after a --long-token context against a
    --prompt-token one, each in a fresh subprocess with the same model, built for --long positions (goal <= 1.2;
    the long prompt is read in pieces of AFTPreTrainedModel.prefill_chunk_size). The long context is also read
    unchunked (prefill_chunk_size=None), in its own subprocess for its peak RSS, and side by side with the chunked
    reading in one process for the time per prompt token (goal: chunked no slower).

The model is benchmarks.generation's (the cpu-text-<variant> preset at width 128, 4 layers, MLP 512, random weights,
seed 0). The machine may be shared: the load average is stored with every measurement. Writes <out>.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.generation import build_model


def tokens(length: int, seed: int) -> torch.Tensor:
    return torch.randint(1, 256, (1, length), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


@torch.no_grad()
def measure_speed(variant: str, prompt_len: int, held_len: int, long_len: int, rounds: int, stepwise: int) -> dict:
    """(a) and the side-by-side time per prompt token of the long context, chunked and not, in this process."""
    model = build_model(variant, held_len + long_len + 16)
    held_text, prompt = tokens(held_len, 1), tokens(prompt_len, 2)
    held = model(held_text, use_cache=True, logits_to_keep=1).cache
    model(prompt[:, :64], use_cache=True, logits_to_keep=1)  # warm-up
    on_state, from_empty = [], []
    for _ in range(rounds):
        state = copy.deepcopy(held)
        on_state.append(timed(lambda: model(prompt, cache=state, use_cache=True, logits_to_keep=1)))
        from_empty.append(timed(lambda: model(prompt, use_cache=True, logits_to_keep=1)))
    state = copy.deepcopy(held)
    steps = timed(lambda: [model(prompt[:, t : t + 1], cache=state, use_cache=True) for t in range(stepwise)])
    long_text = tokens(long_len, 3)
    chunked, unchunked = [], []
    for _ in range(max(1, rounds // 2)):
        model.model.prefill_chunk_size = type(model.model).prefill_chunk_size
        chunked.append(timed(lambda: model(long_text, use_cache=True, logits_to_keep=1)))
        model.model.prefill_chunk_size = None
        unchunked.append(timed(lambda: model(long_text, use_cache=True, logits_to_keep=1)))
    model.model.prefill_chunk_size = type(model.model).prefill_chunk_size
    on, empty = statistics.median(on_state), statistics.median(from_empty)
    return dict(
        variant=variant, prompt=prompt_len, held=held_len, on_state_s=on, from_empty_s=empty, ratio=on / empty,
        stepwise_ms_per_token=steps / stepwise * 1e3, parallel_ms_per_token=on / prompt_len * 1e3,
        long=long_len, chunk=type(model.model).prefill_chunk_size,
        chunked_us_per_token=statistics.median(chunked) / long_len * 1e6,
        unchunked_us_per_token=statistics.median(unchunked) / long_len * 1e6,
        chunked_over_unchunked=statistics.median(chunked) / statistics.median(unchunked),
        load=os.getloadavg()[0],
    )


def peak_rss_kib() -> int:
    """This process's peak RSS (VmHWM). Not ru_maxrss: a child started by fork + exec reports at least the RSS its
    parent had when it forked, which would floor every measurement at the parent's size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux


@torch.no_grad()
def measure_memory(variant: str, context: int, chunked: bool, positions: int) -> dict:
    """(b), in a fresh process: peak RSS of generate() after `context` tokens, the model built for `positions`
    positions whatever the context (full and local's position tables grow with them: the same model on both sides)."""
    model = build_model(variant, positions)
    if not chunked:
        model.model.prefill_chunk_size = None
    model.generate(tokens(32, 4), max_new_tokens=1, do_sample=False, pad_token_id=0)  # warm-up
    before = peak_rss_kib()
    text = tokens(context, 5)
    wall = timed(lambda: model.generate(text, max_new_tokens=1, do_sample=False, pad_token_id=0))
    peak = peak_rss_kib()
    return dict(variant=variant, context=context, chunked=chunked, model_rss_kib=before, peak_rss_kib=peak,
                wall_s=wall, load=os.getloadavg()[0])


def in_subprocess(variant: str, context: int, chunked: bool, args) -> dict:
    command = [sys.executable, "-m", "benchmarks.prefill_state", "--one", variant, str(context), str(int(chunked)),
               "--threads", str(args.threads), "--long", str(args.long)]
    command += [] if args.chunk is None else ["--chunk", str(args.chunk)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompt", type=int, default=4096)
    parser.add_argument("--held", type=int, default=4096)
    parser.add_argument("--long", type=int, default=65536)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stepwise", type=int, default=64, help="one-token steps timed for scale")
    parser.add_argument("--variants", nargs="+", default=["local", "simple", "conv"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=None, help="prefill_chunk_size (default: the model's, 4096)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/prefill_state"))
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.chunk is not None:
        from modeling_aft import AFTPreTrainedModel

        AFTPreTrainedModel.prefill_chunk_size = args.chunk
    if args.one:
        print(json.dumps(measure_memory(args.one[0], int(args.one[1]), bool(int(args.one[2])), args.long + 16)))
        return 0
    speed, memory = [], []
    header = (f"{'model':10} {'on state s':>10} {'empty s':>8} {'ratio':>6} {'step ms/tok':>11} {'par ms/tok':>10} "
              f"{'chunked/unchunked':>17} {'RSS short MB':>12} {'RSS long MB':>11} {'RSS ratio':>9} "
              f"{'unchunked MB':>12}")
    rows = []
    for variant in args.variants:
        s = measure_speed(variant, args.prompt, args.held, args.long, args.rounds, args.stepwise)
        short, long_, whole = (in_subprocess(variant, context, chunked, args)
                               for context, chunked in ((args.prompt, True), (args.long, True), (args.long, False)))
        speed.append(s)
        memory.extend([short, long_, whole])
        rss_ratio = long_["peak_rss_kib"] / short["peak_rss_kib"]
        rows.append(dict(variant=variant, prefill_on_state_ratio=s["ratio"], rss_long_over_short=rss_ratio,
                         chunked_over_unchunked_time=s["chunked_over_unchunked"]))
        if len(rows) == 1:
            print(header)
        print(f"aft-{variant:6} {s['on_state_s']:10.3f} {s['from_empty_s']:8.3f} {s['ratio']:6.2f} "
              f"{s['stepwise_ms_per_token']:11.3f} {s['parallel_ms_per_token']:10.4f} "
              f"{s['chunked_over_unchunked']:17.2f} {short['peak_rss_kib'] / 1024:12.0f} "
              f"{long_['peak_rss_kib'] / 1024:11.0f} {rss_ratio:9.2f} {whole['peak_rss_kib'] / 1024:12.0f}", flush=True)
    print(f"goals: prompt on a {args.held}-token state / from empty <= 1.3; peak RSS after {args.long} / after "
          f"{args.prompt} tokens <= 1.2; chunked time per prompt token / unchunked <= 1")
    for r in rows:
        verdicts = [r["prefill_on_state_ratio"] <= 1.3, r["rss_long_over_short"] <= 1.2,
                    r["chunked_over_unchunked_time"] <= 1.0]
        print(f"aft-{r['variant']:6} " + "  ".join("meets" if ok else "MISSES" for ok in verdicts))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    facts = dict(torch=torch.__version__, threads=args.threads, cpus=os.cpu_count(),
                 date=time.strftime("%Y-%m-%dT%H:%M:%S"))
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "one"}
    settings["chunk"] = speed[0]["chunk"] if speed else args.chunk
    args.out.with_suffix(".json").write_text(
        json.dumps(dict(machine=facts, settings=settings, goals=rows, speed=speed, memory=memory), indent=2) + "\n"
    )
    print(f"wrote {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
