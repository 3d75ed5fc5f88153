# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""`--baseline gpt2|vit`: the attention model of the AFT's size trained by the same loop on the same batches, and
`training.ship`, which puts an AFT run and its baseline side by side in a shipped folder."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

import modeling_aft  # noqa: F401
from modeling_aft import AFTConfig
from tests.helpers import reset_accelerate_state
from training import engine, ship, train_image, train_text
from training.baselines import with_baseline

TINY_TEXT = ["--seq-len", "64", "--eval-batch-size", "64", "--batch-size", "4", "--max-steps", "3",
             "--eval-every", "3", "--save-every", "3", "--log-every", "1", "--no-progress", "--no-tensorboard",
             "--eval-bytes", "2048", "--sample-bytes", "8",
             "--config-overrides", "num_hidden_layers=1,hidden_size=64,intermediate_size=128,position_bias_dim=8,"
                                   "max_position_embeddings=64,local_window=8"]


pytestmark = pytest.mark.usefixtures("fresh_accelerate_state")


def test_the_gpt2_baseline_has_the_aft_language_model_shape():
    args = engine.parse_args(train_text.parser(), "text", ["--preset", "wiki-local-4x256"])
    task = train_text.make_task(args)
    base = with_baseline(task, "gpt2")
    aft, gpt2 = task.config, base.config
    assert base.model_class.__name__ == "GPT2LMHeadModel"
    assert (gpt2.n_embd, gpt2.n_layer, gpt2.n_inner, gpt2.vocab_size, gpt2.n_positions) == (
        aft.hidden_size, aft.num_hidden_layers, aft.intermediate_size, aft.vocab_size, aft.max_position_embeddings)
    assert gpt2.n_head == aft.hidden_size // 64 and gpt2.activation_function == aft.hidden_act
    assert gpt2.resid_pdrop == aft.hidden_dropout_prob == 0.0
    # Same loss, data and evaluation: only the model differs.
    assert base.train_set is task.train_set and base.loss is task.loss and base.evaluate is task.evaluate


def test_the_vit_baseline_has_the_aft_classifier_shape_and_labels():
    args = engine.parse_args(train_image.parser(), "image", ["--preset", "fashion-mnist-conv"])
    task = train_image.make_task(args)
    base = with_baseline(task, "vit")
    aft, vit = task.config, base.config
    assert base.model_class.__name__ == "ViTForImageClassification"
    assert (vit.hidden_size, vit.num_hidden_layers, vit.intermediate_size, vit.image_size, vit.patch_size,
            vit.num_channels) == (aft.hidden_size, aft.num_hidden_layers, aft.intermediate_size, aft.image_size,
                                  aft.patch_size, aft.num_channels)
    assert vit.id2label == aft.id2label and vit.num_labels == 10
    model = base.model_class(vit)
    assert model(pixel_values=torch.zeros(2, 1, 28, 28)).logits.shape == (2, 10)


