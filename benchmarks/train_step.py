# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""One training step of AFTForCausalLM in every variant against GPT-2 (SDPA) and RWKV: time, memory, matmul rate.

    python -m benchmarks.train_step [--lengths 1024 2048 4096 8192 16384] [--variants full local simple conv]
                                    [--baselines gpt2 rwkv] [--width 512] [--layers 6] [--compile]
                                    [--out benchmarks/results/train_step]

What is compared (batch 1, float32, random weights (seed 0), random bytes as input and labels, vocabulary 256):

  aft-<variant>  AFTForCausalLM from the `cpu-text-<variant>` preset with hidden_size = --width, --layers layers,
                 MLP 4 x width, dropout 0, max_position_embeddings = T, and the paper's enwik8 settings for the
                 position biases: local window 32, d' = position_bias_dim = 256 (full uses the same d'); conv keeps
                 the preset's 8 heads and kernel 11. With --compile the AFT model runs through torch.compile (the
                 first step compiles and is reported apart; a failure is recorded for that measurement).
  gpt2           GPT2LMHeadModel, the same width, depth, MLP (4 x width) and vocabulary, heads of 64, dropout 0 in
                 embeddings, residuals and attention, attn_implementation="sdpa", n_positions = T.
  rwkv           RwkvForCausalLM, the same width (attention_hidden_size = width), depth, MLP and vocabulary, tied
                 embeddings as the others; its CPU path (a Python loop over time in the WKV recurrence).

A step is forward (loss of the shifted labels), backward and AdamW.step() with zero_grad(set_to_none=True), the
model in train() mode with use_cache=False.

How it is measured. Every (model, T) runs in a fresh process forked from a multiprocessing forkserver that has
imported torch, transformers (GPT-2, RWKV) and modeling_aft once and computed nothing: each measurement then
starts in well under a second instead of ~10 s of imports, and holds nothing of any other measurement. In it:
reset the peak-RSS mark (/proc/self/clear_refs), build the model, the optimizer and the input, read `model RSS`
(VmRSS); one warm-up step (AdamW allocates its state here; with --compile, compilation), then timed steps while
fewer than --steps (3) and their sum is under --step-budget (20 s); seconds per step = the minimum. tokens/s =
T / that. Peak RSS = VmHWM at the end: the whole process, imports included (the same imports for every model).

