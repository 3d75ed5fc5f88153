# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The shipped checkpoints (pretrained/): complete, loadable as any Hugging Face user loads them, and as good as their
cards say.

- Each folder loads with the package (Auto classes, pipelines) and, in a process that cannot import the package, with
  `trust_remote_code=True` from the code saved beside the weights; both give the same outputs.
- Each model's metric, measured again here on the fixed part of its test split, equals the value its training run
  recorded for that part (results.json keeps it beside the full split's value).
- The card's model-index holds exactly results.json's numbers, and its comparison table the baseline's.
- The language models decode on their recurrent state exactly as a forward pass over the whole text gives.
- The three publish to the loopback test Hub and load back by repo id in fresh processes.
"""

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoImageProcessor,
    AutoModelForCausalLM,
    AutoModelForImageClassification,
    AutoTokenizer,
    pipeline,
)

import modeling_aft  # noqa: F401
from tests.helpers import BLOCK_PACKAGE, hub_env
from tests.hub_server import HubServer
from training.data_images import load_fashion_mnist
from training.data_text import load_text
from training.evaluate_text import evaluate_bits_per_byte
from training.model_card import read_model_card_metrics
from training.showcase import IMAGE, PIXELS, PRETRAINED, TEXT
from training.train_image import TEST_PART_IMAGES as CLASSIFIER_PART
from training.train_image import evaluate_classifier
from training.train_pixels import START, evaluate_bits_per_dim
from training.train_pixels import TEST_PART_IMAGES as PIXEL_PART
from training.train_text import TEST_PART_BYTES

REPO_ROOT = Path(__file__).resolve().parent.parent
NAMES = (TEXT, IMAGE, PIXELS)
MAX_FOLDER_BYTES, MAX_TOTAL_BYTES = 16 * 2**20, 40 * 2**20
COMMON_FILES = ("config.json", "model.safetensors", "README.md", "results.json", "loss_curves.png", "comparison.png",
                "configuration_aft.py", "modeling_aft.py")
OWN_FILES = {TEXT: ("tokenizer_config.json", "tokenization_aft.py", "sample.txt"),
             IMAGE: ("preprocessor_config.json", "image_processing_aft.py"),
             PIXELS: ("image_format.json", "samples.png")}
# The card's model-index entry ("split/type") that holds each results.json metric.
CARD_METRICS = {TEXT: {"test/bpc": "bpc", "test/bpc_sliding": "bpc_sliding"},
                IMAGE: {"validation/accuracy": "top1"},
                PIXELS: {"validation/bpd": "bpd"}}
PROMPT = "The river flows through the "


def folder(name: str) -> Path:
    return PRETRAINED / name


def results(name: str) -> dict:
    return json.loads((folder(name) / "results.json").read_text())


@pytest.fixture(scope="module")
def fashion_test():
    return load_fashion_mnist().valid


# --------------------------------------------------------------------------------------------------------------------
# The folders
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_folder_is_a_complete_hugging_face_folder_within_its_size(name):
    files = {p.name: p.stat().st_size for p in folder(name).iterdir() if p.is_file()}
    missing = [f for f in COMMON_FILES + OWN_FILES[name] if f not in files]
    assert not missing, f"{name} lacks {missing}"
    assert not [f for f in files if f.startswith(".") or "checkpoint" in f], "leftovers of a run were shipped"
    assert not [p for p in folder(name).iterdir() if p.is_dir()], "no sub-folders (checkpoints) in a shipped model"
    assert sum(files.values()) <= MAX_FOLDER_BYTES
    config = json.loads((folder(name) / "config.json").read_text())
    assert config["model_type"] == "aft" and "auto_map" in config
    assert results(name)["final_evaluation"] is True


def test_all_folders_together_stay_within_the_budget():
    total = sum(p.stat().st_size for name in NAMES for p in folder(name).iterdir() if p.is_file())
    assert total <= MAX_TOTAL_BYTES


@pytest.mark.parametrize("name", NAMES)
def test_the_card_model_index_equals_results_json_and_names_the_baseline(name):
    recorded = results(name)
    card = read_model_card_metrics(folder(name))
    for card_key, metric in CARD_METRICS[name].items():
        assert card[card_key] == pytest.approx(recorded["metrics"][metric], rel=1e-12), card_key
    text = (folder(name) / "README.md").read_text()
    comparison = recorded["comparison"]
    baseline = comparison["baseline"]
    assert f"{baseline['metrics'][comparison['metric']]:.4f}" in text
    assert baseline["model"]["class"] in text and "comparison.png" in text
    # The same batches: the same preset, steps and batch size as the AFT run.
    for key in ("preset", "steps", "batch_size"):
        assert baseline["training"][key] == recorded["training"][key]
    assert comparison["difference"] == pytest.approx(
        recorded["metrics"][comparison["metric"]] - baseline["metrics"][comparison["metric"]])


# --------------------------------------------------------------------------------------------------------------------
# Loading and pipelines, with the package
# --------------------------------------------------------------------------------------------------------------------


def test_the_language_model_generates_through_the_pipeline():
    generator = pipeline("text-generation", model=str(folder(TEXT)))
    out = generator(PROMPT, max_new_tokens=24, do_sample=False)[0]["generated_text"]
    assert out.startswith(PROMPT) and len(out.encode()) > len(PROMPT.encode())
    assert type(generator.model).__name__ == "AFTForCausalLM"


def test_the_classifier_labels_test_images_through_the_pipeline(fashion_test):
    from training.showcase import tensor_to_pil

    classifier = pipeline("image-classification", model=str(folder(IMAGE)), trust_remote_code=False)
    names = classifier.model.config.id2label
    images = [fashion_test[i] for i in range(32)]
    predictions = classifier([tensor_to_pil(image) for image, _ in images], top_k=1)
    right = sum(p[0]["label"] == names[label] for p, (_, label) in zip(predictions, images))
    # The card claims about 0.9 top-1; far fewer than that on 32 images means the pipeline's preprocessing is not the
    # training's (the chance of <= 22 right out of 32 at 0.9 is about 1e-4).
    assert right >= 23, f"{right}/32 right through the pipeline"


# --------------------------------------------------------------------------------------------------------------------
# The metrics, measured again on the fixed part of the test split
# --------------------------------------------------------------------------------------------------------------------


def test_the_language_model_bits_per_character_on_the_test_part_equal_the_recorded_value():
    model = AutoModelForCausalLM.from_pretrained(folder(TEXT)).eval()
    test = load_text(None).test
    measured = evaluate_bits_per_byte(model, test, model.config.max_position_embeddings, 16, max_bytes=TEST_PART_BYTES)
    recorded = results(TEXT)["metrics"]
    assert measured["bytes"] == recorded["part_bytes"]
    assert measured["bpc"] == pytest.approx(recorded["part_bpc"], rel=1e-5)


def test_the_classifier_top1_on_the_test_part_equals_the_recorded_value(fashion_test):
    model = AutoModelForImageClassification.from_pretrained(folder(IMAGE)).eval()
    processor = AutoImageProcessor.from_pretrained(folder(IMAGE), trust_remote_code=False)
    measured = evaluate_classifier(model, fashion_test, CLASSIFIER_PART, model.config.image_size,
                                   processor.image_mean, processor.image_std, 64)
    recorded = results(IMAGE)["metrics"]
    assert measured["images"] == recorded["part_images"]
    # Float sums differ in the last bits between thread counts; that may flip one near-tie among 1000 images.
    assert abs(measured["top1"] - recorded["part_top1"]) <= 1 / CLASSIFIER_PART + 1e-12
    assert measured["loss"] == pytest.approx(recorded["part_loss"], rel=1e-4)


def test_the_pixel_model_bits_per_dimension_on_the_test_part_equal_the_recorded_value(fashion_test):
    model = AutoModelForCausalLM.from_pretrained(folder(PIXELS)).eval()
    measured = evaluate_bits_per_dim(model, fashion_test, PIXEL_PART, 16)
    recorded = results(PIXELS)["metrics"]
    assert measured["images"] == recorded["part_images"]
    assert measured["bpd"] == pytest.approx(recorded["part_bpd"], rel=1e-5)


# --------------------------------------------------------------------------------------------------------------------
# Decoding on the state equals re-reading the whole text
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, prompt, new", [(TEXT, None, 40), (PIXELS, [START] + [0] * 30, 60)])
def test_greedy_decoding_on_the_state_equals_the_forward_over_the_whole_text(name, prompt, new):
    model = AutoModelForCausalLM.from_pretrained(folder(name)).eval()
    if prompt is None:
        prompt = AutoTokenizer.from_pretrained(folder(name))(PROMPT).input_ids
    ids = torch.tensor([prompt])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, do_sample=False,
                             output_logits=True, return_dict_in_generate=True, pad_token_id=0, eos_token_id=None)
        stepped = torch.stack(out.logits, dim=1)  # (1, new, V): from the prompt's prefill, then one step a token
        reread = model(out.sequences[:, :-1]).logits[:, ids.shape[1] - 1:]  # (1, new, V): everything at once
    torch.testing.assert_close(stepped, reread, rtol=1e-4, atol=1e-4)
    # Greedy from re-reading picks the same tokens.
    assert torch.equal(reread.argmax(-1), out.sequences[:, ids.shape[1]:])


# --------------------------------------------------------------------------------------------------------------------
# Without the package: the code saved beside the weights, in a fresh process
# --------------------------------------------------------------------------------------------------------------------

REMOTE_SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    import torch
    from transformers import pipeline

    case = json.loads(sys.argv[1])
    out = {}
    text = pipeline("text-generation", model=case["text"], trust_remote_code=True)
    out["text"] = text(case["prompt"], max_new_tokens=16, do_sample=False)[0]["generated_text"]
    with torch.no_grad():
        out["text_logits"] = text.model(torch.tensor([case["ids"]])).logits[0, -1, :8].tolist()
    out["text_module"] = type(text.model).__module__
    out["tokenizer_module"] = type(text.tokenizer).__module__
    image = pipeline("image-classification", model=case["image"], trust_remote_code=True)
    out["image_module"] = type(image.model).__module__
    out["processor_module"] = type(image.image_processor).__module__
    from PIL import Image
    picture = Image.frombytes("L", (28, 28), bytes(case["pixels"]))
    out["labels"] = [p["label"] for p in image(picture, top_k=3)]
    from transformers import AutoModelForCausalLM
    pixels = AutoModelForCausalLM.from_pretrained(case["pixels_model"], trust_remote_code=True)  # no tokenizer
    with torch.no_grad():
        out["pixel_logits"] = pixels(torch.tensor([case["pixel_ids"]])).logits[0, -1, :8].tolist()
    out["package_imported"] = "modeling_aft" in sys.modules
    print(json.dumps(out))
    """
)


