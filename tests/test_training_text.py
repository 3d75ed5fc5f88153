# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The text trainer end to end, on tiny models: it learns, it reports bits per character in its card, 2 processes
under `accelerate launch` match 1, and a run killed with SIGKILL resumes to the weights of an uninterrupted run."""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import modeling_aft  # noqa: F401
from tests.helpers import (
    REPO,
    TINY_TEXT_OVERRIDES,
    metrics_records,
    offline_env,
    reset_accelerate_state,
    run_command,
    train_losses,
)
from tests.helpers import error_of as command_error
from training import atomic, engine, train_text

TINY = TINY_TEXT_OVERRIDES
FAST = ["--seq-len", "64", "--batch-size", "8", "--log-every", "5", "--no-progress", "--config-overrides", TINY]


pytestmark = pytest.mark.usefixtures("fresh_accelerate_state")


def enwik8_like(path: Path, size: int) -> Path:
    """A small file in enwik8's format: MediaWiki XML export text."""
    page = ("  <page>\n    <title>Page {i}</title>\n    <id>{i}</id>\n    <revision>\n"
            "      <text xml:space=\"preserve\">"
            "'''Page {i}''' is an article about the number {i}. It links to [[Page {j}]] and [[Page {k}]].\n"
            "== History ==\nThe number {i} follows {j}.</text>\n    </revision>\n  </page>\n")
    text = "<mediawiki xmlns=\"http://www.mediawiki.org/xml/export-0.3/\">\n"
    i = 0
    while len(text) < size:
        text += page.format(i=i, j=i - 1, k=i * 7 % 101)
        i += 1
    path.write_bytes(text.encode()[:size])
    return path


def test_the_text_trainer_learns_the_embedded_wikipedia_text(tmp_path):
    out = tmp_path / "run"
    train_text.main(["--output-dir", str(out), "--max-steps", "40", "--warmup-steps", "5", "--eval-every", "20",
                     "--save-every", "20", "--eval-bytes", "4096", "--skip-final-eval", "--sample-bytes", "20",
                     *FAST])
    losses = train_losses(out)
    assert losses[0] > 5.0 and losses[-1] < losses[0] - 1.0, losses  # from ~ln 256 = 5.55
    evals = [r["eval/bpc"] for r in metrics_records(out) if "eval/bpc" in r]
    assert len(evals) == 2 and evals[1] < evals[0]
    assert (out / "model" / "model.safetensors").is_file() and (out / "model" / "loss_curves.png").is_file()
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["checkpoint-20", "checkpoint-40"] or \
        sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-20", "checkpoint-40"]
    assert list((out / "logs").rglob("events.out.tfevents.*")), "no TensorBoard event file"
    # The byte tokenizer's special id is in the config (Trainer and TRL align nothing), and the start byte's
    # embedding trained like any other (no padding row frozen at zero).
    saved = json.loads((out / "model" / "config.json").read_text())
    assert {saved[key] for key in ("bos_token_id", "eos_token_id", "pad_token_id")} == {0}
    embedding = load_file(out / "model" / "model.safetensors")["model.embed_tokens.weight"]
    assert embedding[0].abs().sum() > 0


def test_an_enwik8_file_trains_and_its_card_holds_the_measured_bpc(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.data_text import load_text
    from training.evaluate_text import evaluate_bits_per_byte
    from training.model_card import read_model_card_metrics

    data = enwik8_like(tmp_path / "enwik8", 60_000)
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="enwik8"):
        metrics = train_text.main(["--data", str(data), "--output-dir", str(out), "--max-steps", "30",
                                   "--warmup-steps", "5", "--eval-every", "30", "--save-every", "30",
                                   "--eval-bytes", "2048", "--eval-stride", "32", "--sample-bytes", "30", *FAST])
    assert train_losses(out)[-1] < train_losses(out)[0] - 1.0
    folder = out / "model"
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.decode(tokenizer("<page>").input_ids) == "<page>"
    with pytest.warns(UserWarning):
        test_split = load_text(str(data)).test
    again = evaluate_bits_per_byte(model, test_split, 64, 16)
    sliding = evaluate_bits_per_byte(model, test_split, 64, 16, stride=32)
    assert metrics["bpc"] == pytest.approx(again["bpc"], rel=1e-5)
    assert metrics["bpc_sliding"] == pytest.approx(sliding["bpc"], rel=1e-5)
    assert metrics["bpc"] < 8.0  # better than uniform over 256 bytes
    card = read_model_card_metrics(folder)
    assert card["test/bpc"] == metrics["bpc"] and card["test/bpc_sliding"] == metrics["bpc_sliding"]
    assert json.loads((folder / "results.json").read_text())["metrics"]["bpc"] == metrics["bpc"]
    sample = (folder / "sample.txt").read_text()
    assert sample.startswith("The ") and len(sample.encode("utf-8", "surrogateescape")) >= 4