FLOPs of a step, counted analytically (multiply-adds count 2; elementwise work, softmax/exp, layer norms and the
optimizer are not counted, as usual for model-FLOPs utilisation):

  6 * P_mm * T                   the matrix multiplies of the linear layers, forward (2) and backward (4), where
                                 P_mm = the weights of every nn.Linear / transformers Conv1D the model calls, the
                                 (tied) LM head included, embeddings' lookups not
  + 3 * L * mixing(T)            the token mixing, backward counted as twice the forward, per layer:
      gpt2   4 D T(T+1)/2        Q K^T and A V over the causal pairs
      full   (4 D + 2 d') T(T+1)/2   exp(w) @ (exp(K) V) and exp(w) @ exp(K), and w = U V^T, over the causal
                                 pairs (the layer forms w a block of rows at a time, the lower triangle only)
      local  (4 D + 2 d') P_s    the same sums and the band of U V^T over the P_s pairs inside the window,
                                 P_s = sum_t min(t + 1, s)
      conv   2 (D + H) P_k       num (D channels) and den (one per head) over the pairs inside the kernel
      simple, rwkv  0            (running sums: elementwise only)

The matmul-rate fraction is FLOPs / (seconds per step) / R, where R is the machine's float32 matrix-multiply rate
measured in the same run, in the same kind of forked process and with the same threads: the best of 5
torch.mm of two --matmul-size (2048) square matrices, measured before the models and again after them (the
larger of the two is R; both are in the JSON).

Limits, as benchmarks.generation: a measurement whose estimated memory exceeds --memory-limit-gb (16) is skipped
with the estimate as reason, every process runs under RLIMIT_DATA of that limit + 2 GB, a measurement past
--timeout seconds is stopped (what it measured is kept), a model that failed or timed out is not tried at longer
T; the load average before each measurement is stored. Outputs: a table, the issue's goals with the measured
ratios (met / MISSED), <out>.json and <out>.png (seconds per step, peak RSS and matmul-rate fraction against T).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Callable

from benchmarks.generation import byte_aft, byte_gpt2
from benchmarks.operators import (
    cores,
    current_rss_kib,
    fmt,
    fork_server,
    log_axes,
    machine_facts,
    peak_rss_kib,
    print_rows,
    release_freed_memory,
    reset_peak_rss,
    run_fresh,
    write_report,
)

AFT_VARIANTS = ("full", "local", "simple", "conv")
BASELINES = ("gpt2", "rwkv")
DEFAULT_LENGTHS = [1024, 2048, 4096, 8192, 16384]
VOCAB = 256
LOCAL_WINDOW, POSITION_BIAS_DIM = 32, 256  # the paper's enwik8 AFT-local (Table 5)
GPT2_HEAD_DIM = 64
PRELOAD = [
    "torch",
    "transformers.models.gpt2.modeling_gpt2",
    "transformers.models.rwkv.modeling_rwkv",
    "modeling_aft",
]
GOAL_TIME_4096, GOAL_MEMORY_4096, GOAL_TIME_16384, GOAL_TIME_FULL, GOAL_FRACTION = 0.6, 0.9, 0.2, 1.2, 0.6


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------


def build_model(name: str, length: int, width: int, layers: int):
    import torch

    torch.manual_seed(0)
    if name == "gpt2":
        return byte_gpt2(width, layers, length, GPT2_HEAD_DIM)
    if name == "rwkv":
        from transformers import RwkvConfig, RwkvForCausalLM

        config = RwkvConfig(
            vocab_size=VOCAB,
            context_length=length,
            hidden_size=width,
            num_hidden_layers=layers,
            attention_hidden_size=width,
            intermediate_size=4 * width,
            tie_word_embeddings=True,
        )
        return RwkvForCausalLM(config)
    return byte_aft(name, width, layers, length, local_window=LOCAL_WINDOW, position_bias_dim=POSITION_BIAS_DIM)


def matmul_parameters(model) -> int:
    """Weights of every matrix multiply the model calls: nn.Linear and transformers' Conv1D (GPT-2), each module
    once; a tied LM head counts (its product happens), embedding lookups do not."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Linear, Conv1D)))


def model_shape(name: str, model) -> dict:
    """What the FLOP count needs beside P_mm."""
    config = model.config
    shape = dict(heads=getattr(config, "num_heads", 1), kernel=getattr(config, "conv_kernel_size", 0))
    if name in AFT_VARIANTS:
        shape.update(window=config.local_window, position_bias_dim=config.position_bias_dim)
    return shape


def causal_pairs(length: int) -> int:
    return length * (length + 1) // 2


def band_pairs(length: int, reach: int) -> int:
    """Pairs (t, t') with 0 <= t - t' < reach: sum over t of min(t + 1, reach)."""
    if length <= reach:
        return causal_pairs(length)
    return causal_pairs(reach) + (length - reach) * reach


def step_flops(name: str, length: int, width: int, layers: int, matmul_params: int, shape: dict) -> dict:
    """FLOPs of one training step (see the module docstring): linear layers and token mixing apart."""
    if name in ("gpt2", "full"):
        mixing = 4 * width * causal_pairs(length)
        if name == "full":
            mixing += 2 * shape["position_bias_dim"] * causal_pairs(length)
    elif name == "local":
        mixing = (4 * width + 2 * shape["position_bias_dim"]) * band_pairs(length, shape["window"])
    elif name == "conv":
        mixing = 2 * (width + shape["heads"]) * band_pairs(length, shape["kernel"])
    else:  # simple, rwkv: elementwise running sums only
        mixing = 0
    linear = 6 * matmul_params * length
    return dict(linear_flops=linear, mixing_flops=3 * layers * mixing, flops=linear + 3 * layers * mixing)


# ----------------------------------------------------------------------------------------------------------------
# The measurements (each in its own forked process)
# ----------------------------------------------------------------------------------------------------------------


def measure_step(spec: dict, report: Callable[[dict], None]) -> None:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()  # e.g. the loss_type notice, once per process

    name, length = spec["model"], spec["length"]
    result = dict(model=name, length=length, compiled=spec["compiled"], status="building the model")
    resettable = reset_peak_rss()
    report(result)
    model = build_model(name, length, spec["width"], spec["layers"])
    model.train()
    result.update(
        parameters=sum(p.numel() for p in model.parameters()),
        matmul_params=matmul_parameters(model),
        shape=model_shape(name, model),
    )
    runner = torch.compile(model) if spec["compiled"] else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, VOCAB, (1, length), generator=torch.Generator().manual_seed(1234))

    def step() -> None:
        loss = runner(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    release_freed_memory()
    result.update(model_rss_kib=current_rss_kib(), status="warm-up step" + (" (torch.compile)" if spec["compiled"]
                                                                             else ""))
    report(result)
    start = time.perf_counter()
    step()
    result.update(first_step_s=time.perf_counter() - start, status="timed steps")
    report(result)
    times: list[float] = []
    while len(times) < spec["steps"] and (not times or sum(times) < spec["step_budget_s"]):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        result.update(step_s=min(times), steps_s=times)
        report(result)
    peak = peak_rss_kib(resettable)
    result.update(status="ok", tokens_per_s=length / min(times), peak_rss_kib=peak,
                  extra_rss_kib=peak - result["model_rss_kib"],
                  memory_method="VmHWM of the process" if resettable else "ru_maxrss of the process")
    report(result)


def measure_matmul(spec: dict, report: Callable[[dict], None]) -> None:
    """The machine's float32 matrix-multiply rate: the best of `repeats` products of two n x n matrices."""
    import torch

    n = spec["size"]
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=generator), torch.randn(n, n, generator=generator)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)  # warm-up
    times = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - start)
    report(dict(status="ok", size=n, times_s=times, gflops=2 * n**3 / min(times) / 1e9))


