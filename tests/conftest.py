# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""What several test files share: fixtures (found by pytest in every test file), and helpers and constants, which
test files import through tests.helpers (`from tests.helpers import randomize`)."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------

# The head of a script run in a subprocess that must not import this package: a saved folder's own code (copied
# next to the weights by save_pretrained, loaded with trust_remote_code) has to be enough.
BLOCK_PACKAGE = textwrap.dedent(
    """
    import importlib.abc
    import sys


    class BlockPackage(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "modeling_aft" or name.startswith("modeling_aft."):
                raise ImportError(f"{name} imported, but the saved folder's own code should be used")
            return None


    sys.meta_path.insert(0, BlockPackage())
    """
)

# --config-overrides of a tiny AFT-local language model: trains in seconds at --seq-len 64.
TINY_TEXT_OVERRIDES = ("num_hidden_layers=1,hidden_size=32,intermediate_size=64,position_bias_dim=8,"
                       "max_position_embeddings=64,local_window=8")


@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int = 0, keep=()) -> torch.nn.Module:
    """Move every parameter away from its initial value, so that no part of the model is trivially 0 or 1.

    Position biases and conv gamma/beta get values of order 1 (at init they are ~0.01 and exactly 0, which would
    make full, local and conv indistinguishable from simple); parameters whose name contains a string in `keep`
    are left alone.
    """
    gen = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        if any(k in name for k in keep):
            continue
        noise = torch.randn(param.shape, generator=gen, dtype=param.dtype)
        if "position_bias" in name or "conv_gamma" in name or "conv_beta" in name:
            param.copy_(0.5 * noise)
        elif "conv_weight" in name:
            param.copy_(noise)
        else:
            param.add_(0.05 * noise)
    return model


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module of many tiny forward passes: on a busy shared machine, starting and syncing
    threads costs more than the work (use with pytestmark = pytest.mark.usefixtures("one_thread"))."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def record_fast_path(monkeypatch) -> list:
    """Wrap modeling_aft.ops._fast_aft so that every operator call appends whether its fast path ran."""
    from modeling_aft import ops

    taken = []
    original = ops._fast_aft

    def spy(*args, **kwargs):
        y = original(*args, **kwargs)
        taken.append(y is not None)
        return y

    monkeypatch.setattr(ops, "_fast_aft", spy)
    return taken


# ----------------------------------------------------------------------------------------------------------------
# Training runs in-process
# ----------------------------------------------------------------------------------------------------------------


def reset_accelerate_state() -> None:
    """Accelerate keeps its state in process-wide singletons; an in-process training run after another needs them
    cleared, as a new process would have them."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    PartialState._reset_state()


@pytest.fixture
def fresh_accelerate_state():
    """Each in-process run builds its own Accelerator; the library keeps a singleton state between them."""
    reset_accelerate_state()
    yield
    reset_accelerate_state()


def metrics_records(out: Path) -> list[dict]:
    """The lines of a run's metrics.jsonl."""
    import json

    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def train_losses(out: Path) -> list[float]:
    return [r["train/loss"] for r in metrics_records(out) if "train/loss" in r]


# ----------------------------------------------------------------------------------------------------------------
# Commands: their errors, and runs in a subprocess
# ----------------------------------------------------------------------------------------------------------------

# A tqdm progress bar ("Writing model shards: 100%|...| 1/1 [00:00<00:00, ...]", datasets' "Generating train
# split: 24 examples [00:00, ...]"): drawn on stderr by libraries, not a line of a command's message.
_PROGRESS_BAR = re.compile(r"\[\d\d:\d\d[<,\]]")


def error_of(main, argv, capsys) -> str:
    """Run a command's main in-process; it must end with exit status 2 (raised, as argparse and the trainers do, or
    returned). Returns what it printed on stderr."""
    capsys.readouterr()  # what earlier calls printed
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    return err


def one_line_error(main, argv, capsys) -> str:
    """As error_of, and stderr is one line `error: ...`, no traceback (progress bars drawn before it aside)."""
    err = error_of(main, argv, capsys)
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and not _PROGRESS_BAR.search(line)]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0] + "\n"


def offline_env(**extra: str) -> dict[str, str]:
    """The environment of a command a test starts: this checkout importable, one thread, no Hub."""
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", **extra)


def run_command(args: list[str], env_extra: dict | None = None, timeout: float = 600, **kwargs):
    """Run `args` from the repository root in offline_env (plus `env_extra`); output captured, as text unless
    text=False."""
    kwargs.setdefault("text", True)
    return subprocess.run(args, cwd=REPO, env=offline_env(**(env_extra or {})), capture_output=True, timeout=timeout,
                          **kwargs)


def run_module(module: str, *args: str, **kwargs):
    """`python -m module args...` through run_command."""
    return run_command([sys.executable, "-m", module, *args], **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture
def umask():
    """Set the process umask for one test (it is process-wide: restore it)."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


def assert_nothing_written(folder: Path, keep=()) -> None:
    """A write that failed left nothing in `folder` but the names in `keep`: no output, no temporary."""
    left = sorted(p.name for p in folder.iterdir() if p.name not in keep)
    assert left == [], f"a failed write left {left} behind"


def no_output_left(out: Path) -> bool:
    """Neither `out` nor a temporary of it (training.atomic's `.tmp-<name>*`) beside it."""
    return not os.path.lexists(out) and not list(out.parent.glob(f".tmp-{out.name}*"))


# ----------------------------------------------------------------------------------------------------------------
# The Hub
# ----------------------------------------------------------------------------------------------------------------

# Variables that would let a subprocess find a real login, a real Hub or a cache that is not the test's own.
HUB_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                 "HF_HUB_CACHE", "HF_MODULES_CACHE", "HF_ENDPOINT", "HF_HOME", "HF_OIDC_RESOURCE")


def hub_env(hub, home: Path, token: str | None) -> dict:
    """A child environment that sees only the test Hub (tests.hub_server.HubServer), an empty HF_HOME and (if given)
    the token."""
    env = {key: value for key, value in os.environ.items() if key not in HUB_VARIABLES}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(home), HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1")
    if token:
        env["HF_TOKEN"] = token
    home.mkdir(parents=True, exist_ok=True)
    return env