def test_two_processes_under_accelerate_launch_match_one(tmp_path):
    common = ["--max-steps", "12", "--warmup-steps", "2", "--eval-every", "12", "--save-every", "12",
              "--eval-bytes", "4096", "--skip-final-eval", "--sample-bytes", "0", "--dropout", "0",
              "--no-tensorboard", *FAST]
    one = run_command([sys.executable, "-m", "training.train_text", "--output-dir", str(tmp_path / "one"), *common])
    assert one.returncode == 0, one.stderr[-3000:]
    # `accelerate launch --cpu --num_processes 2` starts ONE process (Accelerate reads --cpu as "no distribution");
    # two gloo processes on CPU come from --multi_gpu with ACCELERATE_USE_CPU, which the results must confirm.
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    two = run_command([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                       "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                       "--main_process_port", str(port),
                       "-m", "training.train_text", "--output-dir", str(tmp_path / "two"), *common],
                      env_extra={"ACCELERATE_USE_CPU": "true"})
    assert two.returncode == 0, two.stderr[-3000:]
    for run, processes in (("one", 1), ("two", 2)):
        results = json.loads((tmp_path / run / "model" / "results.json").read_text())
        assert results["training"]["num_processes"] == processes
    r1, r2 = metrics_records(tmp_path / "one"), metrics_records(tmp_path / "two")
    l1, l2 = train_losses(tmp_path / "one"), train_losses(tmp_path / "two")
    assert len(l1) == len(l2) == 3
    assert l2 == pytest.approx(l1, rel=1e-4)
    e1 = [r["eval/bpc"] for r in r1 if "eval/bpc" in r]
    e2 = [r["eval/bpc"] for r in r2 if "eval/bpc" in r]
    assert e2 == pytest.approx(e1, rel=1e-4)
    w1 = load_file(tmp_path / "one" / "model" / "model.safetensors")
    w2 = load_file(tmp_path / "two" / "model" / "model.safetensors")
    for name in w1:
        # Adam divides by sqrt(v): a weight whose gradient is ~0 moves by summation-order noise (the all-reduce adds
        # in another order) up to ~1e-5 over 12 steps; a wrong split of the batch changes the losses above already.
        torch.testing.assert_close(w2[name], w1[name], rtol=1e-4, atol=1e-4)