# ----------------------------------------------------------------------------------------------------------------
# Planning
# ----------------------------------------------------------------------------------------------------------------


def estimated_bytes(name: str, length: int, width: int, layers: int) -> float:
    """An estimate of a step's memory over the imports, used only to skip what cannot fit (RLIMIT_DATA guards the
    rest): weights, gradients and AdamW's two moments (16 bytes a parameter); activations per token and layer
    (GPT-2 from the issue's numbers: ~120 bytes x width, taken as 150; RWKV's CPU loop ~250, taken as 400; AFT
    counted as ~25 (T, D) tensors kept for backward, ~100 bytes x width, taken as 150); logits. AFT-full forms
    w = U V^T a block of 512 rows at a time and keeps nothing quadratic (its blocked fallback, for inputs beyond
    the fast path's range, would; RLIMIT_DATA guards that case)."""
    params = layers * 13 * width * width + VOCAB * width
    if name in ("full", "local"):
        params += layers * 2 * length * POSITION_BIAS_DIM
    per_token = {"rwkv": 400}.get(name, 150) * width * layers + 16 * VOCAB
    extra = 0.5e9 + 16 * params + per_token * length
    return float(extra)


def label(name: str, compiled: bool = False) -> str:
    text = name if name in BASELINES else f"aft-{name}"
    return text + (" (compiled)" if compiled else "")


# ----------------------------------------------------------------------------------------------------------------
# Goals
# ----------------------------------------------------------------------------------------------------------------


def _verdict(value: float, goal: float, at_most: bool) -> str:
    met = value <= goal if at_most else value >= goal
    return "met" if met else "MISSED"