def test_the_three_load_with_trust_remote_code_in_a_process_that_never_imports_the_package(tmp_path, fashion_test):
    from training.showcase import tensor_to_pil

    ids = list(PROMPT.encode())
    pixel_ids = [START] + [int(v) for v in fashion_test[0][0].flatten()[:40]]
    image = fashion_test[0][0]
    case = dict(text=str(folder(TEXT)), image=str(folder(IMAGE)), pixels_model=str(folder(PIXELS)), prompt=PROMPT,
                ids=ids, pixels=image.flatten().tolist(), pixel_ids=pixel_ids)
    script = tmp_path / "remote.py"
    script.write_text(BLOCK_PACKAGE + REMOTE_SCRIPT)
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, str(script), json.dumps(case)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert not got["package_imported"]
    for key in ("text_module", "tokenizer_module", "image_module", "processor_module"):
        assert got[key].startswith("transformers_modules."), (key, got[key])
    # The same outputs as with the package.
    text = pipeline("text-generation", model=str(folder(TEXT)))
    assert got["text"] == text(PROMPT, max_new_tokens=16, do_sample=False)[0]["generated_text"]
    with torch.no_grad():
        torch.testing.assert_close(torch.tensor(got["text_logits"]),
                                   text.model(torch.tensor([ids])).logits[0, -1, :8], rtol=1e-5, atol=1e-5)
        pixels = AutoModelForCausalLM.from_pretrained(folder(PIXELS)).eval()
        torch.testing.assert_close(torch.tensor(got["pixel_logits"]),
                                   pixels(torch.tensor([pixel_ids])).logits[0, -1, :8], rtol=1e-5, atol=1e-5)
    classifier = pipeline("image-classification", model=str(folder(IMAGE)), trust_remote_code=False)
    assert got["labels"] == [p["label"] for p in classifier(tensor_to_pil(image), top_k=3)]