def test_a_run_killed_mid_training_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    common = ["--max-steps", "150", "--warmup-steps", "10", "--eval-every", "50", "--save-every", "10",
              "--keep-last", "2", "--eval-bytes", "2048", "--skip-final-eval", "--sample-bytes", "0",
              "--no-tensorboard", *FAST]  # dropout 0.1 stays on: the RNG state must come back too
    whole = run_command([sys.executable, "-m", "training.train_text", "--output-dir", str(tmp_path / "whole"), *common])
    assert whole.returncode == 0, whole.stderr[-3000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "training.train_text", "--output-dir", str(out), *common],
                            cwd=REPO, env=offline_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (out / "checkpoints" / "checkpoint-30").is_dir():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its third checkpoint"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "model").exists(), "the run finished before it was killed"
    # What a kill in the middle of a checkpoint write leaves: never picked up.
    (out / "checkpoints" / ".tmp-checkpoint-140").mkdir()
    (out / "checkpoints" / "checkpoint-145").mkdir()
    latest = max(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*")
                 if (p / "trainer_state.json").is_file())
    assert 30 <= latest < 150

    resumed = run_command([sys.executable, "-m", "training.train_text", "--output-dir", str(out), "--resume", *common])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {out / 'checkpoints' / f'checkpoint-{latest}'} at step {latest}" in resumed.stdout
    w_whole = load_file(tmp_path / "whole" / "model" / "model.safetensors")
    w_resumed = load_file(out / "model" / "model.safetensors")
    for name in w_whole:
        torch.testing.assert_close(w_resumed[name], w_whole[name], rtol=0, atol=1e-6)
    # The loss curve has each step once: the steps lost with the kill are dropped, then logged again.
    steps = [r["step"] for r in metrics_records(out) if "train/loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 150
    assert train_losses(out) == pytest.approx(train_losses(tmp_path / "whole"), abs=1e-6)


class _Planted:
    """A pickle that creates a file when it is loaded: what a hostile shared checkpoint could hold."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_resume_runs_no_code_from_a_checkpoint_and_keeps_no_pickle_of_the_scheduler(tmp_path, capsys):
    import pickle

    out, whole = tmp_path / "run", tmp_path / "whole"
    common = ["--warmup-steps", "2", "--eval-every", "100", "--save-every", "2", "--log-every", "1",
              "--skip-final-eval", "--sample-bytes", "0", "--no-tensorboard", *FAST]
    train_text.main(["--output-dir", str(out), "--max-steps", "4", *common])
    checkpoint = out / "checkpoints" / "checkpoint-4"
    assert not list(checkpoint.glob("custom_checkpoint_*")), "the scheduler was pickled into the checkpoint"
    marker = tmp_path / "code-ran"
    for name in ("custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl"):  # what Accelerate would read for it
        with open(checkpoint / name, "wb") as file:
            pickle.dump(_Planted(marker), file)
    reset_accelerate_state()
    with pytest.raises(SystemExit) as refused:
        train_text.main(["--output-dir", str(out), "--max-steps", "6", "--resume", *common])
    assert refused.value.code == 2
    assert "custom_checkpoint_0.pkl, custom_checkpoint_1.pkl" in capsys.readouterr().err
    assert not marker.exists(), "resuming executed code from the checkpoint"
    for path in checkpoint.glob("custom_checkpoint_*"):
        path.unlink()
    reset_accelerate_state()
    train_text.main(["--output-dir", str(out), "--max-steps", "6", "--resume", *common])
    # The learning rate went on from step 4 as in one uninterrupted run of 6 steps (warmup 2, then cosine).
    reset_accelerate_state()
    train_text.main(["--output-dir", str(whole), "--max-steps", "6", *common])
    resumed_lr = {r["step"]: r["train/lr"] for r in metrics_records(out) if "train/lr" in r}
    whole_lr = {r["step"]: r["train/lr"] for r in metrics_records(whole) if "train/lr" in r}
    assert [resumed_lr[s] for s in (5, 6)] == pytest.approx([whole_lr[s] for s in (5, 6)], rel=1e-12)
    assert resumed_lr[5] != resumed_lr[4]


def test_a_run_without_matplotlib_trains_and_saves_its_model_without_the_plot(tmp_path, capsys, monkeypatch):
    """The README's own-environment install leaves the `train` extra (matplotlib) out: the run must not be lost."""
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    out = tmp_path / "run"
    train_text.main(["--output-dir", str(out), "--max-steps", "4", "--eval-every", "2", "--save-every", "2",
                     "--eval-bytes", "2048", "--skip-final-eval", "--sample-bytes", "0", "--no-tensorboard", *FAST])
    assert (out / "model" / "model.safetensors").is_file() and (out / "checkpoints" / "checkpoint-4").is_dir()
    assert not (out / "model" / "loss_curves.png").exists()
    err = capsys.readouterr().err
    assert err.count("warning: no loss plot: No module named 'matplotlib") == 1, err


def error_of(argv, capsys) -> str:
    return command_error(train_text.main, argv, capsys)


def test_bad_input_is_refused_before_training(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert "unknown text preset 'nope'" in error_of(["--preset", "nope", "--output-dir", out], capsys)
    assert "missing" in error_of(["--data", str(tmp_path / "missing.txt"), "--output-dir", out], capsys)
    (tmp_path / "empty.txt").write_bytes(b"")
    assert "empty" in error_of(["--data", str(tmp_path / "empty.txt"), "--output-dir", out], capsys)
    message = error_of(["--seq-len", "128", "--output-dir", out, "--config-overrides", TINY], capsys)
    assert "--seq-len 128 is above max_position_embeddings 64" in message
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("variant", ["simple", "conv"])
def test_a_seq_len_beyond_learned_position_embeddings_is_one_line_before_training(variant, tmp_path, capsys):
    """AFT-simple and -conv have no position biases, but use_position_embeddings=true gives them a table of
    max_position_embeddings rows: a longer --seq-len is refused by the trainer, not by the model's first forward."""
    out = tmp_path / "run"
    overrides = f"{TINY},aft_variant={variant},num_heads=4,use_position_embeddings=true"
    message = error_of(["--seq-len", "128", "--output-dir", str(out), "--config-overrides", overrides], capsys)
    assert message.startswith("error: --seq-len 128 is above max_position_embeddings 64") and message.count("\n") == 1
    assert "max_position_embeddings=128" in message and "Traceback" not in message
    assert not out.exists()


def test_resume_with_another_config_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["--output-dir", str(out), "--max-steps", "4", "--save-every", "2", "--eval-every", "4",
            "--eval-bytes", "1024", "--skip-final-eval", "--sample-bytes", "0", "--no-tensorboard"]
    train_text.main(base + FAST)
    before = (out / "model" / "model.safetensors").read_bytes()
    other = [a.replace("hidden_size=32", "hidden_size=48") for a in FAST]
    message = error_of(base + ["--resume", "--max-steps", "8"] + other, capsys)
    assert "different model configuration" in message and "hidden_size: checkpoint 32, now 48" in message
    assert "no complete checkpoint" in error_of(
        ["--output-dir", str(tmp_path / "fresh"), "--resume"] + FAST, capsys)
    assert (out / "model" / "model.safetensors").read_bytes() == before


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    common = ["--max-steps", "6", "--warmup-steps", "1", "--eval-every", "6", "--save-every", "6", "--log-every",
              "1", "--eval-bytes", "1024", "--skip-final-eval", "--sample-bytes", "0", "--dropout", "0",
              "--no-tensorboard", *FAST]
    train_text.main(["--output-dir", str(tmp_path / "one"), *common])
    reset_accelerate_state()
    train_text.main(["--output-dir", str(tmp_path / "accum"), "--grad-accum", "4", *common])
    assert train_losses(tmp_path / "accum") == pytest.approx(train_losses(tmp_path / "one"), rel=1e-5)
    w1 = load_file(tmp_path / "one" / "model" / "model.safetensors")
    w4 = load_file(tmp_path / "accum" / "model" / "model.safetensors")
    for name in w1:
        torch.testing.assert_close(w4[name], w1[name], rtol=1e-4, atol=1e-4)  # see the two-process test


def test_a_fresh_run_in_the_folder_of_an_earlier_one_is_refused_unless_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--output-dir", str(out), "--max-steps", "4", "--save-every", "2", "--eval-every", "4",
            "--eval-bytes", "1024", "--skip-final-eval", "--sample-bytes", "0", "--no-tensorboard", *FAST]
    train_text.main(argv)
    message = error_of(argv + ["--max-steps", "2"], capsys)
    assert "holds checkpoints of an earlier run (checkpoint-4)" in message and "--overwrite-output-dir" in message
    reset_accelerate_state()
    train_text.main(argv + ["--max-steps", "2", "--overwrite-output-dir"])
    # The earlier run's checkpoint-4 is gone: the new run's own checkpoint is the latest, and rotation kept it.
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2"]


# ----------------------------------------------------------------------------------------------------------------
# Damaged checkpoints, a final folder lost mid-swap
# ----------------------------------------------------------------------------------------------------------------

# Dropout 0.1 stays on (the RNG states must come back); --log-every 1 after FAST's 5, so that each step's loss is
# logged alone and a resumed run's curve can equal the uninterrupted one.
DAMAGE_RUN = [*FAST, "--warmup-steps", "2", "--eval-every", "100", "--save-every", "2", "--keep-last", "3",
              "--log-every", "1", "--skip-final-eval", "--sample-bytes", "0", "--no-tensorboard"]


@pytest.fixture(scope="module")
def six_steps(tmp_path_factory):
    """One uninterrupted run of 6 steps with checkpoints 2, 4 and 6 (and its final weights)."""
    out = tmp_path_factory.mktemp("six") / "run"
    train_text.main(["--output-dir", str(out), "--max-steps", "6", *DAMAGE_RUN])
    reset_accelerate_state()
    return out


def stopped_after_step_4(six_steps: Path, where: Path) -> Path:
    """The same run as if stopped after checkpoint-4 was written: no checkpoint-6, no final folder."""
    out = where / "run"
    shutil.copytree(six_steps, out)
    shutil.rmtree(out / "checkpoints" / "checkpoint-6")
    shutil.rmtree(out / "model")
    return out


def truncate(path: Path, size: int | None = None) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2 if size is None else size])


