# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Generation speed and memory of the causal AFT variants against transformers' GPT-2, after long contexts.

    python -m benchmarks.generation [--contexts 1024 4096 16384 65536] [--new-tokens 256]
                                    [--variants full local simple conv] [--out benchmarks/results/generation]

What is compared. Every AFT variant at the `cpu-text-<variant>` preset (4 layers, width 128, MLP 512, bytes; other
sizes with --width and --layers, the MLP 4 x width, GPT-2 with 32-wide heads) with
dropout 0 and `max_position_embeddings` = longest context + new tokens, and in the same run `GPT2LMHeadModel` of the
same width, depth, MLP size and vocabulary (4 heads, dropout 0, attn_implementation="sdpa", its KV cache,
`n_positions` = longest context + new tokens). Weights are random (seed 0): speed and memory do not depend on them.
The context is random bytes 1..255 (no 0, which is the pad id, so generate() infers an all-ones attention mask).

How it is measured. Every (model, context) pair runs in a fresh subprocess (this script re-invoked with a hidden
`--one`), so that its peak memory is its own. In that process, in this order:

1. build the model, run a warm-up generate() on 32 context tokens (one-time allocations, kernel selection), then
   read `model RSS` = ru_maxrss so far (the peak of building the model and warming up);
2. prefill: `model(context, use_cache=True, logits_to_keep=1)` under no_grad, which is the forward generate()
   makes for the prompt (generate also keeps only the last position's logits). Repeated up to 3 times while the
   repeats take under 2 s in all; the minimum is reported;
3. decode: one `model.generate(context, max_new_tokens=N, min_new_tokens=N, do_sample=False, pad_token_id=0)`
   with a StoppingCriteria that only records time.perf_counter(). generate() calls it once after every new
   token, so t_1 is the end of the prompt's forward plus the first token, and t_N the end of the last token:
   decode ms/token = (t_N - t_1) / (N - 1), the decode loop itself measured directly, including generate()'s own
   per-token work (input preparation, greedy selection, stopping checks), with no subtraction of separately timed
   numbers. As a cross-check the JSON also holds (generate time - prefill) / N, the time to first token inside
   generate, and the median step;
4. tokens/s = N / wall time of that generate() call: the end-to-end rate, prefill of the context included.
   decode tokens/s = 1000 / decode ms/token is reported beside it;
5. peak RSS = ru_maxrss (KiB on Linux) at the end of the process; extra = peak RSS - model RSS, the memory the
   context and the generation added.

Every measurement is single-shot (beyond the prefill repeats); the machine may be shared, so the load average
before each one is stored in the JSON. Torch runs on all the cores this process may use.

Limits. AFT-full keeps every past key and builds the T x T bias of its context, so by default it runs only up to
--full-max-context 4096. Any measurement whose estimated memory exceeds --memory-limit-gb (16) is skipped, and every
subprocess also runs under RLIMIT_DATA of that limit + 2 GB, so a bad estimate fails that one measurement instead
of the machine. A measurement that runs past --timeout seconds is stopped and keeps what it measured (the prefill).

Outputs: a table on stdout, <out>.json (every number, the plan, the machine), <out>.png (decode ms/token, peak
RSS and prefill time against the context, one line per model), and the two goal ratios: decode time per token at
the longest context over the shortest for simple, local and conv (goal <= 1.2), and AFT tokens/s over GPT-2
tokens/s at 16k context (goal >= 5; given end to end and decode only).

`--profile VARIANT` instead profiles single decode steps of one model after a context (cProfile and torch.profiler,
top 10 each), to see whether decoding is bound by Python overhead.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AFT_VARIANTS = ("full", "local", "simple", "conv")
BASELINE = "gpt2"
DEFAULT_CONTEXTS = [1024, 4096, 16384, 65536]
WARMUP_CONTEXT, WARMUP_NEW = 32, 4
PREFILL_REPEATS, PREFILL_REPEAT_BUDGET_S = 3, 2.0
RESULT_TAG = "RESULT "


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------


def byte_gpt2(width: int, layers: int, positions: int, head_dim: int):
    """GPT2LMHeadModel over bytes (vocabulary 256, no BOS/EOS) with SDPA attention and no dropout, MLP 4 x width;
    the baseline of this benchmark and of benchmarks.train_step."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        n_embd=width,
        n_layer=layers,
        n_head=max(1, width // head_dim),
        n_inner=4 * width,
        vocab_size=256,
        n_positions=positions,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,  # GPT-2's 50256 lies outside a byte vocabulary
        eos_token_id=None,
        attn_implementation="sdpa",
    )
    model = GPT2LMHeadModel(config)
    if model.config._attn_implementation != "sdpa":
        raise RuntimeError(f"GPT-2 runs {model.config._attn_implementation!r} attention, not sdpa")
    return model


def byte_aft(variant: str, width: int, layers: int, positions: int, **overrides):
    """AFTForCausalLM from the `cpu-text-<variant>` preset at the given size, MLP 4 x width, dropout 0."""
    from modeling_aft import AFTConfig, AFTForCausalLM

    config = AFTConfig.from_preset(
        f"cpu-text-{variant}",
        hidden_dropout_prob=0.0,
        max_position_embeddings=positions,
        hidden_size=width,
        num_hidden_layers=layers,
        intermediate_size=4 * width,
        **overrides,
    )
    return AFTForCausalLM(config)


def build_model(name: str, max_positions: int, width: int = 128, layers: int = 4):
    import torch

    torch.manual_seed(0)
    if name == BASELINE:
        return byte_gpt2(width, layers, max_positions, head_dim=32).eval()
    return byte_aft(name, width, layers, max_positions).eval()


def context_ids(length: int):
    import torch

    generator = torch.Generator().manual_seed(1234)
    return torch.randint(1, 256, (1, length), generator=generator)


def estimated_extra_bytes(name: str, context: int, new_tokens: int) -> float:
    """A generous estimate of the memory one measurement adds over the model. Measured with this script (2026,
    torch 2.13 CPU): about 18 KB a token for GPT-2 (KV cache and activations; its sdpa path builds no T x T mask
    without padding) and 10-18 KB for AFT simple, local and conv, linear in the length; AFT-full adds about
    19 bytes x T^2 (T x T biases and weights in its prefill: 317 MB at 4096). The estimate takes 2-3 times that."""
    length = context + new_tokens
    per_token = {BASELINE: 40e3, "simple": 60e3, "local": 60e3, "conv": 60e3, "full": 60e3}[name]
    extra = per_token * length
    if name == "full":
        extra += 40.0 * length * length
    return extra


# ----------------------------------------------------------------------------------------------------------------
# One measurement (the subprocess)
# ----------------------------------------------------------------------------------------------------------------


def current_rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def emit(result: dict) -> None:
    print(RESULT_TAG + json.dumps(result), flush=True)


def measure_one(spec: dict) -> None:
    if spec.get("data_limit_bytes"):
        limit = int(spec["data_limit_bytes"])
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    import torch
    import transformers
    from transformers import StoppingCriteria, StoppingCriteriaList

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(spec["threads"])

    class StepClock(StoppingCriteria):
        """Records the time after every generated token; never stops anything."""

        def __init__(self):
            self.times = []

        def __call__(self, input_ids, scores, **kwargs):
            self.times.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    name, length, new = spec["model"], spec["context"], spec["new_tokens"]
    result = dict(model=name, context=length, new_tokens=new, status="started")
    model = build_model(name, spec["max_positions"], spec.get("width", 128), spec.get("layers", 4))
    result["parameters"] = sum(p.numel() for p in model.parameters())
    ids = context_ids(length)
    with torch.no_grad():
        model.generate(
            ids[:, :WARMUP_CONTEXT],
            max_new_tokens=WARMUP_NEW,
            min_new_tokens=WARMUP_NEW,
            do_sample=False,
            pad_token_id=0,
        )
    gc.collect()
    result["model_rss_kib"] = peak_rss_kib()
    result["model_current_rss_kib"] = current_rss_kib()
    emit(result)

    prefill = []
    with torch.no_grad():
        while len(prefill) < PREFILL_REPEATS and sum(prefill) < PREFILL_REPEAT_BUDGET_S:
            start = time.perf_counter()
            out = model(ids, use_cache=True, logits_to_keep=1)
            prefill.append(time.perf_counter() - start)
            del out
            gc.collect()
    result.update(prefill_s=min(prefill), prefill_runs_s=prefill, status="prefilled")
    result["peak_rss_after_prefill_kib"] = peak_rss_kib()
    emit(result)

    clock = StepClock()
    with torch.no_grad():
        start = time.perf_counter()
        output = model.generate(
            ids,
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            pad_token_id=0,
            stopping_criteria=StoppingCriteriaList([clock]),
        )
        end = time.perf_counter()
    if output.shape != (1, length + new):
        raise RuntimeError(f"generate returned shape {tuple(output.shape)}, expected (1, {length + new})")
    if len(clock.times) != new:
        raise RuntimeError(f"the step clock ticked {len(clock.times)} times for {new} tokens")
    steps = [b - a for a, b in zip(clock.times, clock.times[1:])]
    generate_s = end - start
    decode_s = (clock.times[-1] - clock.times[0]) / max(new - 1, 1)
    result.update(
        status="ok",
        generate_s=generate_s,
        time_to_first_token_s=clock.times[0] - start,
        decode_ms_per_token=1e3 * decode_s,
        decode_ms_per_token_median=1e3 * statistics.median(steps) if steps else None,
        decode_ms_per_token_by_subtraction=1e3 * (generate_s - min(prefill)) / new,
        tokens_per_s=new / generate_s,
        decode_tokens_per_s=1.0 / decode_s if decode_s > 0 else None,
        peak_rss_kib=peak_rss_kib(),
    )
    result["extra_rss_kib"] = result["peak_rss_kib"] - result["model_rss_kib"]
    emit(result)


# ----------------------------------------------------------------------------------------------------------------
# Profiling one decode step
# ----------------------------------------------------------------------------------------------------------------


def profile_decode(name: str, context: int, steps: int, max_positions: int, threads: int) -> None:
    import cProfile
    import pstats

    import torch
    import transformers
    from torch.profiler import ProfilerActivity, profile

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(threads)
    model = build_model(name, max_positions)
    ids = context_ids(context + 3 * steps + 1)
    with torch.no_grad():
        out = model(ids[:, :context], use_cache=True, logits_to_keep=1)
        cache = out.cache
        position = context

        def step():
            nonlocal position
            model(ids[:, position : position + 1], cache=cache, use_cache=True, logits_to_keep=1)
            position += 1

        for _ in range(steps // 2):  # warm-up
            step()
        start = time.perf_counter()
        for _ in range(steps - steps // 2):
            step()
        bare = (time.perf_counter() - start) / (steps - steps // 2)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(steps):
            step()
        profiler.disable()
        print(f"\n{name} after {context} tokens: a bare forward decode step (model(next_token, cache=...), no "
              f"generate()) takes {1e3 * bare:.3f} ms\n")
        print("cProfile, top 10 by own time (tottime):")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(10)
        print("cProfile, top 10 by cumulative time:")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(10)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                step()
    print("torch.profiler, top 10 operators by self CPU time:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


# ----------------------------------------------------------------------------------------------------------------
# The driver
# ----------------------------------------------------------------------------------------------------------------


def run_one(spec: dict, timeout: float) -> dict:
    command = [sys.executable, "-m", "benchmarks.generation", "--one", json.dumps(spec)]
    last = dict(model=spec["model"], context=spec["context"], new_tokens=spec["new_tokens"], status="no output")
    started = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        stdout, stderr, code, timed_out = proc.stdout, proc.stderr, proc.returncode, False
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        code, timed_out = None, True
    for line in stdout.splitlines():
        if line.startswith(RESULT_TAG):
            last = json.loads(line[len(RESULT_TAG) :])
    last["wall_s"] = time.perf_counter() - started
    if timed_out:
        last["status"] = f"timeout after {timeout:.0f} s (stopped while {last['status']})"
    elif code != 0:
        tail = stderr.strip().splitlines()[-1:] or ["?"]
        last["status"] = f"failed (exit {code}) while {last['status']}: {tail[0][:200]}"
    return last


def machine_facts(threads: int) -> dict:
    import torch
    import transformers

    facts = dict(
        date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        python=platform.python_version(),
        torch=torch.__version__,
        transformers=transformers.__version__,
        platform=platform.platform(),
        cores=threads,
        cpu_count=os.cpu_count(),
        torch_threads=threads,
        command=" ".join([Path(sys.executable).name, "-m", "benchmarks.generation", *sys.argv[1:]]),
    )
    try:
        import matplotlib

        facts["matplotlib"] = matplotlib.__version__
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            facts["cpu"] = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
        with open("/proc/meminfo") as f:
            facts["memory_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
        facts["git_commit"] = commit + ("+dirty" if dirty.strip() else "")
    except OSError:
        pass
    return facts


def mib(kib):
    return None if kib is None else kib / 1024


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(results: list[dict]) -> None:
    header = ("model", "context", "prefill s", "decode ms/tok", "tokens/s", "decode tok/s", "peak RSS MB",
              "model MB", "extra MB", "status")
    rows = []
    for r in results:
        rows.append((
            r["model"] if r["model"] == BASELINE else f"aft-{r['model']}",
            str(r["context"]),
            fmt(r.get("prefill_s"), ".3f"),
            fmt(r.get("decode_ms_per_token"), ".2f"),
            fmt(r.get("tokens_per_s"), ".1f"),
            fmt(r.get("decode_tokens_per_s"), ".1f"),
            fmt(mib(r.get("peak_rss_kib")), ".0f"),
            fmt(mib(r.get("model_rss_kib")), ".0f"),
            fmt(mib(r.get("extra_rss_kib")), ".0f"),
            r["status"],
        ))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) if i in (0, 9) else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(c.ljust(w) if i in (0, 9) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


def goal_ratios(results: list[dict], contexts: list[int]) -> dict:
    ok = {(r["model"], r["context"]): r for r in results if r["status"] == "ok"}
    ratios = dict(flat_decode={}, speedup={})
    for variant in ("simple", "local", "conv"):
        measured = sorted(c for (m, c) in ok if m == variant)
        if len(measured) >= 2:
            short, long = measured[0], measured[-1]
            value = ok[variant, long]["decode_ms_per_token"] / ok[variant, short]["decode_ms_per_token"]
            ratios["flat_decode"][variant] = dict(shortest=short, longest=long, ratio=value, goal="<= 1.2")
    target = 16384
    common = sorted(c for (m, c) in ok if m == BASELINE)
    at = target if target in common else (common[-1] if common else None)
    if at is not None:
        base = ok[BASELINE, at]
        for variant in AFT_VARIANTS:
            if (variant, at) in ok:
                r = ok[variant, at]
                ratios["speedup"][variant] = dict(
                    context=at,
                    tokens_per_s=r["tokens_per_s"] / base["tokens_per_s"],
                    decode_tokens_per_s=r["decode_tokens_per_s"] / base["decode_tokens_per_s"],
                    goal=">= 5",
                )
    return ratios


def print_ratios(ratios: dict) -> None:
    print("\nGoal 1: AFT decode time per token at the longest context / at the shortest (goal <= 1.2)")
    if not ratios["flat_decode"]:
        print("  not measured (needs two contexts of simple, local or conv)")
    for variant, r in ratios["flat_decode"].items():
        verdict = "meets" if r["ratio"] <= 1.2 else "MISSES"
        print(f"  aft-{variant:<6} {r['longest']:>6} / {r['shortest']:<6}: {r['ratio']:.3f}  ({verdict} the goal)")
    print("\nGoal 2: AFT tokens/s / GPT-2 tokens/s at 16k context (goal >= 5)")
    if not ratios["speedup"]:
        print("  not measured (needs GPT-2 and an AFT variant at the same context)")
    for variant, r in ratios["speedup"].items():
        note = "" if r["context"] == 16384 else f"  [16384 not measured: at {r['context']} instead]"
        verdict = "meets" if r["tokens_per_s"] >= 5 else "MISSES"
        print(
            f"  aft-{variant:<6} at {r['context']}: end to end (prefill included) {r['tokens_per_s']:.2f}x "
            f"({verdict} the goal); decode only {r['decode_tokens_per_s']:.2f}x{note}"
        )


def plot(results: list[dict], models: list[str], path: Path, width: int = 128, layers: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    contexts = sorted({r["context"] for r in results})
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    panels = (
        ("decode_ms_per_token", 1.0, "decode ms / token"),
        ("peak_rss_kib", 1 / 1024, "peak RSS (MB)"),
        ("prefill_s", 1.0, "prefill s"),
    )
    for ax, (key, scale, label) in zip(axes, panels):
        for name in models:
            points = sorted(
                (r["context"], r[key] * scale) for r in results if r["model"] == name and r.get(key) is not None
            )
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", label=name if name == BASELINE else f"aft-{name}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(contexts)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        low, high = ax.get_ylim()
        if high / low < 10:  # less than a decade: label the minor ticks too
            ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        else:
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("context tokens")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    new = next((r["new_tokens"] for r in results), "?")
    fig.suptitle(f"Greedy generation of {new} tokens after a context, CPU, batch 1 ({layers} layers, width {width})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--contexts", type=int, nargs="+", default=DEFAULT_CONTEXTS)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--variants", nargs="+", choices=AFT_VARIANTS, default=list(AFT_VARIANTS))
    parser.add_argument("--no-baseline", action="store_true", help="skip GPT-2")
    parser.add_argument("--out", default="benchmarks/results/generation", help="path of the results, no suffix")
    parser.add_argument("--full-max-context", type=int, default=4096, help="longest context AFT-full runs at")
    parser.add_argument("--memory-limit-gb", type=float, default=16.0)
    parser.add_argument("--timeout", type=float, default=1500.0, help="seconds per measurement")
    parser.add_argument("--threads", type=int, default=cores())
    parser.add_argument("--width", type=int, default=128, help="hidden size of every model (default: cpu-text-*)")
    parser.add_argument("--layers", type=int, default=4, help="depth of every model")
    parser.add_argument("--profile", metavar="MODEL", choices=[*AFT_VARIANTS, BASELINE],
                        help="profile decode steps of one model instead of benchmarking")
    parser.add_argument("--profile-context", type=int, default=1024)
    parser.add_argument("--profile-steps", type=int, default=50)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        measure_one(json.loads(args.one))
        return
    if args.new_tokens < 2:
        parser.error("--new-tokens must be at least 2 (decode time is measured between tokens)")
    contexts = sorted(set(args.contexts))
    max_positions = contexts[-1] + args.new_tokens
    if args.profile:
        positions = max(max_positions, args.profile_context + 3 * args.profile_steps + 1)
        profile_decode(args.profile, args.profile_context, args.profile_steps, positions, args.threads)
        return

    models = list(args.variants) + ([] if args.no_baseline else [BASELINE])
    limit = args.memory_limit_gb * 1e9
    facts = machine_facts(args.threads)
    print(f"torch {facts['torch']}, transformers {facts['transformers']}, {args.threads} threads, "
          f"{facts.get('cpu', '?')}, {facts.get('memory_gib', '?')} GiB; positions {max_positions}, "
          f"{args.new_tokens} new tokens")
    if "full" in models and any(c > args.full_max_context for c in contexts):
        print(f"AFT-full runs only up to {args.full_max_context} tokens of context (--full-max-context): it keeps "
              "every past key and builds T x T biases.")
    results = []
    started = time.perf_counter()
    for context in contexts:
        for name in models:
            base = dict(model=name, context=context, new_tokens=args.new_tokens)
            if name == "full" and context > args.full_max_context:
                results.append(dict(base, status=f"skipped: full only up to {args.full_max_context}"))
                continue
            estimate = estimated_extra_bytes(name, context, args.new_tokens)
            if estimate > limit:
                results.append(dict(base, status=f"skipped: est. {estimate / 1e9:.1f} GB > {args.memory_limit_gb} GB",
                                    estimated_extra_bytes=estimate))
                continue
            spec = dict(base, max_positions=max_positions, threads=args.threads, width=args.width, layers=args.layers,
                        data_limit_bytes=int(limit + 2e9))
            load = os.getloadavg()[0]
            print(f"[{time.perf_counter() - started:7.1f} s] {name} at {context} (load {load:.2f}) ...", flush=True)
            result = run_one(spec, args.timeout)
            result.update(estimated_extra_bytes=estimate, load_before=load)
            results.append(result)
            print(f"           {result['status']}: prefill {fmt(result.get('prefill_s'), '.3f')} s, decode "
                  f"{fmt(result.get('decode_ms_per_token'), '.2f')} ms/token, peak "
                  f"{fmt(mib(result.get('peak_rss_kib')), '.0f')} MB, {result['wall_s']:.1f} s", flush=True)
    wall = time.perf_counter() - started

    print()
    print_table(results)
    ratios = goal_ratios(results, contexts)
    print_ratios(ratios)
    print(f"\nwall time {wall:.0f} s")

    out = Path(args.out)
    if not out.is_absolute():
        out = Path.cwd() / out
    out.parent.mkdir(parents=True, exist_ok=True)
    report = dict(
        machine=facts,
        settings=dict(contexts=contexts, new_tokens=args.new_tokens, models=models, max_positions=max_positions,
                      width=args.width, layers=args.layers,
                      full_max_context=args.full_max_context, memory_limit_gb=args.memory_limit_gb,
                      timeout_s=args.timeout, threads=args.threads),
        method=__doc__,
        wall_s=wall,
        results=results,
        ratios=ratios,
    )
    json_path, png_path = out.with_suffix(".json"), out.with_suffix(".png")
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    try:
        plot(results, models, png_path, args.width, args.layers)
    except ImportError:
        png_path = None
        print("matplotlib is not installed: no plot")
    print(f"wrote {json_path}" + (f" and {png_path}" if png_path else ""))


if __name__ == "__main__":
    main()