def _at_length(ok: dict, variant: str, target: int) -> tuple[int | None, str]:
    """The length to judge a goal at: the target if both AFT and GPT-2 ran there, else the longest they share."""
    common = sorted(t for (m, t) in ok if m == variant and ("gpt2", t) in ok)
    if target in common:
        return target, ""
    if not common:
        return None, ""
    return common[-1], f"  [{target} not measured: at {common[-1]} instead]"


def goals(results: list[dict], rate_gflops: float | None) -> tuple[dict, list[str]]:
    """The issue's goals with the measured ratios, as a dict for the JSON and as the lines to print."""
    ok = {(r["model"], r["length"]): r for r in results if r["status"] == "ok"}
    summary: dict = dict(at_4096={}, at_16384={}, full={}, matmul_fraction={})
    lines = [f"local/simple/conv at 4096: time x GPT-2 (goal <= {GOAL_TIME_4096}), memory x GPT-2 "
             f"(goal <= {GOAL_MEMORY_4096})"]
    for variant in ("local", "simple", "conv"):
        length, note = _at_length(ok, variant, 4096)
        if length is None:
            lines.append(f"  {label(variant):<11} not measured (needs it and GPT-2 at the same T)")
            continue
        aft, base = ok[variant, length], ok["gpt2", length]
        time_ratio, memory_ratio = aft["step_s"] / base["step_s"], aft["peak_rss_kib"] / base["peak_rss_kib"]
        summary["at_4096"][variant] = dict(length=length, time=time_ratio, memory=memory_ratio)
        lines.append(f"  {label(variant):<11} at {length}: time {time_ratio:.2f}x "
                     f"({_verdict(time_ratio, GOAL_TIME_4096, True)}), memory {memory_ratio:.2f}x "
                     f"({_verdict(memory_ratio, GOAL_MEMORY_4096, True)}){note}")
    lines.append(f"local/simple/conv at 16384: time x GPT-2 (goal <= {GOAL_TIME_16384})")
    for variant in ("local", "simple", "conv"):
        length, note = _at_length(ok, variant, 16384)
        if length is None:
            lines.append(f"  {label(variant):<11} not measured (needs it and GPT-2 at the same T)")
            continue
        ratio = ok[variant, length]["step_s"] / ok["gpt2", length]["step_s"]
        summary["at_16384"][variant] = dict(length=length, time=ratio)
        lines.append(f"  {label(variant):<11} at {length}: time {ratio:.2f}x "
                     f"({_verdict(ratio, GOAL_TIME_16384, True)}){note}")
    lines.append(f"full: time x GPT-2 at each T (goal <= {GOAL_TIME_FULL})")
    shared = sorted(t for (m, t) in ok if m == "full" and ("gpt2", t) in ok)
    if not shared:
        lines.append("  aft-full    not measured (needs it and GPT-2 at the same T)")
    for length in shared:
        ratio = ok["full", length]["step_s"] / ok["gpt2", length]["step_s"]
        summary["full"][length] = ratio
        lines.append(f"  aft-full    at {length}: time {ratio:.2f}x ({_verdict(ratio, GOAL_TIME_FULL, True)})")
    lines.append(f"matmul-rate fraction at T >= 1024 (goal >= {GOAL_FRACTION}; rate "
                 f"{fmt(rate_gflops, '.1f')} GFLOP/s)")
    for variant in ("local", "simple"):
        measured = sorted(t for (m, t) in ok if m == variant and ok[m, t].get("matmul_fraction") is not None)
        judged = [t for t in measured if t >= 1024] or measured
        note = "" if not judged or judged[0] >= 1024 else "  [no T >= 1024 measured: at shorter T instead]"
        if not judged:
            lines.append(f"  {label(variant):<11} not measured")
        for length in judged:
            fraction = ok[variant, length]["matmul_fraction"]
            summary["matmul_fraction"].setdefault(variant, {})[length] = fraction
            lines.append(f"  {label(variant):<11} at {length}: {fraction:.2f} "
                         f"({_verdict(fraction, GOAL_FRACTION, False)}){note}")
    return summary, lines