def test_a_baseline_that_does_not_fit_the_trainer_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        train_text.main(["--baseline", "vit", "--output-dir", str(tmp_path / "out")] + TINY_TEXT)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --baseline 'vit' does not fit the text trainer") and "gpt2" in err


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A tiny AFT-local run and its GPT-2 baseline on the same batches."""
    root = tmp_path_factory.mktemp("runs")
    for name, extra in (("aft", []), ("gpt2", ["--baseline", "gpt2"])):
        reset_accelerate_state()
        train_text.main(["--output-dir", str(root / name)] + TINY_TEXT + extra)
    reset_accelerate_state()
    return root


def test_a_baseline_run_records_its_model_and_writes_no_aft_card(two_runs):
    aft = json.loads((two_runs / "aft" / "model" / "results.json").read_text())
    gpt2 = json.loads((two_runs / "gpt2" / "model" / "results.json").read_text())
    assert aft["model"]["model_type"] == "aft" and gpt2["model"]["model_type"] == "gpt2"
    assert gpt2["model"]["class"] == "GPT2LMHeadModel" and gpt2["model"]["parameters"] > 0
    assert not (two_runs / "gpt2" / "model" / "README.md").exists()
    assert (two_runs / "aft" / "model" / "README.md").is_file()
    # The same batches: the recorded first-step losses differ (other models) but both runs saw step 1..3.
    for run in ("aft", "gpt2"):
        steps = [json.loads(line)["step"] for line in (two_runs / run / "metrics.jsonl").read_text().splitlines()]
        assert steps[:3] == [1, 2, 3]
    # Both final evaluations also scored the fixed test part.
    for results in (aft, gpt2):
        assert results["metrics"]["part_bytes"] == train_text.TEST_PART_BYTES - 1  # every byte but the first


def speed_file(path: Path, preset: str) -> Path:
    rows = [dict(model="aft-local", parameters=1000, units_per_second=300.0, speed_x_baseline=1.5),
            dict(model="aft-simple", parameters=900, units_per_second=320.0, speed_x_baseline=1.6),
            dict(model="gpt2", parameters=1100, units_per_second=200.0, speed_x_baseline=1.0)]
    path.write_text(json.dumps(dict(preset=preset, command="python -m benchmarks.side_by_side --preset x",
                                    threads=2, rows=rows)))
    return path


def test_ship_puts_the_run_and_its_baseline_side_by_side(two_runs, tmp_path):
    preset = json.loads((two_runs / "aft" / "model" / "results.json").read_text())["training"]["preset"]
    out = ship.ship(two_runs / "aft", two_runs / "gpt2", "aft-tiny", speed_file(tmp_path / "s.json", preset),
                    tmp_path / "pretrained")
    shipped = json.loads((out / "results.json").read_text())
    gpt2 = json.loads((two_runs / "gpt2" / "model" / "results.json").read_text())
    assert shipped["comparison"]["baseline"]["metrics"] == gpt2["metrics"]
    assert shipped["comparison"]["difference"] == pytest.approx(shipped["metrics"]["bpc"] - gpt2["metrics"]["bpc"])
    card = ModelCard.load(out / "README.md")
    assert card.data.model_name == "aft-tiny"
    assert f"{gpt2['metrics']['bpc']:.4f}" in card.text and "1.50x" in card.text
    assert "AFT-simple (speed only)" in card.text
    assert (out / "comparison.png").stat().st_size > 1000
    assert [p.name for p in out.parent.iterdir()] == ["aft-tiny"], "a temporary folder was left behind"
    # The card's model-index is the AFT run's own.
    before = ModelCard.load(two_runs / "aft" / "model" / "README.md").data.eval_results
    assert [(e.metric_type, e.metric_value) for e in card.data.eval_results] == [
        (e.metric_type, e.metric_value) for e in before]
    assert AFTConfig.from_pretrained(out).to_dict() == AFTConfig.from_pretrained(two_runs / "aft" / "model").to_dict()


def test_ship_copies_no_temporary_a_killed_writer_left_in_the_run(two_runs, tmp_path):
    run = tmp_path / "aft"
    shutil.copytree(two_runs / "aft", run)
    (run / "model" / ".tmp-README.md-0a1b2c3d").write_text("half a card")
    (run / "model" / ".tmp-model.safetensors-0a1b2c3d").write_bytes(b"half")
    out = ship.ship(run, two_runs / "gpt2", "aft-tiny", None, tmp_path / "pretrained")
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert (out / "model.safetensors").read_bytes() == (run / "model" / "model.safetensors").read_bytes()


def test_ship_refuses_runs_of_other_batches_or_swapped_roles(two_runs, tmp_path, capsys):
    with pytest.raises(ship.ShipError, match="must be the AFT run"):
        ship.ship(two_runs / "gpt2", two_runs / "aft", "x", None, tmp_path)
    results = json.loads((two_runs / "gpt2" / "model" / "results.json").read_text())
    other = tmp_path / "other"
    (other / "model").mkdir(parents=True)
    results["training"]["steps"] = 4
    (other / "model" / "results.json").write_text(json.dumps(results))
    with pytest.raises(ship.ShipError, match="not trained on the same batches.*steps: 3 vs 4"):
        ship.ship(two_runs / "aft", other, "x", None, tmp_path)
    with pytest.raises(ship.ShipError, match="side_by_side --preset"):
        ship.ship(two_runs / "aft", two_runs / "gpt2", "x", speed_file(tmp_path / "s.json", "another-preset"),
                  tmp_path)
    assert ship.main([str(tmp_path / "missing"), "--baseline-run", str(two_runs / "gpt2"), "--name", "x"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not (tmp_path / "x").exists()
