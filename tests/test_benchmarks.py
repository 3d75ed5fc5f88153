# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The benchmark scripts keep running (tiny settings; the numbers are measured by running them, not here)."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_generation_benchmark_runs_and_writes_its_json(tmp_path):
    out = tmp_path / "generation"
    command = [sys.executable, "-m", "benchmarks.generation", "--contexts", "32", "64", "--new-tokens", "4"]
    command += ["--variants", "simple", "local", "--out", str(out)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.with_suffix(".json").read_text())
    measured = {(r["model"], r["context"]) for r in data["results"] if r["status"] == "ok"}
    assert {(m, c) for m in ("simple", "local", "gpt2") for c in (32, 64)} <= measured
    assert all(r["decode_ms_per_token"] > 0 for r in data["results"] if r["status"] == "ok")
    assert "Goal 1" in result.stdout and "Goal 2" in result.stdout


def test_decode_state_benchmark_runs_and_writes_its_json(tmp_path):
    out = tmp_path / "decode_state"
    command = [sys.executable, "-m", "benchmarks.decode_state", "--short", "16", "--long", "64", "--rounds", "1"]
    command += ["--steps", "2", "--variants", "simple", "conv", "--baseline", "--out", str(out)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.with_suffix(".json").read_text())["results"]
    assert [r["model"] for r in rows] == ["simple", "conv", "gpt2"]
    assert all(r["median_ms_short"] > 0 and r["median_ms_long"] > 0 for r in rows)


def test_prefill_state_benchmark_runs_and_writes_its_json(tmp_path):
    out = tmp_path / "prefill_state"
    command = [sys.executable, "-m", "benchmarks.prefill_state", "--prompt", "32", "--held", "32", "--long", "96"]
    command += ["--chunk", "32", "--rounds", "1", "--stepwise", "2", "--variants", "local", "--out", str(out)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(out.with_suffix(".json").read_text())
    assert [g["variant"] for g in data["goals"]] == ["local"] and data["settings"]["chunk"] == 32
    assert [(m["context"], m["chunked"]) for m in data["memory"]] == [(32, True), (96, True), (96, False)]
    assert all(m["peak_rss_kib"] > 0 for m in data["memory"]) and data["speed"][0]["on_state_s"] > 0
    assert "goals:" in result.stdout


# ----------------------------------------------------------------------------------------------------------------
# benchmarks.operators and benchmarks.train_step (issue 6)
# ----------------------------------------------------------------------------------------------------------------


def _naive_slope(points: dict) -> float:
    """Least-squares slope of y against x, written out in float64 sums (independent of the script's own)."""
    n = len(points)
    sx, sy = sum(points), sum(points.values())
    sxx, sxy = sum(x * x for x in points), sum(x * y for x, y in points.items())
    return (n * sxy - sx * sy) / (n * sxx - sx * sx)


def test_memory_slope_tells_linear_from_quadratic_growth():
    from benchmarks.operators import memory_slopes

    lengths = [512, 1024, 2048, 4096]
    rows = []
    for op, extra in (("simple", lambda t: 3e6 + 5000.0 * t), ("full", lambda t: 1e6 + 40.0 * t * t)):
        for t in lengths:
            rows.append({"op": op, "mode": "causal", "pass": "forward", "length": t, "status": "ok",
                         "extra_kib": extra(t) / 1024})
    rows.append({"op": "conv", "mode": "causal", "pass": "forward", "length": 512, "status": "ok", "extra_kib": 1.0})
    slopes = {s["op"]: s for s in memory_slopes(rows)}
    assert set(slopes) == {"simple", "full"}  # one point of conv gives no slope
    simple, full = slopes["simple"], slopes["full"]
    assert abs(simple["bytes_per_token"] - 5000.0) < 1e-6 and simple["linear"] and simple["goal"]
    assert simple["ratio_length"] == 2048
    assert abs(simple["ratio_2t_over_t"] - (3e6 + 5000.0 * 4096) / (3e6 + 5000.0 * 2048)) < 1e-12
    assert full["linear"] is False and not full["goal"]
    expected = _naive_slope({t: 1e6 + 40.0 * t * t for t in lengths})
    assert abs(full["bytes_per_token"] - expected) < 1e-6 * expected


def _band_pairs_naive(length: int, reach: int) -> int:
    return sum(1 for t in range(length) for u in range(length) if 0 <= t - u < reach)


def test_train_step_flop_count_against_hand_counts():
    from benchmarks.train_step import band_pairs, build_model, matmul_parameters, model_shape, step_flops

    for length, reach in ((1, 1), (5, 3), (31, 32), (32, 32), (100, 7)):
        assert band_pairs(length, reach) == _band_pairs_naive(length, reach)
    width, layers, vocab, length = 32, 2, 256, 64
    # Linear layers by hand: q, k, v, out (4 D^2; conv's k is D x 8 heads) + MLP 2 x 4 D^2 per layer, the LM head.
    hand = {
        "simple": layers * 12 * width**2 + width * vocab,
        "local": layers * 12 * width**2 + width * vocab,
        "full": layers * 12 * width**2 + width * vocab,
        "conv": layers * (11 * width**2 + 8 * width) + width * vocab,
        "gpt2": layers * 12 * width**2 + width * vocab,  # c_attn 3 D^2, c_proj D^2, MLP 8 D^2
        "rwkv": layers * 13 * width**2 + width * vocab,  # key, value, receptance, output; MLP key, value, receptance
    }
    causal = sum(1 for t in range(length) for u in range(t + 1))
    mixing = {  # forward FLOPs of one layer's mixing, by hand
        "simple": 0,
        "rwkv": 0,
        "gpt2": 4 * width * causal,
        "full": (4 * width + 2 * 256) * causal,  # w = U V^T is formed over the causal pairs only
        "local": (4 * width + 2 * 256) * _band_pairs_naive(length, 32),
        "conv": 2 * (width + 8) * _band_pairs_naive(length, 11),
    }
    for name, params in hand.items():
        model = build_model(name, length, width, layers)
        assert matmul_parameters(model) == params, name
        flops = step_flops(name, length, width, layers, params, model_shape(name, model))
        assert flops["flops"] == 6 * params * length + 3 * layers * mixing[name], name


def _run(module: str, args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    command = [sys.executable, "-m", module, *args]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})))
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_operators_benchmark_runs_and_writes_its_json(tmp_path):
    out = tmp_path / "operators"
    ops = ["local-factorized", "simple", "sdpa", "aft-pytorch-simple"]
    result = _run("benchmarks.operators", ["--lengths", "32", "64", "--dim", "32", "--ops", *ops, "--threads", "1",
                                           "--budget", "0.01", "--repeats", "2", "--out", str(out)])
    data = json.loads(out.with_suffix(".json").read_text())
    assert {"machine", "settings", "method", "results", "slopes"} <= set(data)
    assert out.with_suffix(".png").stat().st_size > 0
    measured = {(r["op"], r["mode"], r["pass"], r["length"]) for r in data["results"] if r["status"] == "ok"}
    modes = {op: ("bidirectional",) if op.startswith("aft-pytorch") else ("causal", "bidirectional") for op in ops}
    expected = {(op, m, p, t) for op in ops for m in modes[op] for p in ("forward", "forward+backward")
                for t in (32, 64)}
    assert measured == expected  # every planned measurement ran, and aft-pytorch never runs causal
    for r in data["results"]:
        assert 0 < r["time_s"] == min(r["times_s"]) and len(r["times_s"]) <= 2
        assert r["peak_rss_kib"] - r["base_rss_kib"] == r["extra_kib"] >= 0
    slopes = {(s["op"], s["mode"], s["pass"]): s for s in data["slopes"]}
    assert set(slopes) == {(op, m, p) for op, m, p, _ in expected}
    for (op, mode, phase), s in slopes.items():
        points = {r["length"]: 1024.0 * r["extra_kib"] for r in data["results"]
                  if (r["op"], r["mode"], r["pass"]) == (op, mode, phase)}
        assert abs(s["bytes_per_token"] - _naive_slope(points)) <= 1e-6 * max(1.0, abs(s["bytes_per_token"]))
        assert s["goal"] == (op in ("local-factorized", "simple"))
    assert "Memory slope" in result.stdout and "x sdpa" in result.stdout