# --------------------------------------------------------------------------------------------------------------------
# make demo, and publishing
# --------------------------------------------------------------------------------------------------------------------


def test_the_showcase_prints_each_metric_beside_the_recorded_one(tmp_path):
    """`make demo`'s command: it loads the three, generates, classifies, draws, and measures again."""
    run = subprocess.run([sys.executable, "-m", "training.showcase", "--max-new-tokens", "40", "--images", "4",
                          "--samples", "2", "--out", str(tmp_path / "samples.png")], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-4000:]
    assert (tmp_path / "samples.png").is_file()
    lines = [line for line in run.stdout.splitlines() if ": now " in line]
    assert len(lines) == 3
    for line, name in zip(lines, NAMES):
        assert line.startswith(name)
        now = float(line.split(": now ")[1].split(",")[0])
        then = float(line.split("recorded ")[1].split(";")[0])
        assert math.isclose(now, then, abs_tol=1.5e-3 if name == IMAGE else 2e-4), line
    assert "Do you wish to run the custom code" not in run.stdout + run.stderr


def test_a_shipped_folder_with_a_missing_checkpoint_is_a_one_line_error(tmp_path):
    run = subprocess.run([sys.executable, "-m", "training.showcase", "--pretrained", str(tmp_path)], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().startswith("error: ") and TEXT in run.stderr and "Traceback" not in run.stderr


LOAD_BY_ID = textwrap.dedent(
    """
    import json
    import sys

    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageClassification

    case = json.loads(sys.argv[1])
    out = {}
    for repo_id, kind in case["repos"]:
        auto = AutoModelForImageClassification if kind == "image" else AutoModelForCausalLM
        model = auto.from_pretrained(repo_id, trust_remote_code=True)
        out[repo_id] = {k: float(v.double().sum()) for k, v in model.state_dict().items()}
    out["package_imported"] = "modeling_aft" in sys.modules
    print(json.dumps(out))
    """
)


def test_the_three_publish_to_the_test_hub_and_load_back_by_repo_id(tmp_path):
    repos = [(f"tester/{name}", "image" if name == IMAGE else "lm") for name in NAMES]
    with HubServer(user="tester") as hub:
        for name, (repo_id, _) in zip(NAMES, repos):
            run = subprocess.run([sys.executable, "-m", "training.publish", str(folder(name)), repo_id],
                                 cwd=REPO_ROOT, env=hub_env(hub, tmp_path / "publish", hub.token),
                                 capture_output=True, text=True, timeout=300)
            assert run.returncode == 0, run.stderr[-4000:]
        script = tmp_path / "load.py"
        script.write_text(BLOCK_PACKAGE + LOAD_BY_ID)
        run = subprocess.run([sys.executable, str(script), json.dumps({"repos": repos})], cwd=tmp_path,
                             env=hub_env(hub, tmp_path / "load", None), capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-4000:]
        got = json.loads(run.stdout.strip().splitlines()[-1])
        cards = {repo_id: hub.hub.repos[repo_id].resolve("main").files["README.md"].data.decode()
                 for repo_id, _ in repos}
    assert not got["package_imported"]
    for name, (repo_id, kind) in zip(NAMES, repos):
        auto = AutoModelForImageClassification if kind == "image" else AutoModelForCausalLM
        local = {k: float(v.double().sum()) for k, v in auto.from_pretrained(folder(name)).state_dict().items()}
        assert got[repo_id] == local, name
        # The published card's loading recipes name the repo id (the folder's card names a placeholder).
        assert f'"{repo_id}"' in cards[repo_id]


@pytest.mark.parametrize("name", NAMES)
def test_the_shipped_code_is_the_packages_current_code(name):
    """trust_remote_code runs the folder's copies: they must be the package's files, every relatively imported
    sibling included (`python -m training.refresh_code` brings them up to date)."""
    from training import refresh_code

    needed = refresh_code.code_files(folder(name))
    assert {"configuration_aft.py", "modeling_aft.py", "ops.py", "ops_common.py"} <= set(needed)
    assert refresh_code.stale_files(folder(name)) == [], "run: python -m training.refresh_code"
