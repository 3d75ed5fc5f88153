# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The command lines: the demo (the README's main job) and text generation with its streamer."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from modeling_aft import AFTByteTokenizer, AFTConfig, AFTForCausalLM
from tests.helpers import randomize
from training import demo

REPO = Path(__file__).resolve().parents[1]


def test_demo_saves_reloads_and_decodes_every_variant(tmp_path, capsys):
    assert demo.main(["--output-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "all 8 models reload" in printed
    for variant in ("full", "local", "simple", "conv"):
        assert (tmp_path / f"aft-{variant}-text" / "model.safetensors").is_file()
        assert (tmp_path / f"aft-{variant}-text" / "tokenizer_config.json").is_file()
        assert (tmp_path / f"aft-{variant}-image" / "preprocessor_config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def _run_generate(*args):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONIOENCODING="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "training.generate", *args], cwd=REPO, env=env, capture_output=True, timeout=120
    )


def test_generate_streams_the_greedy_continuation(tmp_path):
    config = AFTConfig.from_preset("cpu-text-conv", hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    model = randomize(AFTForCausalLM(config)).eval()
    tokenizer = AFTByteTokenizer()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    prompt = "Attention free"
    result = _run_generate(str(tmp_path), "--prompt", prompt, "--greedy", "--max-new-tokens", "12")
    assert result.returncode == 0, result.stderr.decode()
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=0)
    text = tokenizer.decode(expected[0], skip_special_tokens=True)
    assert result.stdout.decode("utf-8").rstrip("\n") == text


def test_generate_refuses_a_folder_without_a_model(tmp_path):
    result = _run_generate(str(tmp_path), "--prompt", "x")
    assert result.returncode != 0
    assert "config.json" in result.stderr.decode()
