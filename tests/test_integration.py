# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The AFT models inside the transformers ecosystem: remote code, pipelines, Trainer and generate().

Every model here is tiny (width 32, two layers) so that the whole file runs in well under a minute on a CPU.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from PIL import Image
from transformers import AutoImageProcessor, Trainer, TrainingArguments, pipeline
from transformers.dynamic_module_utils import get_relative_imports
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from modeling_aft import AFTConfig, AFTForCausalLM, AFTForImageClassification
from tests.helpers import BLOCK_PACKAGE, randomize
from training.data_images import FASHION_MNIST_MEAN, FASHION_MNIST_STD, make_image_processor, normalize

REPO_ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("full", "local", "simple", "conv")
HIDDEN = 32
MAX_POSITIONS = 64
IMAGE_SIZE = 16
NUM_LABELS = 10
TEXT_KW = dict(
    hidden_size=HIDDEN,
    intermediate_size=64,
    num_hidden_layers=2,
    num_heads=4,
    max_position_embeddings=MAX_POSITIONS,
    local_window=4,
    position_bias_dim=8,
    hidden_dropout_prob=0.0,
)
IMAGE_KW = dict(
    hidden_size=HIDDEN,
    intermediate_size=64,
    num_hidden_layers=2,
    num_heads=4,
    image_size=IMAGE_SIZE,
    patch_size=4,
    max_position_embeddings=(IMAGE_SIZE // 4) ** 2 + 1,
    local_window=4,
    position_bias_dim=8,
    conv_kernel_size=3,
    hidden_dropout_prob=0.0,
)
TEXT = b"the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. " * 8


def make_lm(variant, randomized=True, **overrides):
    torch.manual_seed(0)
    model = AFTForCausalLM(AFTConfig.from_preset(f"cpu-text-{variant}", **{**TEXT_KW, **overrides}))
    return (randomize(model) if randomized else model).eval()


def make_classifier(variant, randomized=True, **overrides):
    torch.manual_seed(0)
    config = AFTConfig.from_preset(f"cpu-image-{variant}", **{**IMAGE_KW, **overrides})
    model = AFTForImageClassification(config)
    return (randomize(model) if randomized else model).eval()


def token_ids(batch, length, seed=0):
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------------------------
# trust_remote_code: a saved folder loads without this package
# ----------------------------------------------------------------------------------------------------------------

REMOTE_SCRIPT = BLOCK_PACKAGE + textwrap.dedent(
    """
    import json
    import sys

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageClassification

    auto_classes = {"lm": AutoModelForCausalLM, "image": AutoModelForImageClassification}
    for case in json.loads(sys.argv[1]):
        config = AutoConfig.from_pretrained(case["folder"], trust_remote_code=True)
        assert type(config).__name__ == "AFTConfig", type(config)
        assert type(config).__module__.startswith("transformers_modules."), type(config).__module__
        model = auto_classes[case["kind"]].from_pretrained(case["folder"], trust_remote_code=True).eval()
        assert type(model).__name__ == case["class_name"], type(model)
        assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
        saved = torch.load(case["expected"])
        with torch.no_grad():
            logits = model(saved["inputs"]).logits
        if not torch.equal(logits, saved["logits"]):
            diff = (logits - saved["logits"]).abs().max().item()
            raise SystemExit(f"{case['folder']}: logits differ from the saved ones by up to {diff}")
        print("matched", case["kind"], config.aft_variant)

    assert "modeling_aft" not in sys.modules, "modeling_aft was imported"
    print("REMOTE-CODE-OK")
    """
)


def _env_without_repo(tmp_path):
    env = dict(os.environ)
    entries = [p for p in env.pop("PYTHONPATH", "").split(os.pathsep) if p]
    kept = [p for p in entries if Path(p).resolve() != REPO_ROOT]
    if kept:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    env["HF_HUB_OFFLINE"] = "1"
    env["HF_HOME"] = str(tmp_path / "hf_home")  # a private modules cache for the remote code
    return env


def test_trust_remote_code_without_the_package(tmp_path):
    cases = []
    for variant in VARIANTS:
        for kind in ("lm", "image"):
            if kind == "lm":
                model, inputs = make_lm(variant), token_ids(2, 21, seed=1)
            else:
                model = make_classifier(variant)
                inputs = torch.randn(2, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(2))
            folder = tmp_path / f"{kind}_{variant}"
            model.save_pretrained(folder)
            with torch.no_grad():
                logits = model(inputs).logits
            expected = tmp_path / f"{kind}_{variant}_expected.pt"
            torch.save({"inputs": inputs, "logits": logits}, expected)
            cases.append(
                dict(folder=str(folder), kind=kind, expected=str(expected), class_name=type(model).__name__)
            )
    script = tmp_path / "check_remote_code.py"
    script.write_text(REMOTE_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), json.dumps(cases)],
        cwd=tmp_path,
        env=_env_without_repo(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-6000:]}"
    assert "REMOTE-CODE-OK" in result.stdout
    assert result.stdout.count("matched") == len(cases)


