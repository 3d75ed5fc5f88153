# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""lm-evaluation-harness on AFT, offline (issue 14): the harness's bits per byte on the project's Wikipedia task is
the project's own evaluation (training.evaluate_text) of the same documents; HFLM is told each variant's real length
limit; the shipped task data is what `make-data` writes; results land in the card's model-index."""

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_aft import AFTByteTokenizer, AFTConfig, AFTForCausalLM
from training import eval_harness
from training.evaluate_text import evaluate_bits_per_byte
from training.model_card import read_model_card_metrics

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "pretrained" / "aft-local-wikipedia"
TINY = dict(num_hidden_layers=1, hidden_size=32, intermediate_size=64, hidden_dropout_prob=0.0)
DOCS = 4


@pytest.fixture(scope="module", autouse=True)
def offline():
    saved = {key: os.environ.get(key) for key in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")}
    os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    for key, value in saved.items():
        os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture(scope="module")
def simple_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("simple")
    torch.manual_seed(0)
    model = AFTForCausalLM(AFTConfig.from_preset("cpu-text-simple", **TINY))
    for parameter in model.parameters():  # not near-uniform: a wrong window or offset must show
        parameter.data.normal_(0, 0.3)
    model.save_pretrained(folder)
    AFTByteTokenizer().save_pretrained(folder)
    return folder


def _articles(count: int) -> list[str]:
    path = eval_harness.DATA_DIR / "wikipedia_test.jsonl"
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()[:count]]


def test_harness_bits_per_byte_equals_the_projects_evaluation_of_the_same_articles(simple_model):
    """The harness scores each article from the start-of-text token (id 0) in one window (AFT-simple has no limit);
    evaluate_bits_per_byte over b"\\0" + article in one window of its length predicts the same bytes from the same
    context. (Over the whole split the project's number differs by definition: its windows of seq_len run across
    article boundaries of the joined split, with no start-of-text token.)"""
    output = eval_harness.run(simple_model, ["aft_wikipedia_bpb"], limit=DOCS, batch_size=2)
    harness = output["results"]["aft_wikipedia_bpb"]["bits_per_byte,none"]
    assert output["configs"]["aft_wikipedia_bpb"]["max_length"] == eval_harness.NO_LIMIT_LENGTH
    model = AFTForCausalLM.from_pretrained(simple_model)
    nll, count = 0.0, 0
    for text in _articles(DOCS):
        data = np.frombuffer(b"\0" + text.encode("utf-8"), dtype=np.uint8)
        result = evaluate_bits_per_byte(model, data, seq_len=data.size - 1, batch_size=1)
        nll, count = nll + result["nll"] * result["bytes"], count + result["bytes"]
    assert count == sum(len(text.encode("utf-8")) for text in _articles(DOCS))
    assert harness == pytest.approx(nll / count / math.log(2), abs=1e-4)
    assert 3.0 < harness < 20.0  # a random model: far from 8 bits, so a shifted target would not match by chance


def test_the_length_limit_told_to_the_harness_is_the_variants():
    for variant, expected in (("local", 256), ("full", 256), ("simple", None), ("conv", None)):
        config = AFTConfig.from_preset(f"cpu-text-{variant}", max_position_embeddings=256)
        length = eval_harness.harness_max_length(config)
        assert length == (expected or eval_harness.NO_LIMIT_LENGTH), variant
    assert "max_length=256" in eval_harness.model_args(SHIPPED)


def test_continuation_task_scores_the_shipped_model_above_chance():
    output = eval_harness.run(SHIPPED, ["aft_wikipedia_continuation"], limit=40, batch_size=8)
    accuracy = output["results"]["aft_wikipedia_continuation"]["acc,none"]
    assert accuracy > 0.375, accuracy  # chance is 0.25 (4 choices); measured 0.475 on these 40


def test_the_shipped_task_data_is_what_make_data_writes(tmp_path):
    counts = eval_harness.make_data(tmp_path)
    assert counts == {"articles": 522, "continuation_items": eval_harness.CONTINUATION_ITEMS}
    for name in ("wikipedia_test.jsonl", "wikipedia_continuations.jsonl"):
        assert (tmp_path / name).read_bytes() == (eval_harness.DATA_DIR / name).read_bytes(), name
    from training.data_text import load_text

    joined = "\n\n".join(json.loads(line)["text"] for line in (tmp_path / "wikipedia_test.jsonl").open())
    assert joined.encode("utf-8") == load_text(None).test.tobytes()  # exactly the project's test split


def test_results_go_into_the_cards_model_index_beside_the_trainers(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(SHIPPED / "README.md", folder / "README.md")
    results = {"results": {"aft_wikipedia_bpb": {"bits_per_byte,none": 1.7, "bits_per_byte_stderr,none": "N/A"},
                           "aft_wikipedia_continuation": {"acc,none": 0.6, "acc_stderr,none": 0.05}},
               "configs": {"aft_wikipedia_bpb": {"max_length": 256}}, "limit": None}
    assert eval_harness.write_card_results(folder, results) == 2
    results["results"]["aft_wikipedia_bpb"]["bits_per_byte,none"] = 1.65
    assert eval_harness.write_card_results(folder, results) == 2  # a rerun replaces, not duplicates
    metrics = read_model_card_metrics(folder)
    assert metrics["test/bits_per_byte"] == 1.65 and metrics["test/acc"] == 0.6
    assert metrics["test/bpc"] == pytest.approx(1.6521107070435406)  # the trainer's entries stay


def test_command_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as error:
        eval_harness.main(["run", str(tmp_path), "--tasks", "aft_wikipedia_bpb"])
    assert error.value.code == 2 and capsys.readouterr().err.startswith("error: ")
    with pytest.raises(SystemExit) as error:
        eval_harness.main(["card", str(tmp_path), str(tmp_path / "missing.json")])
    assert error.value.code == 2 and "missing.json" in capsys.readouterr().err
