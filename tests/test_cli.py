# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The command lines: the demo (the README's main job), text generation with its streamer, and the trainers' errors
about their output folder (a file there, a full disk)."""

import errno
import importlib
import sys

import pytest
import torch

from modeling_aft import AFTByteTokenizer, AFTConfig, AFTForCausalLM
from tests.helpers import one_line_error, randomize, run_command, run_module
from training import demo


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
    return run_module("training.generate", *args, env_extra={"PYTHONIOENCODING": "utf-8"}, timeout=120, text=False)


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


# The trainers' output folder and a full disk: one line `error: ...`, exit 2, nothing half-written.

TINY_TEXT = ["--seq-len", "32", "--batch-size", "4", "--warmup-steps", "1", "--eval-every", "100", "--save-every", "2",
             "--eval-bytes", "512", "--skip-final-eval", "--sample-bytes", "0", "--no-progress", "--no-tensorboard",
             "--config-overrides", "num_hidden_layers=1,hidden_size=16,intermediate_size=32,position_bias_dim=4,"
             "max_position_embeddings=32,local_window=4"]


@pytest.mark.parametrize("trainer", ["train_text", "train_pixels", "train_image"])
def test_an_output_dir_that_is_a_file_is_refused_in_one_line(trainer, tmp_path, capsys, fresh_accelerate_state):
    main = importlib.import_module(f"training.{trainer}").main
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    err = one_line_error(main, ["--output-dir", str(taken), "--max-steps", "1"], capsys)
    assert f"--output-dir {taken} is a file, not a folder" in err
    err = one_line_error(main, ["--output-dir", str(taken / "run"), "--max-steps", "1"], capsys)
    assert f"{taken} is a file; pass another --output-dir" in err
    assert taken.read_text() == "not a folder"


def test_the_text_trainer_command_prints_no_traceback_for_a_file_as_output_dir(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("")
    result = run_module("training.train_text", "--output-dir", str(taken), *TINY_TEXT, timeout=300)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: --output-dir {taken} is a file")


def test_a_full_disk_during_a_checkpoint_stops_in_one_line_and_keeps_the_earlier_checkpoint(
        tmp_path, capsys, monkeypatch, fresh_accelerate_state):
    import accelerate.checkpointing

    from training import engine, train_text

    real_save = accelerate.checkpointing.save

    def full_at_step_4(obj, path, *args, **kwargs):
        if ".tmp-checkpoint-4" in str(path) and "optimizer" in str(path):  # the weights went in; then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(accelerate.checkpointing, "save", full_at_step_4)
    out = tmp_path / "run"
    err = one_line_error(train_text.main, ["--output-dir", str(out), "--max-steps", "4", *TINY_TEXT], capsys)
    checkpoints = out / "checkpoints"
    assert f"could not write checkpoint-4 into {checkpoints}: the disk is full (" in err
    assert " free on the disk of " in err and " needed)" in err and "free at least " in err
    assert f"{checkpoints / 'checkpoint-2'} is intact: --resume continues from it" in err
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2"]  # no .tmp-checkpoint-4 left
    assert engine.checkpoint_problems(checkpoints / "checkpoint-2") == ([], True)
    assert not (out / "model").exists()


def test_a_full_disk_during_the_final_save_leaves_no_half_folder(tmp_path, capsys, monkeypatch,
                                                                 fresh_accelerate_state):
    from training import engine, train_text

    real_write = engine.write_json_atomic

    def full_at_results(path, obj):
        if path.name == "results.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, obj)

    monkeypatch.setattr(engine, "write_json_atomic", full_at_results)
    out = tmp_path / "run"
    err = one_line_error(train_text.main, ["--output-dir", str(out), "--max-steps", "2", *TINY_TEXT], capsys)
    assert f"could not write model into {out}: the disk is full" in err
    assert f"conversion.checkpoint_to_hf {out / 'checkpoints' / 'checkpoint-2'} {out / 'model'}" in err
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")] and not (out / "model").exists()


# training.generate: every failure is one line `error: ...` and exit 2, before any text is printed.


def _saved_local_model(folder, max_positions=16):
    config = AFTConfig.from_preset("cpu-text-local", hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                   max_position_embeddings=max_positions, local_window=4, position_bias_dim=4)
    AFTForCausalLM(config).save_pretrained(folder)
    return folder


def generate_error(argv, capsys) -> str:
    from training import generate

    capsys.readouterr()
    try:
        code = generate.main(argv)
    except SystemExit as exit_info:  # argparse's own errors
        code = exit_info.code
    captured = capsys.readouterr()
    assert code == 2 and captured.err.startswith("error: ") and captured.err.count("\n") == 1, (code, captured.err)
    assert captured.out == "", captured.out  # refused before the first token
    return captured.err


def test_generate_past_the_learned_positions_fails_in_one_line_without_a_traceback(tmp_path):
    folder = _saved_local_model(tmp_path / "model")
    result = _run_generate(str(folder), "--prompt", "x", "--max-new-tokens", "100", "--greedy")
    err = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in err, err
    # Our line is the last; a package imported on the way may print warnings of its own before it.
    assert [line for line in err.splitlines() if line.startswith("error:")] == [err.rstrip("\n").splitlines()[-1]]
    assert "max_position_embeddings=16" in err and "pass --max-new-tokens 15 or fewer" in err
    assert result.stdout == b""


@pytest.mark.parametrize(
    "argv, words",
    [
        (["{d}/nowhere"], ["nowhere is not a folder"]),
        (["{d}/model/config.json"], ["config.json is not a folder"]),
        (["{d}/model", "--prompt", "x" * 16, "--max-new-tokens", "1"], ["the prompt has 16 tokens", "at most 15"]),
        (["{d}/model", "--max-new-tokens", "0"], ["--max-new-tokens", "must be > 0"]),
        (["{d}/model", "--max-new-tokens", "ten"], ["--max-new-tokens", "'ten'"]),
        (["{d}/model", "--top-p", "2"], ["--top-p must lie in (0, 1]"]),
        (["{d}/model", "--top-k", "-1"], ["--top-k must be >= 0"]),
        (["{d}/model", "--prompt", ""], ["the prompt is empty"]),
        (["{d}/corrupt"], ["corrupt/model.safetensors is not a readable safetensors file"]),
        (["{d}/too-long"], ["max_position_embeddings=50000000", "for 16 positions"]),
    ],
    ids=["missing-folder", "a-file", "prompt-too-long", "zero-tokens", "not-a-number", "top-p", "top-k", "empty",
         "corrupt-weights", "config-against-weights"],
)
def test_generate_fails_in_one_line(tmp_path, capsys, argv, words):
    import json
    import shutil

    _saved_local_model(tmp_path / "model")
    shutil.copytree(tmp_path / "model", tmp_path / "corrupt")
    (tmp_path / "corrupt" / "model.safetensors").write_bytes(b"\x10" + b"\x00" * 7 + b"{not a header}")
    shutil.copytree(tmp_path / "model", tmp_path / "too-long")
    config = json.loads((tmp_path / "too-long" / "config.json").read_text())
    (tmp_path / "too-long" / "config.json").write_text(json.dumps(dict(config, max_position_embeddings=50_000_000)))
    err = generate_error([a.format(d=tmp_path) for a in argv], capsys)
    for word in words:
        assert word in err, (word, err)


def test_generate_may_fill_every_learned_position(tmp_path, capsys):
    from training import generate

    folder = _saved_local_model(tmp_path / "model")
    assert generate.main([str(folder), "--prompt", "x", "--max-new-tokens", "15", "--greedy"]) == 0
    assert "error" not in capsys.readouterr().err


def test_loading_a_model_in_a_command_prints_no_import_noise():
    """With torchao installed, every from_pretrained imports it through transformers' quantizer registry and it logs
    that its CUDA kernels do not load (and torch a deprecation per Enum); the commands drop exactly those lines."""
    script = ("import training\n"
              "from transformers import AutoModelForCausalLM\n"
              "AutoModelForCausalLM.from_pretrained('pretrained/aft-local-wikipedia', trust_remote_code=True)\n"
              "import logging\n"
              "logging.getLogger('torchao').warning('another torchao warning')\n")
    done = run_command([sys.executable, "-c", script], timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert importlib.util.find_spec("torchao") is not None  # otherwise this test would check nothing
    assert "Failed to load" not in done.stderr and "Enum subclass" not in done.stderr, done.stderr
    assert "another torchao warning" in done.stderr  # the filter drops those two messages only