# ----------------------------------------------------------------------------------------------------------------
# pipeline("image-classification")
# ----------------------------------------------------------------------------------------------------------------


def _save_classifier_with_processor(folder, variant, channels):
    labels = {i: f"label-{chr(ord('a') + i)}" for i in range(NUM_LABELS)}
    model = make_classifier(
        variant, num_channels=channels, id2label=labels, label2id={v: k for k, v in labels.items()}
    )
    model.save_pretrained(folder)
    processor = ViTImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=[0.5] * channels, image_std=[0.5] * channels
    )
    processor.save_pretrained(folder)
    return model, labels


def _check_predictions(predictions, model, processor, image, labels):
    assert isinstance(predictions, list) and len(predictions) == NUM_LABELS
    for item in predictions:
        assert set(item) == {"label", "score"}
    assert {item["label"] for item in predictions} == set(labels.values())
    scores = [item["score"] for item in predictions]
    assert abs(sum(scores) - 1.0) < 1e-4
    assert scores == sorted(scores, reverse=True)
    # The same numbers by hand: the processor, the model, a softmax.
    with torch.no_grad():
        logits = model(processor(images=image, return_tensors="pt")["pixel_values"]).logits[0]
    probabilities = logits.softmax(-1)
    for item in predictions:
        label_id = model.config.label2id[item["label"]]
        assert abs(item["score"] - probabilities[label_id].item()) < 1e-5


@pytest.mark.parametrize("variant", ["full", "conv"])
def test_image_classification_pipeline(variant, tmp_path):
    model, labels = _save_classifier_with_processor(tmp_path, variant, channels=3)
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(processor).__name__.startswith("ViTImageProcessor")

    classifier = pipeline("image-classification", model=str(tmp_path))
    assert isinstance(classifier.model, AFTForImageClassification)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8), mode="RGB")
    predictions = classifier(image, top_k=NUM_LABELS)
    _check_predictions(predictions, model, processor, image, labels)
    assert len(classifier(image)) == 5  # the pipeline's default top_k


def test_image_classification_pipeline_grey_images(tmp_path):
    """A one-channel classifier (the Fashion-MNIST presets). The pipeline turns PIL images into RGB, so grey images
    go in as (H, W, 1) arrays."""
    model, labels = _save_classifier_with_processor(tmp_path, "conv", channels=1)
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    classifier = pipeline("image-classification", model=str(tmp_path))
    image = np.random.default_rng(1).integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.uint8)
    predictions = classifier(image, top_k=NUM_LABELS)
    _check_predictions(predictions, model, processor, image, labels)


# ----------------------------------------------------------------------------------------------------------------
# The AFT image processor saved with a grey classifier: loads with modeling_aft alone, or from the folder's code
# ----------------------------------------------------------------------------------------------------------------

BLOCK_TRAINING = textwrap.dedent(
    """
    import importlib.abc
    import sys


    class BlockTraining(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "training" or name.startswith("training."):
                raise ImportError(f"{name} imported, but a saved classifier must not need the trainers")
            return None


    sys.meta_path.insert(0, BlockTraining())
    """
)

# Runs the saved processor and the pipeline on one grey PNG and saves what they give; the test compares.
PROCESSOR_SCRIPT_BODY = textwrap.dedent(
    """
    import json
    import sys

    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, pipeline

    args = json.loads(sys.argv[1])
    remote = args["remote"]
    if not remote:
        import modeling_aft
    for folder in args["folders"]:
        processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=remote or None)
        if remote:
            assert type(processor).__name__ == "AFTImageProcessorPil", type(processor)
            assert type(processor).__module__.startswith("transformers_modules."), type(processor).__module__
        else:
            assert type(processor) is modeling_aft.AFTImageProcessorPil, type(processor)
    with Image.open(args["image"]) as image:
        image.load()
    assert image.mode == "L", image.mode
    classifier = pipeline("image-classification", model=args["folders"][0], trust_remote_code=remote or None)
    assert type(classifier.image_processor) is type(processor), type(classifier.image_processor)
    if remote:
        assert type(classifier.model).__module__.startswith("transformers_modules."), type(classifier.model)
    outputs = {
        "pixel_values": processor(images=image, return_tensors="pt")["pixel_values"],
        "predictions": classifier(image, top_k=args["top_k"]),
    }
    torch.save(outputs, args["out"])
    assert "training" not in sys.modules, "training was imported"
    if remote:
        assert "modeling_aft" not in sys.modules, "modeling_aft was imported"
    print("PROCESSOR-OK")
    """
)


