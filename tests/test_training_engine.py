# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The training loop's data order, checkpoint discovery and resume checks, without training anything."""

import argparse
import json

import pytest
import torch

from training import engine, presets


def naive_stream(n, seed, count):
    """The definition: per-epoch permutations of range(n), seeded (seed, epoch), concatenated."""
    out, epoch = [], 0
    while len(out) < count:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        out += torch.randperm(n, generator=gen).tolist()
        epoch += 1
    return out[:count]


@pytest.mark.parametrize("procs,accum", [(1, 1), (2, 1), (1, 4), (2, 2)])
def test_every_process_and_micro_step_together_read_the_global_batch_in_order(procs, accum):
    n, batch, steps, seed = 37, 8, 11, 3
    stream = naive_stream(n, seed, batch * steps)
    per_rank = [list(engine.StepBatchSampler(n, batch, accum, procs, r, seed, 0, steps)) for r in range(procs)]
    for step in range(steps):
        got = []
        for a in range(accum):
            for r in range(procs):
                got += per_rank[r][step * accum + a]
        assert got == stream[step * batch:(step + 1) * batch]


def test_a_sampler_started_at_step_k_yields_the_rest_of_an_uninterrupted_one():
    full = list(engine.StepBatchSampler(10, 4, 2, 1, 0, 7, 0, 9))
    rest = list(engine.StepBatchSampler(10, 4, 2, 1, 0, 7, 5, 9))
    assert rest == full[5 * 2:]
    assert len(engine.StepBatchSampler(10, 4, 2, 1, 0, 7, 5, 9)) == len(rest)


def test_epochs_are_permutations_and_differ_by_seed():
    s = naive_stream(12, 0, 24)
    assert sorted(s[:12]) == list(range(12)) and sorted(s[12:]) == list(range(12))
    a = list(engine.StepBatchSampler(12, 12, 1, 1, 0, 0, 0, 1))[0]
    b = list(engine.StepBatchSampler(12, 12, 1, 1, 0, 1, 0, 1))[0]
    assert a == s[:12] and a != b


def test_step_generators_depend_on_every_coordinate():
    draws = {(s, m, p): torch.rand(4, generator=engine.step_generator(0, s, m, p)).tolist()
             for s in range(3) for m in range(2) for p in range(2)}
    assert len({tuple(v) for v in draws.values()}) == len(draws)
    assert torch.rand(4, generator=engine.step_generator(0, 2, 1, 1)).tolist() == draws[(2, 1, 1)]


def test_only_complete_checkpoints_are_found(tmp_path):
    for step in (4, 12, 8):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        (d / engine.STATE_FILE).write_text("{}")
    (tmp_path / ".tmp-checkpoint-16").mkdir()  # killed while writing
    (tmp_path / "checkpoint-20").mkdir()  # no state file
    (tmp_path / "checkpoint-x").mkdir()
    assert [s for s, _ in engine.list_checkpoints(tmp_path)] == [4, 8, 12]
    assert engine.list_checkpoints(tmp_path / "missing") == []


def test_batch_arguments_are_checked():
    args = type("A", (), dict(batch_size=6, max_steps=1, grad_accum=2, eval_every=1, save_every=1, log_every=1))()
    assert engine.check_batch_args(args, 3) == 1
    with pytest.raises(engine.TrainingError, match="--batch-size 6 does not split over 2 process"):
        engine.check_batch_args(args, 2)
    args.max_steps = 0
    with pytest.raises(engine.TrainingError, match="--max-steps must be a positive integer"):
        engine.check_batch_args(args, 1)


def test_config_overrides_parse_json_values():
    assert engine.parse_overrides("a=1, b=0.5,c=local,d=true,e=null") == dict(a=1, b=0.5, c="local", d=True, e=None)
    with pytest.raises(ValueError, match="not key=value"):
        engine.parse_overrides("hidden_size")