def test_train_step_benchmark_runs_and_prints_the_goals(tmp_path):
    from benchmarks.train_step import step_flops

    out = tmp_path / "train_step"
    # Two layers: transformers' RWKV initialisation divides by num_hidden_layers - 1. --compile with
    # TORCHDYNAMO_DISABLE=1 (torch.compile becomes a pass-through) tests the flag's plumbing without a minute of
    # compilation per measurement (a real compile works on this CPU: ~75 s for the first step of a tiny model).
    args = ["--lengths", "32", "64", "--width", "32", "--layers", "2", "--variants", "local", "simple", "--compile",
            "--threads", "1", "--matmul-size", "128", "--steps", "2", "--out", str(out)]
    result = _run("benchmarks.train_step", args, env={"TORCHDYNAMO_DISABLE": "1"})
    data = json.loads(out.with_suffix(".json").read_text())
    assert {"machine", "settings", "method", "matmul_rates", "matmul_rate_gflops", "results", "goals"} <= set(data)
    assert out.with_suffix(".png").stat().st_size > 0
    assert [r["when"] for r in data["matmul_rates"]] == ["before", "after"]
    rate = data["matmul_rate_gflops"]
    assert rate == max(r["gflops"] for r in data["matmul_rates"]) > 0
    rows = {(r["model"], r["length"]): r for r in data["results"]}
    assert set(rows) == {(m, t) for m in ("local", "simple", "gpt2", "rwkv") for t in (32, 64)}
    for (name, length), r in rows.items():
        assert r["status"] == "ok", r
        assert r["compiled"] == (name in ("local", "simple"))  # only the AFT models are compiled
        assert 0 < r["step_s"] == min(r["steps_s"]) and len(r["steps_s"]) <= 2
        assert abs(r["tokens_per_s"] - length / r["step_s"]) < 1e-9 * r["tokens_per_s"]
        assert r["peak_rss_kib"] >= r["model_rss_kib"] > 0
        flops = step_flops(name, length, 32, 2, r["matmul_params"], r["shape"])["flops"]
        assert r["flops"] == flops
        assert abs(r["matmul_fraction"] - flops / r["step_s"] / (rate * 1e9)) < 1e-9
    time_ratio = rows["local", 64]["step_s"] / rows["gpt2", 64]["step_s"]
    assert abs(data["goals"]["at_4096"]["local"]["time"] - time_ratio) < 1e-12
    for line in ("local/simple/conv at 4096: time x GPT-2 (goal <= 0.6), memory x GPT-2 (goal <= 0.9)",
                 "local/simple/conv at 16384: time x GPT-2 (goal <= 0.2)",
                 "full: time x GPT-2 at each T (goal <= 1.2)",
                 "matmul-rate fraction at T >= 1024 (goal >= 0.6",
                 "[4096 not measured: at 64 instead]",
                 "aft-local (compiled)"):
        assert line in result.stdout
