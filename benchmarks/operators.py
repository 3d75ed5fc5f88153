# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Time and peak memory of each AFT operator against scaled-dot-product attention and the aft-pytorch package.

    python -m benchmarks.operators [--lengths 512 1024 2048 4096 8192 16384] [--dim 512] [--ops ...]
                                   [--modes causal bidirectional] [--out benchmarks/results/operators]

What is compared (batch 1, float32, D = --dim channels, inputs of N(0, 1), position biases of N(0, 0.01^2)):

  full               ops.aft_full with a dense (T, T) bias w, a leaf tensor (gets a gradient)
  full-factorized    ops.aft_full_factorized(q, k, v, U, V): w = U V^T formed a block of rows at a time from U, V
                     of (T, d'), d' = --position-bias-dim (256, enwik8): what an AFT-full layer runs
  local              ops.aft_local with a dense (T, T) w and window --window (32): the non-factorised bias
                     (the paper's Table 3 ablation); w itself is T x T, so its memory is quadratic by construction
  local-factorized   ops.factorized_local_bias_blocks(U, V, window) + ops.aft_local_blocked: only the band of
                     U V^T is formed; what an AFT-local layer runs in training (AFTMixer._local_bias)
  simple             ops.aft_simple
  conv               ops.aft_conv1d, --conv-heads (8) heads, one key per head, kernel --conv-kernel (11)
  sdpa               torch.nn.functional.scaled_dot_product_attention of the same width: heads of --head-dim
                     (64), dropout 0, is_causal for causal
  aft-pytorch-full   aft_pytorch.AFTFull / AFTSimple / AFTLocal (PyPI aft-pytorch, s = --window), which are
  aft-pytorch-simple bidirectional only. Their four projections (to_q, to_k, to_v, project) are replaced by
  aft-pytorch-local  identities so that only their mixing runs, as for the operators above (Q = K = V = the
                     input). AFTLocal rebuilds its T x T bias in a Python double loop in every forward, so it runs
                     only up to --aft-pytorch-local-max-length (1024).

Every operator runs causal and bidirectional (--modes), in two passes: forward (under torch.no_grad, inference)
and forward+backward (a forward with autograd, then backward of a fixed random output gradient into q, k, v and the
bias parameters; gradients are set to None between repeats, so every repeat allocates them afresh).

How it is measured. Every (operator, mode, pass, T) runs in a fresh process of its own. To keep the ~5-10 s of
importing torch and transformers out of each of the ~150 measurements, the processes are forked from a
multiprocessing forkserver that has imported torch, modeling_aft and aft_pytorch once and computed nothing (so no
thread pool is forked). In that process: build the inputs; gc, malloc_trim, then reset the kernel's peak-RSS mark
(writing 5 to /proc/self/clear_refs resets VmHWM) and read base RSS (VmRSS); run one warm-up call and then
repeats while fewer than --repeats (5) and their sum is under --budget (1 s) seconds; time = the minimum repeat;
peak RSS = VmHWM at the end, extra = peak - base: the memory the operator itself adds over its inputs (first-touch
of library code is done before, by one forward and backward at T = 64). Where clear_refs cannot be written, the
peak is ru_maxrss of the whole process (imports included) and the JSON says so (memory_method).

Memory slope: for every operator, mode and pass, a least-squares fit of extra bytes against T (bytes per token)
and the growth ratio extra(2T) / extra(T) at the longest such pair. A cost linear in T with a fixed part gives a
ratio <= 2, a quadratic one tends to 4; ratio <= 2.25 is reported as linear. The issue's goal: local (the
factorised path the model runs), simple and conv grow linearly.

Limits. A measurement whose estimated extra memory exceeds --memory-limit-gb (16) is skipped, and every process
also runs under RLIMIT_DATA of that limit + 2 GB, so a bad estimate fails that one measurement, not the machine. A
measurement that runs past --timeout seconds is stopped; an (operator, mode, pass) that failed or timed out is not
tried again at longer T. The load average before each measurement is stored in the JSON (the machine may be
shared). Outputs: a table on stdout, <out>.json (every number, the settings, the machine), <out>.png (time and
extra memory against T, both passes).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib
import importlib.util
import json
import multiprocessing
import multiprocessing.forkserver
import os
import resource
import sys
import time
from pathlib import Path
from typing import Callable

AFT_OPS = ("full", "full-factorized", "local", "local-factorized", "simple", "conv")
PYPI_OPS = ("aft-pytorch-full", "aft-pytorch-simple", "aft-pytorch-local")
ALL_OPS = (*AFT_OPS, "sdpa", *PYPI_OPS)
LINEAR_GOAL_OPS = ("local-factorized", "simple", "conv")
MODES = ("causal", "bidirectional")
PASSES = ("forward", "forward+backward")
DEFAULT_LENGTHS = [512, 1024, 2048, 4096, 8192, 16384]
LINEAR_RATIO = 2.25
WARMUP_LENGTH = 64
# Not this module itself: every forked process re-runs the __main__ module (multiprocessing's spawn preparation),
# and runpy warns when that module was imported before.
PRELOAD = ["torch", "modeling_aft", "aft_pytorch"]


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# ----------------------------------------------------------------------------------------------------------------
# Process memory (Linux /proc; ru_maxrss where /proc is missing)
# ----------------------------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_kib() -> int:
    value = _status_kib("VmRSS")
    return value if value is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def release_freed_memory() -> None:
    """Free what Python and glibc still hold, so that the next peak is the next phase's own."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmHWM") is not None
    except OSError:
        return False


def peak_rss_kib(resettable: bool) -> int:
    value = _status_kib("VmHWM") if resettable else None
    return value if value is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ----------------------------------------------------------------------------------------------------------------
# Fresh processes forked from a preloaded server
# ----------------------------------------------------------------------------------------------------------------


def fork_server(preload: list[str]):
    """A forkserver context whose server imports `preload` once; every Process started from it is a fresh fork."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(preload)
    multiprocessing.forkserver.ensure_running()  # start importing now, beside the caller's own work
    return ctx


def _child_entry(target: str, spec: dict, conn) -> None:
    """Runs in the forked process: the memory limit, the thread count, then `module:function(spec, report)`."""
    # The preloaded modules' objects are never garbage: keep the collector off them, which would otherwise take
    # ~0.3 s per collection here and copy every page it touches out of the server's.
    gc.freeze()
    try:
        if spec.get("data_limit_bytes"):
            limit = int(spec["data_limit_bytes"])
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        import torch

        torch.set_num_threads(int(spec["threads"]))
        module, _, function = target.partition(":")
        getattr(importlib.import_module(module), function)(spec, lambda result: conn.send(dict(result)))
    except BaseException as exc:  # MemoryError and RuntimeError from the allocator included: record, then exit 1
        conn.send({"__error__": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]})
        conn.close()
        os._exit(1)
    conn.close()