# ----------------------------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------------------------


def print_table(results: list[dict]) -> None:
    ok = {(r["model"], r["length"]): r for r in results if r["status"] == "ok"}
    header = ("model", "T", "s/step", "1st step s", "tokens/s", "peak MB", "model MB", "GFLOP", "mm frac",
              "x gpt2 time", "x gpt2 mem", "status")
    rows = []
    for r in results:
        base = ok.get(("gpt2", r["length"]), {})
        time_ratio = r["step_s"] / base["step_s"] if r.get("step_s") and base.get("step_s") else None
        memory = r.get("peak_rss_kib") if r["status"] == "ok" else None
        memory_ratio = memory / base["peak_rss_kib"] if memory and base else None
        rows.append((
            label(r["model"], r.get("compiled", False)),
            str(r["length"]),
            fmt(r.get("step_s"), ".3f"),
            fmt(r.get("first_step_s"), ".3f"),
            fmt(r.get("tokens_per_s"), ".0f"),
            fmt(memory and memory / 1024, ".0f"),
            fmt(r.get("model_rss_kib") and r["model_rss_kib"] / 1024, ".0f"),
            fmt(r.get("flops") and r["flops"] / 1e9, ".1f"),
            fmt(r.get("matmul_fraction"), ".2f"),
            fmt(time_ratio, ".2f"),
            fmt(memory_ratio, ".2f"),
            r["status"],
        ))
    print_rows(header, rows, left=(0, 11))