def _save_grey_classifier(folder):
    """A tiny 28 x 28 one-channel classifier (the Fashion-MNIST layout) with the processor the trainer saves."""
    labels = {i: f"label-{chr(ord('a') + i)}" for i in range(NUM_LABELS)}
    model = make_classifier(
        "conv",
        num_channels=1,
        image_size=28,
        max_position_embeddings=(28 // 4) ** 2 + 1,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    model.save_pretrained(folder)
    make_image_processor(28, 1, FASHION_MNIST_MEAN, FASHION_MNIST_STD).save_pretrained(folder)
    return model


def _grey_image(path):
    pixels = np.random.default_rng(7).integers(0, 256, (28, 28), dtype=np.uint8)  # (H, W): already the model's size
    Image.fromarray(pixels, mode="L").save(path)
    return pixels


def _run_processor_script(tmp_path, folders, image_path, remote):
    out = tmp_path / f"processor_outputs_{'remote' if remote else 'local'}.pt"
    head = BLOCK_PACKAGE + BLOCK_TRAINING if remote else BLOCK_TRAINING
    script = tmp_path / f"check_processor_{'remote' if remote else 'local'}.py"
    script.write_text(head + PROCESSOR_SCRIPT_BODY)
    env = _env_without_repo(tmp_path)
    if not remote:  # modeling_aft from this checkout, whether or not the package is installed
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    args = dict(folders=[str(f) for f in folders], image=str(image_path), out=str(out), top_k=NUM_LABELS, remote=remote)
    result = subprocess.run(
        [sys.executable, str(script), json.dumps(args)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-6000:]}"
    assert "PROCESSOR-OK" in result.stdout
    return torch.load(out)


def _check_against_normalize(outputs, model, pixels):
    """The processor's pixels equal `normalize` of the PNG's pixels; the pipeline's scores are the model's softmax
    on them (float64)."""
    expected = normalize(torch.from_numpy(pixels)[None, None], FASHION_MNIST_MEAN, FASHION_MNIST_STD)  # (1, 1, 28, 28)
    assert outputs["pixel_values"].shape == (1, 1, 28, 28)
    torch.testing.assert_close(outputs["pixel_values"], expected, atol=1e-6, rtol=0)
    with torch.no_grad():
        probabilities = model(expected).logits[0].double().softmax(-1)
    predictions = outputs["predictions"]
    assert len(predictions) == NUM_LABELS
    assert {item["label"] for item in predictions} == set(model.config.id2label.values())
    for item in predictions:
        assert abs(item["score"] - probabilities[model.config.label2id[item["label"]]].item()) < 1e-5


def test_saved_image_processor_carries_its_code(tmp_path):
    _save_grey_classifier(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["auto_map"] == {"AutoImageProcessor": "image_processing_aft.AFTImageProcessorPil"}
    assert saved["image_processor_type"] == "AFTImageProcessor"  # as before the class moved: old folders still load
    assert saved["num_channels"] == 1
    copied = tmp_path / "image_processing_aft.py"
    assert copied.is_file()
    # The dynamic module loader fetches only the files a module imports relatively; this one needs none.
    assert get_relative_imports(str(copied)) == []


def test_grey_classifier_pipeline_with_modeling_aft_only(tmp_path):
    """A process that imports modeling_aft (and not training) loads the processor, also from a folder saved before
    the processor moved into modeling_aft (no auto_map, no code file)."""
    model = _save_grey_classifier(tmp_path / "model")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    saved = json.loads((tmp_path / "model" / "preprocessor_config.json").read_text())
    del saved["auto_map"]
    (legacy / "preprocessor_config.json").write_text(json.dumps(saved))
    pixels = _grey_image(tmp_path / "grey.png")
    outputs = _run_processor_script(tmp_path, [tmp_path / "model", legacy], tmp_path / "grey.png", remote=False)
    _check_against_normalize(outputs, model, pixels)


def test_grey_classifier_pipeline_with_trust_remote_code(tmp_path):
    """A process that never imports modeling_aft nor training runs the folder's copied code."""
    model = _save_grey_classifier(tmp_path / "model")
    pixels = _grey_image(tmp_path / "grey.png")
    outputs = _run_processor_script(tmp_path, [tmp_path / "model"], tmp_path / "grey.png", remote=True)
    _check_against_normalize(outputs, model, pixels)


# ----------------------------------------------------------------------------------------------------------------
# Trainer
# ----------------------------------------------------------------------------------------------------------------


def _train(model, dataset, output_dir, steps=3):
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=steps,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset)
    trainer.train()
    assert trainer.state.global_step == steps
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == steps and all(np.isfinite(logged))
    return logged


@pytest.mark.parametrize("variant", VARIANTS)
def test_trainer_lowers_the_lm_loss(variant, tmp_path):
    model = make_lm(variant, randomized=False)
    # One batch of four rows is the whole data set: every step trains on the fixed batch.
    rows = [list(TEXT[i * 32 : (i + 1) * 32]) for i in range(4)]
    dataset = Dataset.from_dict({"input_ids": rows, "labels": rows})
    batch = torch.tensor(rows)
    with torch.no_grad():
        before = model(input_ids=batch, labels=batch).loss.item()
    logged = _train(model, dataset, tmp_path)
    # The Trainer's first logged loss is the loss of the untrained model on that batch.
    assert abs(logged[0] - before) < 1e-3, (logged[0], before)
    model.eval()
    with torch.no_grad():
        after = model(input_ids=batch, labels=batch).loss.item()
    assert after < before - 0.1, (before, after)


@pytest.mark.parametrize("variant", VARIANTS)
def test_trainer_lowers_the_image_classifier_loss(variant, tmp_path):
    model = make_classifier(variant, randomized=False)
    images = torch.randn(4, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    labels = [3, 1, 4, 1]
    dataset = Dataset.from_dict({"pixel_values": images.tolist(), "labels": labels})
    batch_labels = torch.tensor(labels)
    with torch.no_grad():
        before = model(pixel_values=images, labels=batch_labels).loss.item()
    logged = _train(model, dataset, tmp_path)
    assert abs(logged[0] - before) < 1e-3, (logged[0], before)
    model.eval()
    with torch.no_grad():
        after = model(pixel_values=images, labels=batch_labels).loss.item()
    assert after < before - 0.1, (before, after)


# ----------------------------------------------------------------------------------------------------------------
# generate()
# ----------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def _greedy_reference(model, prompt, new_tokens):
    """Greedy decoding by full forwards without a cache: the sequence and each step's next-token logits."""
    sequence, step_logits = prompt, []
    for _ in range(new_tokens):
        logits = model(sequence).logits[:, -1]
        step_logits.append(logits)
        sequence = torch.cat([sequence, logits.argmax(-1, keepdim=True)], dim=1)
    return sequence, step_logits


def _check_generate(variant, **kwargs):
    model = make_lm(variant)
    prompt = token_ids(2, 6, seed=3)
    new_tokens = 12
    expected, expected_logits = _greedy_reference(model, prompt, new_tokens)
    with torch.no_grad():
        out = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=0,
            return_dict_in_generate=True,
            output_logits=True,
            **kwargs,
        )
    generated = out.sequences
    assert generated.shape == (2, prompt.shape[1] + new_tokens)
    assert torch.equal(generated[:, : prompt.shape[1]], prompt)
    assert len(out.logits) == new_tokens
    for step, (logits, reference) in enumerate(zip(out.logits, expected_logits)):
        torch.testing.assert_close(logits, reference, atol=1e-4, rtol=1e-4, msg=f"logits of generated token {step}")
    assert torch.equal(generated, expected)


@pytest.mark.parametrize("variant", VARIANTS)
def test_greedy_generate_without_cache_equals_an_argmax_loop(variant):
    _check_generate(variant, use_cache=False)


@pytest.mark.parametrize("variant", VARIANTS)
def test_greedy_generate_with_the_default_cache_setting_equals_an_argmax_loop(variant):
    _check_generate(variant)


@pytest.mark.parametrize("variant", ["simple", "conv"])
def test_generate_with_left_padding(variant):
    """Variants without absolute positions generate the same continuation from a left-padded batch."""
    model = make_lm(variant)
    short, long_ = token_ids(1, 4, seed=5), token_ids(1, 9, seed=6)
    pad = 7
    prompt = torch.cat([torch.full((1, 5), pad), short], dim=1)
    batch = torch.cat([prompt, long_], dim=0)
    mask = torch.ones_like(batch)
    mask[0, :5] = 0
    with torch.no_grad():
        generated = model.generate(
            batch, attention_mask=mask, max_new_tokens=6, do_sample=False, use_cache=False, pad_token_id=pad
        )
    assert torch.equal(generated[0, 9:], _greedy_reference(model, short, 6)[0][0, 4:])
    assert torch.equal(generated[1, 9:], _greedy_reference(model, long_, 6)[0][0, 9:])


# ----------------------------------------------------------------------------------------------------------------
# Loading: a config that does not fit its weights is refused before the model is built
# ----------------------------------------------------------------------------------------------------------------

# Run in a child process, so that its peak memory is its own: from_pretrained under an address-space limit of 1 GB
# above what the imports took (a regression fails on that limit instead of filling the machine), then the growth of
# the peak resident size and the time taken.
LOAD_PROBE = textwrap.dedent(
    """
    import json
    import resource
    import sys
    import time

    from modeling_aft import AFTForCausalLM

    case = json.loads(sys.argv[1])
    vm = int(next(line for line in open("/proc/self/status") if line.startswith("VmSize:")).split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + 2**30, resource.RLIM_INFINITY))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        model = AFTForCausalLM.from_pretrained(case["source"], **case.get("kwargs", {}))
        error = None
    except Exception as err:
        error = f"{type(err).__name__}: {err}"
    print(json.dumps({"error": error, "seconds": time.perf_counter() - start,
                      "grown_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}))
    """
)


def _probe_load(source, env=None, **kwargs):
    run = subprocess.run([sys.executable, "-c", LOAD_PROBE, json.dumps({"source": str(source), "kwargs": kwargs})],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def _edit_config(folder, **fields):
    config = json.loads((folder / "config.json").read_text())
    config.update(fields)
    (folder / "config.json").write_text(json.dumps(config, indent=2))


@pytest.mark.parametrize(
    "saved, edits, shard, words",
    [
        # 50 million positions against weights for 64: U and V alone would be 3.2 GB.
        ({}, dict(max_position_embeddings=50_000_000), None,
         ["max_position_embeddings=50000000", "for 64 positions", "model.safetensors", "conversion.resize_positions"]),
        # A dense 20,000 x 20,000 bias against factorised weights was built (1.6 GB a layer), left random, and loaded
        # with a warning.
        ({}, dict(max_position_embeddings=20_000, position_bias_dim=0), None,
         ["position_bias_dim=0", "position_bias_u", "set position_bias_dim to 8"]),
        # Shards: the index names the file that holds the bias.
        ({}, dict(max_position_embeddings=50_000_000), "20KB",
         ["max_position_embeddings=50000000", "model-0000", "for 64 positions"]),
        # Position embeddings of an AFT-simple text model grow with the length too.
        (dict(variant="simple", use_position_embeddings=True), dict(max_position_embeddings=40_000_000), None,
         ["max_position_embeddings=40000000", "embed_positions.weight", "for 64 positions"]),
    ],
    ids=["too-long", "dense-against-factorised", "sharded", "position-embeddings"],
)
def test_a_config_that_does_not_fit_its_weights_is_refused_before_allocating(tmp_path, saved, edits, shard, words):
    saved = dict(saved)
    make_lm(saved.pop("variant", "local"), randomized=False, **saved).save_pretrained(
        tmp_path, **({"max_shard_size": shard} if shard else {}))
    if shard:
        assert (tmp_path / "model.safetensors.index.json").is_file()
    _edit_config(tmp_path, **edits)
    result = _probe_load(tmp_path)
    assert result["error"] is not None and result["error"].startswith("ValueError: "), result
    for word in words:
        assert word in result["error"], (word, result["error"])
    assert result["grown_mb"] < 100, result  # before the check: 1.5 GB and more, for 6 to 19 seconds
    assert result["seconds"] < 5, result


def test_a_config_that_fits_its_weights_still_loads(tmp_path):
    model = make_lm("local")
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    loaded = AFTForCausalLM.from_pretrained(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_the_check_reads_a_hub_repository_from_the_cache_after_download(tmp_path):
    from tests.helpers import hub_env
    from tests.hub_server import HubServer

    folder = tmp_path / "model"
    make_lm("local", randomized=False).save_pretrained(folder)
    _edit_config(folder, max_position_embeddings=50_000_000)
    upload = textwrap.dedent(
        """
        import sys
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo("tester/too-long")
        api.upload_folder(repo_id="tester/too-long", folder_path=sys.argv[1])
        """
    )
    with HubServer(user="tester") as hub:
        run = subprocess.run([sys.executable, "-c", upload, str(folder)], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=300, env=hub_env(hub, tmp_path / "upload", hub.token))
        assert run.returncode == 0, run.stderr[-4000:]
        result = _probe_load("tester/too-long", env=hub_env(hub, tmp_path / "load", None))
    assert result["error"] is not None and result["error"].startswith("ValueError: "), result
    assert "max_position_embeddings=50000000" in result["error"] and "for 64 positions" in result["error"]
    assert result["grown_mb"] < 100, result


def test_ignore_mismatched_sizes_still_gives_a_classifier_a_new_head(tmp_path):
    make_classifier("full").save_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        AFTForImageClassification.from_pretrained(tmp_path, num_labels=3)
    model = AFTForImageClassification.from_pretrained(tmp_path, num_labels=3, ignore_mismatched_sizes=True)
    assert model.classifier.weight.shape == (3, HIDDEN)


def test_ignore_mismatched_sizes_lets_a_new_length_start_afresh_but_not_a_new_layout(tmp_path):
    make_lm("local", randomized=False).save_pretrained(tmp_path)
    _edit_config(tmp_path, max_position_embeddings=2 * MAX_POSITIONS)
    with pytest.raises(ValueError, match="max_position_embeddings=128"):
        AFTForCausalLM.from_pretrained(tmp_path)
    model = AFTForCausalLM.from_pretrained(tmp_path, ignore_mismatched_sizes=True)
    assert model.model.layers[0].mixer.position_bias_u.shape == (2 * MAX_POSITIONS, 8)
    _edit_config(tmp_path, max_position_embeddings=MAX_POSITIONS, position_bias_dim=0)
    with pytest.raises(ValueError, match="set position_bias_dim to 8"):
        AFTForCausalLM.from_pretrained(tmp_path, ignore_mismatched_sizes=True)


def test_position_tables_above_the_limit_are_refused_unless_the_limit_is_raised(monkeypatch):
    from modeling_aft import AFTPreTrainedModel

    config = AFTConfig.from_preset("cpu-text-full", **{**TEXT_KW, "position_bias_dim": 0})
    assert config.position_table_bytes() == 2 * MAX_POSITIONS**2 * 4  # two dense 64 x 64 float32 biases
    monkeypatch.setattr(AFTPreTrainedModel, "max_position_table_bytes", 30_000)
    with pytest.raises(ValueError, match=r"needs 0\.0 GB .* above the limit") as info:
        AFTForCausalLM(config)
    assert "position_bias_dim=0" in str(info.value) and "max_position_table_bytes" in str(info.value)
    monkeypatch.setattr(AFTPreTrainedModel, "max_position_table_bytes", None)
    assert AFTForCausalLM(config).model.layers[1].mixer.position_bias.shape == (MAX_POSITIONS, MAX_POSITIONS)


def test_the_default_limit_refuses_a_dense_bias_of_gigabytes_without_allocating_it():
    # One dense 40,000 x 40,000 float32 bias is 6.4 GB; the refusal must come before the parameter exists (the child
    # runs under an address-space limit, so that a regression fails there instead of filling the machine).
    fields = {**TEXT_KW, "num_hidden_layers": 1, "position_bias_dim": 0, "max_position_embeddings": 40_000}
    script = textwrap.dedent(
        """
        import json
        import resource
        import sys

        from modeling_aft import AFTConfig, AFTForCausalLM

        vm = int(next(line for line in open("/proc/self/status") if line.startswith("VmSize:")).split()[1]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + 2**30, resource.RLIM_INFINITY))
        try:
            AFTForCausalLM(AFTConfig.from_preset("cpu-text-full", **json.loads(sys.argv[1])))
        except ValueError as err:
            print(err)
        """
    )
    run = subprocess.run([sys.executable, "-c", script, json.dumps(fields)], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "max_position_embeddings=40000" in run.stdout and "needs 6.4 GB" in run.stdout, run.stdout