def run_fresh(ctx, target: str, spec: dict, timeout: float, initial: dict) -> dict:
    """Run `target` on `spec` in a fresh forked process; the last result it reported, with its fate as `status`."""
    reader, writer = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child_entry, args=(target, spec, writer))
    process.start()  # the first start waits for the server to finish its imports: the clock starts after it
    started = time.perf_counter()
    writer.close()
    last, error, closed = dict(initial, status="no output"), None, False

    def drain(wait: float) -> None:
        nonlocal last, error, closed
        try:
            while reader.poll(wait):
                message = reader.recv()
                if "__error__" in message:
                    error = message["__error__"]
                else:
                    last = message
                wait = 0
        except (EOFError, OSError):  # the process closed its end: it is exiting
            closed = True

    while process.is_alive() and not closed and time.perf_counter() - started < timeout:
        drain(0.2)
    if not closed:
        drain(0)
    # A process that reported "ok" or closed its end has finished measuring, even if its exit takes a moment.
    timed_out = not closed and last["status"] != "ok" and process.is_alive()
    if timed_out:
        process.kill()
    process.join(60)
    if process.is_alive():
        process.kill()
        process.join()
    reader.close()
    last["wall_s"] = time.perf_counter() - started
    if timed_out:
        last["status"] = f"timeout after {timeout:g} s (stopped while {last['status']})"
    elif error is not None or process.exitcode != 0:
        how = error or f"exit code {process.exitcode} (a negative code is the signal that killed it)"
        last["status"] = f"failed while {last['status']}: {how}"
    return last