def plot(results: list[dict], models: list[str], path, width: int, layers: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = sorted({r["length"] for r in results})
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    panels = (("step_s", 1.0, "seconds per step"), ("peak_rss_kib", 1 / 1024, "peak RSS (MB)"),
              ("matmul_fraction", 1.0, "fraction of the matmul rate"))
    for ax, (key, scale, name) in zip(axes, panels):
        for model in models:
            points = sorted((r["length"], r[key] * scale) for r in results
                            if r["model"] == model and r["status"] == "ok" and r.get(key))
            if points:
                xs, ys = zip(*points)
                compiled = any(r.get("compiled") for r in results if r["model"] == model)
                ax.plot(xs, ys, marker="o", label=label(model, compiled))
        log_axes(ax, lengths)
        ax.set_xlabel("T (tokens)")
        ax.set_ylabel(name)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"One training step (forward, backward, AdamW), CPU, batch 1, float32, {layers} layers, width {width}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------------
# The driver
# ----------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=DEFAULT_LENGTHS)
    parser.add_argument("--variants", nargs="+", choices=AFT_VARIANTS, default=list(AFT_VARIANTS))
    parser.add_argument("--baselines", nargs="*", choices=BASELINES, default=list(BASELINES),
                        help="GPT-2 and/or RWKV; none with a bare --baselines")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--compile", action="store_true", help="run the AFT models through torch.compile")
    parser.add_argument("--steps", type=int, default=3, help="at most this many timed steps after the warm-up")
    parser.add_argument("--step-budget", type=float, default=20.0, help="seconds of timed steps per measurement")
    parser.add_argument("--matmul-size", type=int, default=2048, help="n of the n x n x n torch.mm for the rate")
    parser.add_argument("--memory-limit-gb", type=float, default=16.0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per measurement")
    parser.add_argument("--threads", type=int, default=cores())
    parser.add_argument("--out", default="benchmarks/results/train_step", help="path of the results, no suffix")
    args = parser.parse_args(argv)
    if "conv" in args.variants and args.width % 8:
        parser.error(f"--width {args.width} must be a multiple of 8: aft-conv has the preset's 8 heads")
    if min(args.lengths) < 2 or args.steps < 1:
        parser.error(f"--lengths {args.lengths} must be >= 2 (a shifted loss needs two tokens), --steps >= 1")
    return args


def matmul_rate(ctx, args, when: str) -> dict:
    spec = dict(size=args.matmul_size, repeats=5, threads=args.threads)
    result = run_fresh(ctx, "benchmarks.train_step:measure_matmul", spec, args.timeout, dict(when=when))
    result["when"] = when
    print(f"float32 matmul rate ({when}, {args.matmul_size}^3, {args.threads} threads): "
          f"{fmt(result.get('gflops'), '.1f')} GFLOP/s  {result['status']}", flush=True)
    return result


def main(argv=None) -> None:
    args = parse_args(argv)
    ctx = fork_server(PRELOAD)
    facts = machine_facts(args.threads, "benchmarks.train_step")
    print(f"torch {facts['torch']}, transformers {facts['transformers']}, {args.threads} threads, "
          f"{facts.get('cpu', '?')}, {facts.get('memory_gib', '?')} GiB; width {args.width}, {args.layers} layers"
          + (", AFT compiled" if args.compile else ""), flush=True)
    rates = [matmul_rate(ctx, args, "before")]
    models = list(args.variants) + list(args.baselines)
    limit = args.memory_limit_gb * 1e9
    results, failed, started = [], set(), time.perf_counter()
    for length in sorted(set(args.lengths)):
        for name in models:
            compiled = args.compile and name in AFT_VARIANTS
            base = dict(model=name, length=length, compiled=compiled)
            estimate = estimated_bytes(name, length, args.width, args.layers)
            if name == "rwkv" and args.layers < 2:
                results.append(dict(base, status="skipped: transformers' RWKV initialisation divides by "
                                                 "num_hidden_layers - 1; use --layers >= 2"))
                continue
            if name in failed:
                results.append(dict(base, status="skipped: failed or timed out at a shorter T"))
                continue
            if estimate > limit:
                results.append(dict(base, status=f"skipped: est. {estimate / 1e9:.1f} GB > --memory-limit-gb "
                                                 f"{args.memory_limit_gb}", estimated_bytes=estimate))
                continue
            spec = dict(base, width=args.width, layers=args.layers, steps=args.steps,
                        step_budget_s=args.step_budget, threads=args.threads, data_limit_bytes=int(limit + 2e9))
            load = os.getloadavg()[0]
            print(f"[{time.perf_counter() - started:7.1f} s] {label(name, compiled)} at {length} (load {load:.2f}) "
                  "...", end=" ", flush=True)
            result = run_fresh(ctx, "benchmarks.train_step:measure_step", spec, args.timeout, base)
            result.update(load_before=load, estimated_bytes=estimate)
            if result["status"] != "ok":
                failed.add(name)
            peak_mb = result["peak_rss_kib"] / 1024 if result.get("peak_rss_kib") else None
            print(f"{fmt(result.get('step_s'), '.3f')} s/step, peak {fmt(peak_mb, '.0f')} MB  {result['status']}",
                  flush=True)
            results.append(result)
    rates.append(matmul_rate(ctx, args, "after"))
    measured_rates = [r["gflops"] for r in rates if r.get("gflops")]
    rate = max(measured_rates) if measured_rates else None
    for r in results:
        if "matmul_params" in r:
            r.update(step_flops(r["model"], r["length"], args.width, args.layers, r["matmul_params"], r["shape"]))
            if r.get("step_s") and rate:
                r["matmul_fraction"] = r["flops"] / r["step_s"] / (rate * 1e9)
    wall = time.perf_counter() - started
    print()
    print_table(results)
    summary, lines = goals(results, rate)
    print("\nGoals (issue 6):")
    print("\n".join(lines))
    print(f"\nwall time {wall:.0f} s")
    report = dict(machine=facts, settings=vars(args), method=__doc__, wall_s=wall, matmul_rates=rates,
                  matmul_rate_gflops=rate, results=results, goals=summary, goal_lines=lines)
    write_report(args.out, report, lambda path: plot(results, models, path, args.width, args.layers))


if __name__ == "__main__":
    main()
