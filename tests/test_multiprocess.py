# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The FSDP configuration on CPU processes. torch 2.13 shards on CPU with gloo, but Accelerate 1.15 does not: it
refuses training/accelerate_configs/fsdp.yaml there, and with the device-only options turned off it runs plain DDP
under the FSDP name. These tests pin both, so that the Accelerate release that really runs FSDP on CPU fails them:
then 2-process FSDP losses can be checked against 1 process, as for DDP. The file itself is checked with Accelerate's
own parser in tests/test_training_finetune.py."""

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pytest
import torch
from accelerate.utils import FullyShardedDataParallelPlugin

from tests.test_training_finetune import CONFIGS, _launch_env

ROOT = Path(__file__).resolve().parents[1]
REFUSAL = ("There are currently no available devices found, must be one of 'XPU', 'CUDA', 'MLU', 'NPU', 'MUSA', or "
           "'HPU'.")

pytestmark = pytest.mark.skipif(torch.accelerator.is_available(),
                                reason="what Accelerate does on CPU-only machines; with a GPU, FSDP is its own")


def test_accelerate_refuses_the_fsdp_config_on_cpu_and_the_config_says_so():
    _, env = _launch_env("fsdp")  # what `accelerate launch --config_file fsdp.yaml` hands each process
    assert env["FSDP_SYNC_MODULE_STATES"] == "true" and env["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "true"
    with mock.patch.dict(os.environ, env), pytest.raises(RuntimeError) as error:
        FullyShardedDataParallelPlugin()  # built by every Accelerator that the launch environment asks for FSDP
    assert str(error.value) == REFUSAL
    note = " ".join(line.lstrip("# ") for line in (CONFIGS / "fsdp.yaml").read_text().splitlines()
                    if line.startswith("#"))
    assert REFUSAL in note, "the note in fsdp.yaml should quote Accelerate's refusal"


PROBE = textwrap.dedent(
    """
    import torch
    from accelerate import Accelerator

    accelerator = Accelerator()
    model = accelerator.prepare(torch.nn.Linear(4, 4))
    # One file per process: two processes printing to one pipe can interleave their lines.
    with open(f"{__file__}.{accelerator.process_index}", "w") as out:
        print(accelerator.process_index, accelerator.num_processes, accelerator.distributed_type.value,
              type(model).__name__, file=out)
    """
)


def _free_port() -> int:
    with socket.socket() as s:  # other test runs on this machine may hold torchrun's default 29500
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_without_its_device_only_options_the_fsdp_config_runs_two_cpu_processes_as_ddp(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    # ACCELERATE_USE_CPU: without it the two processes each run alone (DistributedType.NO); `--cpu` instead would
    # start one process only.
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / "fsdp.yaml"),
              "--num_processes", "2", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(_free_port()), "--fsdp_sync_module_states", "false",
              "--fsdp_cpu_ram_efficient_loading", "false", str(probe)]
    run = subprocess.run(launch, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = sorted(Path(f"{probe}.{rank}").read_text().split() for rank in range(2))
    assert ranks == [["0", "2", "MULTI_CPU", "DistributedDataParallel"],
                     ["1", "2", "MULTI_CPU", "DistributedDataParallel"]], run.stdout


def test_a_trainer_launched_with_fsdp_on_cpu_stops_in_one_line(monkeypatch, capsys):
    """Instead of Accelerate's traceback (or plain DDP under the FSDP name), the trainers say what to launch."""
    import argparse

    from training import engine

    _, env = _launch_env("fsdp")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    args = argparse.Namespace(output_dir="unused", no_tensorboard=True, mixed_precision="no", grad_accum=1)
    with pytest.raises(SystemExit) as stopped:
        engine.main_guard(lambda: engine.make_accelerator(args))
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: FSDP") and "--multi_gpu" in err and err.count("\n") == 1