def machine_facts(threads: int, script: str) -> dict:
    from benchmarks.generation import machine_facts as generation_facts

    facts = generation_facts(threads)
    facts["command"] = " ".join([Path(sys.executable).name, "-m", script, *sys.argv[1:]])
    facts["peak_memory_resettable"] = reset_peak_rss()
    return facts


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_rows(header: tuple[str, ...], rows: list[tuple[str, ...]], left: tuple[int, ...]) -> None:
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(header))
    print("-" * len(line(header)))
    for row in rows:
        print(line(row))


# ----------------------------------------------------------------------------------------------------------------
# The operators
# ----------------------------------------------------------------------------------------------------------------


def build_operator(spec: dict):
    """(run, leaves, output shape) of one operator: run() computes the output from fixed inputs, leaves() lists the
    tensors that receive gradients."""
    import torch
    import torch.nn.functional as F

    name, length, dim, causal = spec["op"], spec["length"], spec["dim"], spec["mode"] == "causal"
    window, bias_dim = spec["window"], spec["position_bias_dim"]
    generator = torch.Generator().manual_seed(0)

    def leaf(*shape: int, std: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * std).requires_grad_()

    if name.startswith("aft-pytorch-"):
        return _build_aft_pytorch(name, length, dim, window, leaf)
    if name == "sdpa":
        heads = max(1, dim // spec["head_dim"])
        q, k, v = (leaf(1, heads, length, dim // heads) for _ in range(3))  # (B, H, T, Dh)

        def run():
            return F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=causal)

        return run, lambda: [q, k, v], q.shape
    from modeling_aft import ops

    if name == "conv":
        heads = spec["conv_heads"]
        q, v = leaf(1, length, heads, dim // heads), leaf(1, length, heads, dim // heads)  # (B, T, H, Dh)
        k = leaf(1, length, heads)  # (B, T, H): one key per head
        kernel = leaf(heads, spec["conv_kernel"], std=0.01)  # (H, S)
        return (lambda: ops.aft_conv1d(q, k, v, kernel, causal)), lambda: [q, k, v, kernel], q.shape
    q, k, v = (leaf(1, length, dim) for _ in range(3))  # (B, T, D)
    if name == "simple":
        return (lambda: ops.aft_simple(q, k, v, causal)), lambda: [q, k, v], q.shape
    if name in ("full", "local"):
        w = leaf(length, length, std=0.01)  # (T, T)
        if name == "full":
            return (lambda: ops.aft_full(q, k, v, w, causal)), lambda: [q, k, v, w], q.shape
        return (lambda: ops.aft_local(q, k, v, w, window, causal)), lambda: [q, k, v, w], q.shape
    u, w_v = leaf(length, bias_dim, std=0.01), leaf(length, bias_dim, std=0.01)  # (T, d')
    if name == "full-factorized":

        def run():
            return ops.aft_full_factorized(q, k, v, u, w_v, causal)

    else:  # local-factorized

        def run():
            near = ops.factorized_local_bias_blocks(u, w_v, window, causal)  # (nb, C, nK*C)
            return ops.aft_local_blocked(q, k, v, near, causal)

    return run, lambda: [q, k, v, u, w_v], q.shape


def _build_aft_pytorch(name: str, length: int, dim: int, window: int, leaf):
    import warnings

    import aft_pytorch
    from torch import nn

    warnings.filterwarnings("ignore", module="aft_pytorch")  # AFTLocal's own tensor-to-Parameter warning

    if name == "aft-pytorch-local":
        module = aft_pytorch.AFTLocal(max_seqlen=length, dim=dim, hidden_dim=dim, s=window)
    else:
        module = {"aft-pytorch-full": aft_pytorch.AFTFull, "aft-pytorch-simple": aft_pytorch.AFTSimple}[name](
            max_seqlen=length, dim=dim, hidden_dim=dim
        )
    for projection in ("to_q", "to_k", "to_v", "project"):  # time the mixing only, as for the operators above
        setattr(module, projection, nn.Identity())
    x = leaf(1, length, dim)  # (B, T, D)
    # AFTLocal swaps in a new wbias Parameter in every forward: list the module's parameters when asked.
    return (lambda: module(x)), lambda: [x, *module.parameters()], x.shape


def timed_runs(run: Callable[[], object], budget_s: float, repeats: int) -> tuple[float, list[float]]:
    """One warm-up call, then repeats while fewer than `repeats` and their sum is under `budget_s`."""
    start = time.perf_counter()
    run()
    warmup = time.perf_counter() - start
    times: list[float] = []
    while len(times) < repeats and (not times or sum(times) < budget_s):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return warmup, times


def measure_operator(spec: dict, report: Callable[[dict], None]) -> None:
    """One (operator, mode, pass, T) in this process; reports the result dict as it goes."""
    import torch

    result = {key: spec[key] for key in ("op", "mode", "pass", "length")}
    result["status"] = "warming up at a short length"
    report(result)
    # Fault in the library code the operator runs (tens of MB of RSS) before the peak is reset, so that the extra
    # memory is the operator's data.
    run, leaves, _ = build_operator(dict(spec, length=min(spec["length"], WARMUP_LENGTH)))
    run().sum().backward()
    del run, leaves
    result["status"] = "building the inputs"
    report(result)
    run, leaves, out_shape = build_operator(spec)
    grad_out = torch.randn(out_shape, generator=torch.Generator().manual_seed(1))

    if spec["pass"] == "forward":

        def measured():
            with torch.no_grad():
                run()

    else:

        def measured():
            for tensor in leaves():
                tensor.grad = None
            run().backward(grad_out)

    release_freed_memory()
    resettable = reset_peak_rss()
    result.update(base_rss_kib=current_rss_kib(), status="running")
    report(result)
    warmup, times = timed_runs(measured, spec["budget_s"], spec["repeats"])
    peak = peak_rss_kib(resettable)
    result.update(
        status="ok",
        time_s=min(times),
        times_s=times,
        warmup_s=warmup,
        peak_rss_kib=peak,
        extra_kib=peak - result["base_rss_kib"],
        memory_method="VmHWM reset before the pass" if resettable else "ru_maxrss of the whole process",
    )
    report(result)


# ----------------------------------------------------------------------------------------------------------------
# Planning: estimates and skips
# ----------------------------------------------------------------------------------------------------------------


def estimated_extra_bytes(op: str, length: int, dim: int) -> float:
    """A generous estimate of what one measurement adds over its inputs (float32), used only to skip what cannot
    fit. Causal aft_full keeps for backward the padded bias, exp of every rectangle and, per block of 128 queries,
    exp(K) and exp(K) V of every earlier key: about 5.5 T x T floats at D = 512, plus the bias gradient (its fast
    path keeps far less, but the estimate must hold for the blocked one too); the factorised form keeps nothing
    quadratic (blocks of 512 rows of U V^T at a time); dense local keeps w's gradient (T x T); aft-pytorch's AFTFull
    exp(w) twice and AFTLocal its bias as a Python list. The others: a few dozen (T, D) intermediates."""
    per_token = (64 if op in ("sdpa", "full", "full-factorized", "aft-pytorch-full") else 400) * dim
    square = {"full": 40, "full-factorized": 0, "local": 16, "aft-pytorch-full": 24, "aft-pytorch-local": 64}
    return per_token * length + square.get(op, 0) * length * length + 50e6


def plan(args) -> list[tuple[dict, str | None]]:
    """Every measurement as (identity, reason it is skipped or None), shortest T first so that a stopped run has
    every operator at the short lengths."""
    planned = []
    for length in sorted(set(args.lengths)):
        for op in args.ops:
            for mode in args.modes:
                if op in PYPI_OPS and mode == "causal":
                    continue  # aft-pytorch has no causal form
                for phase in PASSES:
                    base = {"op": op, "mode": mode, "pass": phase, "length": length}
                    planned.append((base, skip_reason(args, op, length)))
    return planned


def skip_reason(args, op: str, length: int) -> str | None:
    if op in PYPI_OPS and importlib.util.find_spec("aft_pytorch") is None:
        return "skipped: aft-pytorch is not installed (pip install aft-pytorch==0.2.2)"
    if op == "aft-pytorch-local" and length > args.aft_pytorch_local_max_length:
        return (f"skipped: AFTLocal builds its T x T bias in a Python loop; only up to "
                f"--aft-pytorch-local-max-length {args.aft_pytorch_local_max_length}")
    estimate = estimated_extra_bytes(op, length, args.dim)
    if estimate > args.memory_limit_gb * 1e9:
        return f"skipped: est. {estimate / 1e9:.1f} GB > --memory-limit-gb {args.memory_limit_gb}"
    return None


# ----------------------------------------------------------------------------------------------------------------
# Analysis
# ----------------------------------------------------------------------------------------------------------------


def memory_slopes(results: list[dict]) -> list[dict]:
    """Per (op, mode, pass): least-squares bytes per token of the extra memory, and extra(2T) / extra(T)."""
    slopes = []
    keys = sorted(
        {(r["op"], r["mode"], r["pass"]) for r in results},
        key=lambda k: (ALL_OPS.index(k[0]), MODES.index(k[1]), PASSES.index(k[2])),
    )
    for op, mode, phase in keys:
        points = {
            r["length"]: r["extra_kib"] * 1024.0
            for r in results
            if (r["op"], r["mode"], r["pass"]) == (op, mode, phase) and r["status"] == "ok"
        }
        if len(points) < 2:
            continue
        xs = sorted(points)
        mean_x = sum(xs) / len(xs)
        mean_y = sum(points[x] for x in xs) / len(xs)
        slope = sum((x - mean_x) * (points[x] - mean_y) for x in xs) / sum((x - mean_x) ** 2 for x in xs)
        doubled = [x for x in xs if 2 * x in points and points[x] > 0]
        ratio = points[2 * doubled[-1]] / points[doubled[-1]] if doubled else None
        slopes.append(
            {
                "op": op,
                "mode": mode,
                "pass": phase,
                "lengths": xs,
                "bytes_per_token": slope,
                "ratio_length": doubled[-1] if doubled else None,
                "ratio_2t_over_t": ratio,
                "linear": None if ratio is None else ratio <= LINEAR_RATIO,
                "goal": op in LINEAR_GOAL_OPS,
            }
        )
    return slopes


def print_table(results: list[dict]) -> None:
    rows = {}
    for r in results:
        row = rows.setdefault((r["op"], r["mode"], r["length"]), {})
        row[r["pass"]] = r
    sdpa = {(m, t): row for (op, m, t), row in rows.items() if op == "sdpa"}
    header = ("operator", "mode", "T", "fwd ms", "fwd+bwd ms", "x sdpa", "fwd MB", "fwd+bwd MB", "status")
    table = []
    for (op, mode, length), row in rows.items():
        fwd, train = row.get("forward", {}), row.get("forward+backward", {})
        ref = sdpa.get((mode, length), {}).get("forward+backward", {})
        ratio = train["time_s"] / ref["time_s"] if train.get("time_s") and ref.get("time_s") else None
        statuses = {p: row[p]["status"] for p in row if row[p]["status"] != "ok"}
        table.append((
            op,
            mode,
            str(length),
            fmt(fwd.get("time_s") and 1e3 * fwd["time_s"], ".2f"),
            fmt(train.get("time_s") and 1e3 * train["time_s"], ".2f"),
            fmt(ratio, ".2f"),
            fmt(fwd.get("extra_kib") and fwd["extra_kib"] / 1024, ".1f"),
            fmt(train.get("extra_kib") and train["extra_kib"] / 1024, ".1f"),
            "; ".join(f"{p}: {s}" for p, s in statuses.items()) or "ok",
        ))
    print_rows(header, table, left=(0, 1, 8))
    print("(MB: peak RSS of the pass over its inputs; x sdpa: forward+backward time over SDPA's, same mode and T)")


def print_slopes(slopes: list[dict]) -> None:
    print(f"\nMemory slope: extra peak memory against T (least squares), and extra(2T) / extra(T) at the longest "
          f"pair (linear: <= {LINEAR_RATIO}; quadratic tends to 4). Goal: local (factorised), simple and conv linear.")
    if not slopes:
        print("  not measured (needs two lengths of an operator)")
    for s in slopes:
        ratio = "-" if s["ratio_2t_over_t"] is None else f"{s['ratio_2t_over_t']:.2f} at {s['ratio_length']}"
        verdict = {None: "not measured", True: "linear", False: "NOT linear"}[s["linear"]]
        if s["goal"] and s["linear"] is not None:
            verdict += " (goal met)" if s["linear"] else " (goal MISSED)"
        print(f"  {s['op']:<18} {s['mode']:<13} {s['pass']:<16} {s['bytes_per_token']:>12.0f} bytes/token   "
              f"2T/T {ratio:<14} {verdict}")


def log_axes(ax, lengths: list[int]) -> None:
    """Log-log axes with the measured lengths as ticks, numbers written plainly (1024, 0.5, not 2^10, 5 x 10^-1)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(lengths)
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(NullFormatter())


def plot(results: list[dict], path: Path, dim: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(15, 10))
    panels = [("time_s", 1e3, "ms"), ("extra_kib", 1 / 1024, "extra peak MB")]
    colours = {op: plt.cm.tab10(i % 10) for i, op in enumerate(ALL_OPS)}
    for column, phase in enumerate(PASSES):
        for row, (key, scale, label) in enumerate(panels):
            ax = axes[row][column]
            for op in ALL_OPS:
                for mode in MODES:
                    points = sorted(
                        (r["length"], r[key] * scale)
                        for r in results
                        if (r["op"], r["mode"], r["pass"]) == (op, mode, phase) and r["status"] == "ok"
                        and r[key] * scale > 0
                    )
                    if points:
                        xs, ys = zip(*points)
                        ax.plot(xs, ys, marker="o", color=colours[op], linestyle="-" if mode == "causal" else "--",
                                label=f"{op} ({mode})")
            log_axes(ax, sorted({r["length"] for r in results}))
            ax.set_xlabel("T")
            ax.set_ylabel(label)
            ax.set_title(f"{phase}: {label}")
            ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.suptitle(f"AFT operators against SDPA and aft-pytorch, CPU, batch 1, D = {dim}, float32 "
                 "(solid: causal, dashed: bidirectional)")
    fig.tight_layout(rect=(0, 0, 0.82, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: str, report: dict, plotter: Callable[[Path], None]) -> None:
    """<out>.json written to a temporary name and renamed (never half-written), then <out>.png."""
    path = Path(out)
    if not path.is_absolute():
        path = Path.cwd() / path
    path.parent.mkdir(parents=True, exist_ok=True)
    json_path, png_path = path.with_suffix(".json"), path.with_suffix(".png")
    partial = json_path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(report, indent=2) + "\n")
    partial.replace(json_path)
    try:
        plotter(png_path)
    except ImportError:
        print("matplotlib is not installed: no plot")
        png_path = None
    print(f"wrote {json_path}" + (f" and {png_path}" if png_path else ""))


# ----------------------------------------------------------------------------------------------------------------
# The driver
# ----------------------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=DEFAULT_LENGTHS)
    parser.add_argument("--dim", type=int, default=512, help="channels D of q, k, v")
    parser.add_argument("--ops", nargs="+", choices=ALL_OPS, default=list(ALL_OPS))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--out", default="benchmarks/results/operators", help="path of the results, no suffix")
    parser.add_argument("--window", type=int, default=32, help="AFT-local's window s (aft-pytorch AFTLocal's too)")
    parser.add_argument("--position-bias-dim", type=int, default=256, help="d' of the factorised biases U V^T")
    parser.add_argument("--conv-heads", type=int, default=8)
    parser.add_argument("--conv-kernel", type=int, default=11, help="AFT-conv kernel size (odd)")
    parser.add_argument("--head-dim", type=int, default=64, help="SDPA's head width")
    parser.add_argument("--aft-pytorch-local-max-length", type=int, default=1024)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of repeats per measurement (after warm-up)")
    parser.add_argument("--repeats", type=int, default=5, help="at most this many timed repeats")
    parser.add_argument("--memory-limit-gb", type=float, default=16.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per measurement")
    parser.add_argument("--threads", type=int, default=cores())
    args = parser.parse_args(argv)
    if "conv" in args.ops and (args.dim % args.conv_heads or args.conv_kernel % 2 == 0):
        parser.error(f"--conv-heads {args.conv_heads} must divide --dim {args.dim} and --conv-kernel "
                     f"{args.conv_kernel} must be odd (the bidirectional kernel is centred)")
    if "sdpa" in args.ops and args.dim > args.head_dim and args.dim % args.head_dim:
        parser.error(f"--head-dim {args.head_dim} must divide --dim {args.dim} (SDPA of the same width)")
    if min(args.lengths) < 1 or args.repeats < 1:
        parser.error(f"--lengths {args.lengths} and --repeats {args.repeats} must be positive")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    ctx = fork_server(PRELOAD)
    facts = machine_facts(args.threads, "benchmarks.operators")
    print(f"torch {facts['torch']}, {args.threads} threads, {facts.get('cpu', '?')}, {facts.get('memory_gib', '?')} "
          f"GiB; D = {args.dim}, window {args.window}, d' = {args.position_bias_dim}, conv {args.conv_heads} heads "
          f"x kernel {args.conv_kernel}, SDPA heads of {args.head_dim}", flush=True)
    settings = dict(vars(args))
    limit = args.memory_limit_gb * 1e9
    results, failed, started = [], set(), time.perf_counter()
    for base, reason in plan(args):
        key = (base["op"], base["mode"], base["pass"])
        if reason is None and key in failed:
            reason = "skipped: failed or timed out at a shorter T"
        if reason is not None:
            results.append(dict(base, status=reason))
            continue
        spec = dict(base, **{k: settings[k] for k in ("dim", "window", "position_bias_dim", "conv_heads",
                                                      "conv_kernel", "head_dim", "repeats", "threads")})
        spec.update(budget_s=args.budget, data_limit_bytes=int(limit + 2e9))
        load = os.getloadavg()[0]
        label = f"{base['op']} {base['mode']} {base['pass']} T={base['length']}"
        print(f"[{time.perf_counter() - started:7.1f} s] {label} (load {load:.2f}) ...", end=" ", flush=True)
        result = run_fresh(ctx, "benchmarks.operators:measure_operator", spec, args.timeout, base)
        result.update(load_before=load, estimated_extra_bytes=estimated_extra_bytes(base["op"], base["length"],
                                                                                    args.dim))
        results.append(result)
        if result["status"] != "ok":
            failed.add(key)
        print(f"{fmt(result.get('time_s') and 1e3 * result['time_s'], '.2f')} ms, "
              f"{fmt(result.get('extra_kib') and result['extra_kib'] / 1024, '.1f')} MB  {result['status']}",
              flush=True)
    wall = time.perf_counter() - started
    print()
    print_table(results)
    slopes = memory_slopes(results)
    print_slopes(slopes)
    print(f"\nwall time {wall:.0f} s")
    report = dict(machine=facts, settings=settings, method=__doc__, wall_s=wall, results=results, slopes=slopes)
    write_report(args.out, report, lambda path: plot(results, path, args.dim))


if __name__ == "__main__":
    main()