DAMAGE = {
    "model.safetensors": lambda c: truncate(c / "model.safetensors"),
    "optimizer.bin": lambda c: truncate(c / "optimizer.bin"),
    "random_states_0.pkl": lambda c: truncate(c / "random_states_0.pkl", 0),
    "trainer_state.json": lambda c: (c / "trainer_state.json").write_text('{"step": 4, "config": {'),
    "manifest.json": lambda c: (c / "manifest.json").unlink(),
    "optimizer.bin is missing": lambda c: (c / "optimizer.bin").unlink(),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_newest_checkpoint_is_named_and_the_one_before_resumes_to_the_uninterrupted_weights(
        six_steps, tmp_path, capsys, damage):
    out = stopped_after_step_4(six_steps, tmp_path)
    DAMAGE[damage](out / "checkpoints" / "checkpoint-4")
    capsys.readouterr()
    train_text.main(["--output-dir", str(out), "--max-steps", "6", "--resume", *DAMAGE_RUN])
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, captured.err
    assert "checkpoint-4 is damaged" in warnings[0] and damage in warnings[0], warnings[0]
    assert f"resumed from {out / 'checkpoints' / 'checkpoint-2'} at step 2" in captured.out
    whole = load_file(six_steps / "model" / "model.safetensors")
    resumed = load_file(out / "model" / "model.safetensors")
    for name in whole:
        torch.testing.assert_close(resumed[name], whole[name], rtol=0, atol=1e-6)
    assert train_losses(out) == pytest.approx(train_losses(six_steps), abs=1e-6)
    # The damaged folder is kept for a look but never loaded again; the run wrote an intact checkpoint-4 and -6.
    assert (out / "checkpoints" / "checkpoint-4.damaged").is_dir()
    for step in (4, 6):
        assert engine.checkpoint_problems(out / "checkpoints" / f"checkpoint-{step}") == ([], True)


def test_with_every_checkpoint_damaged_resume_stops_with_one_line_naming_the_files(six_steps, tmp_path, capsys):
    out = stopped_after_step_4(six_steps, tmp_path)
    truncate(out / "checkpoints" / "checkpoint-4" / "optimizer.bin")
    truncate(out / "checkpoints" / "checkpoint-2" / "random_states_0.pkl", 0)
    message = error_of(["--output-dir", str(out), "--max-steps", "6", "--resume", *DAMAGE_RUN], capsys)
    assert message.count("\n") == 1 and message.startswith("error: --resume: no intact checkpoint"), message
    assert "checkpoint-4: optimizer.bin is " in message and "checkpoint-2: random_states_0.pkl is 0 bytes" in message
    assert "--overwrite-output-dir" in message
    # A checkpoint named on the command line is not swapped for another one.
    named = out / "checkpoints" / "checkpoint-4"
    message = error_of(["--output-dir", str(out), "--max-steps", "6", "--resume", str(named), *DAMAGE_RUN], capsys)
    assert message.count("\n") == 1 and f"--resume {named} is damaged (optimizer.bin is " in message, message
    assert not (out / "model").exists()


def test_a_checkpoint_from_before_manifests_resumes_with_a_warning_that_it_cannot_be_verified(six_steps, tmp_path,
                                                                                              capsys):
    out = stopped_after_step_4(six_steps, tmp_path)
    ckpt = out / "checkpoints" / "checkpoint-4"
    (ckpt / "manifest.json").unlink()
    state = json.loads((ckpt / "trainer_state.json").read_text())
    del state["manifest"]
    (ckpt / "trainer_state.json").write_text(json.dumps(state))
    capsys.readouterr()
    train_text.main(["--output-dir", str(out), "--max-steps", "6", "--resume", *DAMAGE_RUN])
    captured = capsys.readouterr()
    assert f"resumed from {ckpt} at step 4" in captured.out
    assert [line for line in captured.err.splitlines() if line.startswith("warning:")] == [
        f"warning: {ckpt} has no manifest.json (written before checkpoints had one): its files cannot be verified; "
        "loading it as it is"]
    # Its RNG states are still checked: a zero-byte one (which Accelerate would skip silently) is damage.
    whole = load_file(six_steps / "model" / "model.safetensors")
    for name, value in load_file(out / "model" / "model.safetensors").items():
        torch.testing.assert_close(value, whole[name], rtol=0, atol=1e-6)
    legacy = tmp_path / "legacy"
    shutil.copytree(ckpt, legacy)
    truncate(legacy / "random_states_0.pkl", 0)
    problems, verified = engine.checkpoint_problems(legacy)
    assert len(problems) == 1 and problems[0].startswith("random_states_0.pkl does not load (EOFError") and not verified


def test_a_run_stopped_between_the_two_renames_of_its_final_folder_gets_it_back_on_the_next_run(
        six_steps, tmp_path, capsys, monkeypatch):
    out = stopped_after_step_4(six_steps, tmp_path)
    shutil.copytree(six_steps / "model", out / "model")  # a final folder of an earlier run, to be replaced
    (out / "model" / "model.safetensors").write_bytes(b"the earlier run's weights")
    real_replace = os.replace

    def crash_before_the_second_rename(src, dst):
        if Path(src).name == ".tmp-model":
            raise KeyboardInterrupt("killed between the renames")
        real_replace(src, dst)

    monkeypatch.setattr(engine.os, "replace", crash_before_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        train_text.main(["--output-dir", str(out), "--max-steps", "6", "--resume", *DAMAGE_RUN])
    monkeypatch.setattr(engine.os, "replace", real_replace)
    assert not (out / "model").exists() and (out / ".old-model").is_dir() and (out / ".tmp-model").is_dir()
    reset_accelerate_state()
    capsys.readouterr()
    # The next run has nothing left to train (it is refused), but puts the finished folder in place first.
    message = error_of(["--output-dir", str(out), "--max-steps", "6", "--resume", *DAMAGE_RUN], capsys)
    assert "it is at step 6" in message and "put back from .tmp-model" in message
    assert (out / "model" / "model.safetensors").read_bytes() == \
        (six_steps / "model" / "model.safetensors").read_bytes()
    assert not (out / ".old-model").exists() and not (out / ".tmp-model").exists()


def test_the_final_folder_has_the_modes_a_plain_write_gives(six_steps):
    mask = atomic.umask()
    folder = six_steps / "model"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~mask
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir() if p.is_file()}
    assert modes["model.safetensors"] == 0o666 & ~mask, modes  # save_pretrained writes it 0600 through a temporary
    assert set(modes.values()) == {0o666 & ~mask}, modes


def test_with_only_the_old_final_folder_left_it_is_put_back(tmp_path):
    folder = tmp_path / "model"
    (tmp_path / ".old-model").mkdir()
    (tmp_path / ".old-model" / "config.json").write_text("{}")
    engine.restore_final_folder(folder)
    assert (folder / "config.json").read_text() == "{}" and not (tmp_path / ".old-model").exists()
    (tmp_path / ".tmp-model").mkdir()  # a killed write of the next final folder: left for that run to redo
    engine.restore_final_folder(folder)
    assert (folder / "config.json").is_file() and (tmp_path / ".tmp-model").is_dir()