def test_resume_refuses_another_config_or_data_order(tmp_path):
    args = argparse.Namespace(seed=0, batch_size=8, seq_len=64, data=None)
    config = {"hidden_size": 32, "num_hidden_layers": 1, "transformers_version": "x"}
    ckpt = tmp_path / "checkpoint-2"
    ckpt.mkdir()
    (ckpt / engine.STATE_FILE).write_text(json.dumps({"step": 2, "config": config, "args": vars(args)}))
    assert engine.check_resumable(ckpt, dict(config, transformers_version="y"), args)["step"] == 2
    with pytest.raises(engine.TrainingError, match="hidden_size: checkpoint 32, now 64"):
        engine.check_resumable(ckpt, dict(config, hidden_size=64), args)
    args.batch_size = 16
    with pytest.raises(engine.TrainingError, match="--batch-size: checkpoint 8, now 16"):
        engine.check_resumable(ckpt, config, args)


def test_every_preset_resolves_and_names_an_existing_model_preset():
    from modeling_aft import AFTConfig

    for task in ("text", "pixels", "image"):
        for name in presets.presets_for(task):
            values = presets.resolve(task, name)
            assert values["model_preset"] in AFTConfig.preset_names()
    with pytest.raises(ValueError, match="unknown text preset 'cifar10-local-256'"):
        presets.resolve("text", "cifar10-local-256")


@pytest.mark.parametrize("n,batch,procs", [(10, 3, 1), (10, 3, 2), (7, 4, 3), (1, 2, 2)])
def test_sharded_evaluation_batches_cover_each_item_once_with_equal_counts(n, batch, procs):
    class Acc:
        num_processes = procs

        def __init__(self, r):
            self.process_index = r

    seen, counts = [], set()
    for r in range(procs):
        batches = list(engine.sharded_batches(n, batch, Acc(r)))
        counts.add(len(batches))
        for idx, w in batches:
            assert len(idx) == batch
            seen += idx[w > 0].tolist()
    assert sorted(seen) == list(range(n)) and len(counts) == 1


def test_a_manifest_names_each_file_that_went_missing_shrank_or_changed(tmp_path):
    ckpt = tmp_path / "checkpoint-2"
    ckpt.mkdir()
    (ckpt / engine.STATE_FILE).write_text(json.dumps({"step": 2, "config": {}, "args": {}, "num_processes": 1,
                                                      "manifest": True}))
    torch.save({"torch_manual_seed": torch.get_rng_state()}, ckpt / "random_states_0.pkl")
    (ckpt / "model.safetensors").write_bytes(b"w" * 64)
    (ckpt / "optimizer.bin").write_bytes(b"o" * 64)
    (ckpt / "sub").mkdir()
    (ckpt / "sub" / "part.bin").write_bytes(b"p" * 8)
    engine.write_manifest(ckpt)
    assert engine.checkpoint_problems(ckpt) == ([], True)
    (ckpt / "model.safetensors").write_bytes(b"W" + b"w" * 63)  # same size, other bytes
    (ckpt / "optimizer.bin").write_bytes(b"o" * 10)
    (ckpt / "sub" / "part.bin").unlink()
    assert engine.checkpoint_problems(ckpt)[0] == [
        "model.safetensors differs from the manifest (sha256)", "optimizer.bin is 10 bytes, the manifest says 64",
        "sub/part.bin is missing"]
    (ckpt / engine.MANIFEST_FILE).write_text(json.dumps({"files": {"../outside": {"size": 1, "sha256": "x"}}}))
    assert engine.checkpoint_problems(ckpt)[0] == ["manifest.json is not valid (a path outside the checkpoint)"]


def test_an_image_damaged_after_the_check_stops_a_command_in_one_line(capsys):
    """The folder check at open misses a file damaged later; the batch that meets it names it, and the command
    ends with one line and exit 2 instead of a traceback."""
    from training.data_images import UnreadableImageError

    def training_that_meets_a_damaged_file():
        raise UnreadableImageError("cannot read image /data/train/a/0.png (OSError: truncated); remove or replace it.")

    with pytest.raises(SystemExit) as stopped:
        engine.main_guard(training_that_meets_a_damaged_file)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read image /data/train/a/0.png") and "--resume" in err
    assert err.count("\n") == 1
