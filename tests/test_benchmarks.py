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
