# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Helpers shared by the model tests."""

import os
import textwrap
from pathlib import Path

import torch

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


def reset_accelerate_state() -> None:
    """Accelerate keeps its state in process-wide singletons; an in-process training run after another needs them
    cleared, as a new process would have them."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    PartialState._reset_state()


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
