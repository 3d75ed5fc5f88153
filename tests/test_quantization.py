# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""CPU quantisation of the shipped AFT-local byte LM (issue 14): bitsandbytes 8-bit and 4-bit and torchao int8
weight-only load through from_pretrained, replace the blocks' linear layers, generate with the recurrent state, and
keep bits per character on a test slice within a small margin of float32."""

from pathlib import Path

import pytest
import torch

from benchmarks import quantization
from training.data_text import load_text
from training.evaluate_text import evaluate_bits_per_byte

SHIPPED = Path(__file__).resolve().parents[1] / "pretrained" / "aft-local-wikipedia"
TEST_BYTES = 4097  # 16 windows of 256
MARGIN = {"bnb-int8": 0.02, "bnb-nf4": 0.15, "torchao-int8-weight-only": 0.02}


# Tiny models on a shared 2-core machine: one thread (tests/conftest.py) runs them faster than two.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def test_bytes():
    return load_text(None).test[:TEST_BYTES]


@pytest.fixture(scope="module")
def float32(test_bytes):
    model = quantization.load(SHIPPED, "float32")
    with torch.no_grad():
        bpc = evaluate_bits_per_byte(model, test_bytes, 256, 16)["bpc"]
    return {"bpc": bpc, "memory": quantization.memory_bytes(model)}


def _is_quantized(linear: torch.nn.Module, name: str) -> bool:
    if name.startswith("bnb"):
        import bitsandbytes as bnb

        return isinstance(linear, bnb.nn.Linear8bitLt if name == "bnb-int8" else bnb.nn.Linear4bit)
    from torchao.quantization import Int8Tensor

    return isinstance(linear.weight, Int8Tensor)


@pytest.mark.parametrize("name", ["bnb-int8", "bnb-nf4", "torchao-int8-weight-only"])
def test_quantized_model_loads_generates_and_keeps_its_bits_per_character(name, float32, test_bytes):
    model = quantization.load(SHIPPED, name)
    mixer = model.model.layers[0].mixer
    assert all(_is_quantized(layer, name) for layer in (mixer.q_proj, mixer.out_proj, model.model.layers[0].mlp.fc1))
    assert quantization.memory_bytes(model) < float32["memory"]
    with torch.no_grad():
        ids = torch.tensor([list(quantization.PROMPT)])  # (1, P)
        out = model.generate(ids, max_new_tokens=24, min_new_tokens=24, do_sample=False)
        assert out.shape == (1, ids.shape[1] + 24) and out[0, : ids.shape[1]].tolist() == ids[0].tolist()
        bpc = evaluate_bits_per_byte(model, test_bytes, 256, 16)["bpc"]
    assert abs(bpc - float32["bpc"]) < MARGIN[name], (name, bpc, float32["bpc"])
    assert bpc != float32["bpc"]  # the weights really are other numbers
