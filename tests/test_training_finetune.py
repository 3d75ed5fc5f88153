# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""training.finetune: a saved AFT checkpoint fine-tuned with transformers' Trainer learns (its held-out loss drops),
the saved result reloads and gives the numbers the results file claims, bad input stops before any training; and the
example Accelerate configs load with accelerate's own loader and launch what they say."""

import contextlib
import io
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DeepSpeedPlugin, DistributedType
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env
from PIL import Image
from torch.utils.data import DataLoader
from transformers import AutoModelForCausalLM, AutoModelForImageClassification, AutoTokenizer
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

import modeling_aft
from modeling_aft import AFTByteTokenizer, AFTConfig, AFTForCausalLM, AFTForImageClassification
from training import finetune
from training.data_images import UnreadableImageError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "training" / "accelerate_configs"
SENTENCE = "the quick brown fox jumps over the lazy dog. "
TINY = dict(num_hidden_layers=1, hidden_size=32, intermediate_size=64, hidden_dropout_prob=0.0)
# A fast fine-tuning: tiny models learn a repeated sentence or dark-vs-bright within 30 steps at this rate.
FAST = ["--max-steps", "30", "--batch-size", "8", "--learning-rate", "3e-3", "--warmup-ratio", "0.0", "--cpu"]


# ------------------------------------------------------------------------------------------------------------------
# Fixtures: tiny checkpoints and data, written once per module
# ------------------------------------------------------------------------------------------------------------------


# Tiny models on a shared 2-core machine: one thread (tests/conftest.py) runs them faster than two.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def text_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("text-model")
    torch.manual_seed(0)
    AFTForCausalLM(AFTConfig.from_preset("cpu-text-simple", **TINY)).save_pretrained(folder)
    AFTByteTokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def local_text_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("local-model")
    config = AFTConfig.from_preset("cpu-text-local", **TINY, max_position_embeddings=16, local_window=4)
    AFTForCausalLM(config).save_pretrained(folder)
    AFTByteTokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "corpus.txt"
    path.write_text(SENTENCE * 60, encoding="utf-8")  # 2700 bytes: 75 blocks of 32, 8 of them held out
    return path


@pytest.fixture(scope="module")
def image_model(tmp_path_factory) -> Path:
    """A grey 28 x 28 classifier saved with 10 labels, to be fine-tuned on 2: its head must be replaced."""
    folder = tmp_path_factory.mktemp("image-model")
    torch.manual_seed(0)
    config = AFTConfig.from_preset("cpu-image-simple", **TINY)
    AFTForImageClassification(config).save_pretrained(folder)
    grey = dict(image_mean=[0.5], image_std=[0.5], do_convert_rgb=False)
    ViTImageProcessorPil(size={"height": 28, "width": 28}, **grey).save_pretrained(folder)
    return folder


def _write_images(folder: Path, value: int, count: int, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        pixels = np.clip(value + rng.normal(0, 12, (28, 28)), 0, 255).astype(np.uint8)  # (H, W)
        Image.fromarray(pixels, mode="L").save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """Two classes a model separates by mean brightness alone."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for split, count in (("train", 16), ("val", 6)):
        _write_images(root / split / "bright", 210, count, rng)
        _write_images(root / split / "dark", 45, count, rng)
    return root


# ------------------------------------------------------------------------------------------------------------------
# Naive references
# ------------------------------------------------------------------------------------------------------------------


def _naive_blocks(ids: list[int], seq_len: int, eval_fraction: float) -> tuple[list, list]:
    held_out = int(round(len(ids) * eval_fraction))
    train, evaluation = ids[: len(ids) - held_out], ids[len(ids) - held_out :]

    def cut(part):
        return [part[i : i + seq_len] for i in range(0, len(part) - seq_len + 1, seq_len)]

    return cut(train), cut(evaluation)


@torch.no_grad()
def _lm_loss_float64(model, blocks: list[list[int]]) -> float:
    """Mean next-token cross-entropy over the blocks, computed in float64 by hand."""
    losses = []
    for block in blocks:
        ids = torch.tensor([block])  # (1, T)
        logits = model(ids).logits.double()[0, :-1]  # (T-1, V)
        log_probs = logits - torch.logsumexp(logits, dim=-1, keepdim=True)  # (T-1, V)
        losses.append(-log_probs[torch.arange(len(block) - 1), ids[0, 1:]].mean())
    return float(torch.stack(losses).mean())


@torch.no_grad()
def _image_loss_and_accuracy(model, root: Path) -> tuple[float, float]:
    """Cross-entropy and accuracy on root/val, preprocessing by hand: grey, / 255, (x - 0.5) / 0.5."""
    losses, hits = [], []
    for label, name in model.config.id2label.items():
        for path in sorted((root / "val" / name).glob("*.png")):
            pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float64) / 255.0  # (H, W)
            x = torch.tensor((pixels - 0.5) / 0.5, dtype=torch.float32)[None, None]  # (1, 1, H, W)
            logits = model(pixel_values=x).logits.double()[0]  # (C,)
            losses.append(torch.logsumexp(logits, 0) - logits[int(label)])
            hits.append(float(int(logits.argmax()) == int(label)))
    return float(torch.stack(losses).mean()), float(np.mean(hits))


# ------------------------------------------------------------------------------------------------------------------
# Data preparation
# ------------------------------------------------------------------------------------------------------------------


def test_byte_ids_are_the_files_bytes_and_equal_the_tokenizer(tmp_path):
    text = "naïve café, 🤗 and plain ascii\n" * 3
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    ids = finetune.read_token_ids(path, AFTByteTokenizer())
    assert ids.tolist() == list(text.encode("utf-8"))
    assert ids.tolist() == AFTByteTokenizer()(text)["input_ids"]


@pytest.mark.parametrize("length, seq_len, fraction", [(1000, 32, 0.1), (517, 7, 0.3), (64, 16, 0.25)])
def test_blocks_are_non_overlapping_and_eval_is_the_end_of_the_text(length, seq_len, fraction):
    ids = np.random.default_rng(length).integers(0, 256, length)
    train, evaluation = finetune.text_datasets(ids, seq_len, fraction)
    want_train, want_eval = _naive_blocks(ids.tolist(), seq_len, fraction)
    assert train["input_ids"] == want_train and train["labels"] == want_train
    assert evaluation["input_ids"] == want_eval and evaluation["labels"] == want_eval


def test_seq_len_limit_only_for_variants_with_absolute_positions():
    for variant in ("full", "local"):
        config = AFTConfig.from_preset(f"cpu-text-{variant}", max_position_embeddings=64, local_window=8)
        finetune.check_seq_len(config, 64)
        with pytest.raises(ValueError, match="max_position_embeddings=64"):
            finetune.check_seq_len(config, 65)
    for variant in ("simple", "conv"):
        finetune.check_seq_len(AFTConfig.from_preset(f"cpu-text-{variant}", max_position_embeddings=64), 4096)


def test_accuracy_metric_matches_counting():
    logits = np.random.default_rng(0).normal(size=(50, 3))
    labels = np.random.default_rng(1).integers(0, 3, 50)
    want = sum(int(max(range(3), key=lambda c: row[c]) == y) for row, y in zip(logits, labels)) / 50
    got = finetune.accuracy(finetune.EvalPrediction(predictions=logits, label_ids=labels))["accuracy"]
    assert got == pytest.approx(want)


# ------------------------------------------------------------------------------------------------------------------
# End to end
# ------------------------------------------------------------------------------------------------------------------


def test_causal_lm_finetune_lowers_held_out_loss_and_saves_what_it_reports(text_model, text_file, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["causal-lm", str(text_model), "--text", str(text_file), "--output-dir", str(out), "--seq-len", "32"]
    assert finetune.main(args + FAST) == 0
    printed = capsys.readouterr().out
    assert "before: eval loss" in printed and "after: eval loss" in printed
    results = json.loads((out / finetune.RESULTS_FILE).read_text())
    before, after = results["before"]["eval_loss"], results["after"]["eval_loss"]
    assert results["steps"] == 30
    assert after < before - 1.0, (before, after)  # from ~ln 256 = 5.5 nats towards the sentence's entropy

    _, eval_blocks = _naive_blocks(list(text_file.read_bytes()), 32, 0.1)
    assert results["data"]["eval_blocks"] == len(eval_blocks)
    untrained = AutoModelForCausalLM.from_pretrained(text_model).eval()
    trained = AutoModelForCausalLM.from_pretrained(out).eval()
    assert before == pytest.approx(_lm_loss_float64(untrained, eval_blocks), rel=1e-4)
    assert after == pytest.approx(_lm_loss_float64(trained, eval_blocks), rel=1e-4)
    assert results["after"]["eval_bits_per_token"] == pytest.approx(after / math.log(2))
    assert isinstance(AutoTokenizer.from_pretrained(out), AFTByteTokenizer)


def test_image_finetune_replaces_the_head_and_learns_the_classes(image_model, image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["image-classification", str(image_model), "--images", str(image_folder), "--output-dir", str(out)]
    assert finetune.main(args + FAST + ["--cache-dir", str(tmp_path / "cache")]) == 0
    assert "accuracy" in capsys.readouterr().out
    results = json.loads((out / finetune.RESULTS_FILE).read_text())
    before, after = results["before"], results["after"]
    assert after["eval_loss"] < before["eval_loss"] - 0.2, (before, after)
    assert after["eval_accuracy"] > before["eval_accuracy"] or before["eval_accuracy"] == 1.0
    assert after["eval_accuracy"] == 1.0

    trained = AutoModelForImageClassification.from_pretrained(out).eval()
    assert trained.config.num_labels == 2 and trained.config.id2label == {0: "bright", 1: "dark"}
    loss, accuracy = _image_loss_and_accuracy(trained, image_folder)
    assert after["eval_loss"] == pytest.approx(loss, rel=1e-4)
    assert after["eval_accuracy"] == pytest.approx(accuracy)
    assert (out / "preprocessor_config.json").is_file()


# ------------------------------------------------------------------------------------------------------------------
# Errors: a clear message, and nothing trained or saved
# ------------------------------------------------------------------------------------------------------------------


def _fails(args: list[str], match: str, out: Path) -> str:
    """The command stops with one line `error: ...` on stderr (after any progress bars) and exit status 2, having
    saved nothing; returns that line."""
    stderr = io.StringIO()
    with pytest.raises(SystemExit) as error, contextlib.redirect_stderr(stderr):
        finetune.main(args + ["--output-dir", str(out), "--cpu"])
    line = stderr.getvalue().strip().splitlines()[-1]
    assert error.value.code == 2 and line.startswith("error: ") and match in line, (error.value.code, line)
    assert not (out / "model.safetensors").exists() and not (out / finetune.RESULTS_FILE).exists()
    return line


def test_text_errors_stop_before_training(text_model, local_text_model, text_file, tmp_path):
    out = tmp_path / "out"
    empty, short = tmp_path / "empty.txt", tmp_path / "short.txt"
    empty.write_bytes(b"")
    short.write_bytes(b"x" * 40)
    no_config = tmp_path / "no-config"
    no_config.mkdir()
    text = ["--text", str(text_file)]
    _fails(["causal-lm", str(tmp_path / "missing"), *text], "does not exist", out)
    _fails(["causal-lm", str(no_config), *text], "no config.json", out)
    _fails(["causal-lm", str(text_model), "--text", str(tmp_path / "nope.txt")], "nope.txt does not exist", out)
    _fails(["causal-lm", str(text_model), "--text", str(empty)], "is empty", out)
    _fails(["causal-lm", str(text_model), "--text", str(short), "--seq-len", "32"], "fewer than one block", out)
    _fails(["causal-lm", str(local_text_model), *text, "--seq-len", "17"], "max_position_embeddings=16", out)
    _fails(["causal-lm", str(text_model), *text, "--eval-fraction", "1.5"], "eval_fraction=1.5", out)


def test_image_errors_stop_before_training(image_model, image_folder, tmp_path):
    out = tmp_path / "out"
    no_val, no_images, one_class = tmp_path / "no-val", tmp_path / "no-images", tmp_path / "one-class"
    (no_val / "train" / "a").mkdir(parents=True)
    (no_images / "train" / "a").mkdir(parents=True)
    (no_images / "val" / "a").mkdir(parents=True)
    rng = np.random.default_rng(0)
    _write_images(no_val / "train" / "b", 100, 1, rng)
    _write_images(one_class / "train" / "a", 100, 2, rng)
    _write_images(one_class / "val" / "a", 100, 1, rng)
    model = str(image_model)
    no_processor = tmp_path / "no-processor"
    no_processor.mkdir()
    (no_processor / "config.json").write_text((image_model / "config.json").read_text())
    _fails(["image-classification", str(no_processor), "--images", str(image_folder)], "no preprocessor_config", out)
    _fails(["image-classification", model, "--images", str(tmp_path / "missing")], "does not exist", out)
    _fails(["image-classification", model, "--images", str(no_val)], "val does not exist", out)
    _fails(["image-classification", model, "--images", str(no_images)], "holds no images", out)
    _fails(["image-classification", model, "--images", str(one_class)], "needs 2 or more", out)


def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(1)
    pixels = np.clip(128 + rng.normal(0, 40, (28, 28)), 0, 255).astype(np.uint8)  # (H, W)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, fmt)
    return buffer.getvalue()


DAMAGED = {  # name: (what the file holds, PIL's complaint as the message quotes it)
    "cut.png": (lambda: _encoded("PNG")[: len(_encoded("PNG")) * 2 // 3], "Truncated File Read"),
    "cut.jpg": (lambda: _encoded("JPEG")[: len(_encoded("JPEG")) * 2 // 3], "image file is truncated"),
    "empty.png": (lambda: b"", "an empty file"),
    "notes.jpg": (lambda: b"a text file that only carries an image's name\n", "not an image file PIL can identify"),
}


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_a_damaged_image_is_named_before_the_model_is_loaded(image_model, image_folder, tmp_path, monkeypatch, name):
    images = tmp_path / "images"
    shutil.copytree(image_folder, images)
    damaged = images / ("val" if name.endswith(".jpg") else "train") / "dark" / name
    damaged.write_bytes(DAMAGED[name][0]())

    def no_weights(*args, **kwargs):
        raise AssertionError("the model was loaded before the image files were checked")

    monkeypatch.setattr(finetune.AutoModelForImageClassification, "from_pretrained", no_weights)
    line = _fails(["image-classification", str(image_model), "--images", str(images), "--cache-dir",
                   str(tmp_path / "cache")], "error: 1 image file(s) cannot be read: ", tmp_path / "out")
    assert f"{damaged} (" in line and DAMAGED[name][1] in line and "Remove or replace" in line, line
    assert line.count(str(images)) == 1  # only the damaged file


def test_an_image_damaged_after_the_check_is_named_when_it_is_decoded(image_model, image_folder, tmp_path,
                                                                      monkeypatch):
    images = tmp_path / "images"
    shutil.copytree(image_folder, images)
    damaged = images / "val" / "dark" / "3.png"
    damaged.write_bytes(damaged.read_bytes()[:60])
    # As if damaged after the check (raising=False: before the check existed, this test saw datasets' bare error).
    monkeypatch.setattr(finetune, "check_image_files", lambda paths: None, raising=False)
    line = _fails(["image-classification", str(image_model), "--images", str(images), "--cache-dir",
                   str(tmp_path / "cache"), *FAST], f"error: cannot read image {damaged} (", tmp_path / "out")
    assert "remove or replace the file" in line


def test_a_worker_processs_decode_error_comes_back_on_one_line(tmp_path):
    """With --num-workers, the error is raised in a DataLoader worker and re-raised with its traceback as message."""
    path = tmp_path / "cut.jpg"
    path.write_bytes(DAMAGED["cut.jpg"][0]())

    def read(batch):
        return [np.asarray(finetune.read_image({"path": str(path), "bytes": None}, "L")) for _ in batch]

    with pytest.raises(UnreadableImageError) as error:
        next(iter(DataLoader([0], batch_size=1, num_workers=1, collate_fn=read)))
    assert "Traceback" in str(error.value)  # what torch hands back: the worker's traceback as the message
    line = finetune.one_line(error.value)
    assert line.startswith(f"cannot read image {path} (OSError: image file is truncated"), line
    assert line.endswith("; remove or replace the file.") and "\n" not in line


# ------------------------------------------------------------------------------------------------------------------
# Accelerate configs
# ------------------------------------------------------------------------------------------------------------------

EXPECTED = {
    "ddp": DistributedType.MULTI_GPU,
    "fsdp": DistributedType.FSDP,
    "deepspeed": DistributedType.DEEPSPEED,
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_accelerate_config_loads_with_accelerates_loader(name):
    path = CONFIGS / f"{name}.yaml"
    config = load_config_from_file(str(path))
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type == EXPECTED[name]
    assert (config.num_processes, config.num_machines, config.mixed_precision) == (8, 1, "bf16")
    assert ClusterConfig.from_yaml_file(str(path)).to_dict() == config.to_dict()
    usage = f"accelerate launch --config_file training/accelerate_configs/{name}.yaml -m training.train_text"
    assert usage in path.read_text()


def _launch_env(name: str) -> tuple:
    """What `accelerate launch --config_file NAME.yaml -m training.train_text` would hand the processes."""
    argv = ["--config_file", str(CONFIGS / f"{name}.yaml"), "-m", "training.train_text", "--preset", "x"]
    args, defaults, _ = _validate_launch_command(launch_command_parser().parse_args(argv))
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
        return args, prepare_deepspeed_cmd_env(args)[1]
    args.main_process_port = 29500
    return args, prepare_multi_gpu_env(args)


def test_ddp_config_launches_eight_bf16_processes():
    args, env = _launch_env("ddp")
    assert args.multi_gpu and not args.use_fsdp and not args.use_deepspeed
    assert args.num_processes == 8 and env["ACCELERATE_MIXED_PRECISION"] == "bf16"


def test_fsdp_config_shards_fully_wraps_aft_blocks_and_saves_full_state_dicts():
    args, env = _launch_env("fsdp")
    assert args.use_fsdp and args.num_processes == 8
    assert env["FSDP_VERSION"] == "1" and env["FSDP_SHARDING_STRATEGY"] == "FULL_SHARD"
    assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"
    wrapped = env["FSDP_TRANSFORMER_CLS_TO_WRAP"]
    assert wrapped == modeling_aft.AFTBlock.__name__ and wrapped in modeling_aft.AFTPreTrainedModel._no_split_modules
    assert env["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT" and env["FSDP_USE_ORIG_PARAMS"] == "true"


def test_deepspeed_config_is_zero2_bf16_with_auto_accumulation_and_clipping(monkeypatch):
    args, env = _launch_env("deepspeed")
    assert args.use_deepspeed and args.num_processes == 8 and env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    for key, value in env.items():
        if key.startswith("ACCELERATE_"):
            monkeypatch.setenv(key, value)
    plugin = DeepSpeedPlugin()  # reads the launch environment, as in the launched processes
    plugin.set_mixed_precision("bf16")
    ds = plugin.deepspeed_config
    assert ds["zero_optimization"]["stage"] == 2
    assert ds["gradient_accumulation_steps"] == "auto" and ds["gradient_clipping"] == "auto"
    assert ds["bf16"]["enabled"] is True
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "none"
    assert os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true"


# ------------------------------------------------------------------------------------------------------------------
# LoRA (--lora): only adapters train; the adapter folder loads three ways and gives the merged model's numbers
# ------------------------------------------------------------------------------------------------------------------

LORA_FAST = ["--lora", "--lora-rank", "4", "--lora-alpha", "8", "--learning-rate", "5e-2"]


@pytest.fixture(scope="module")
def lora_run(text_model, text_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lora") / "out"
    args = ["causal-lm", str(text_model), "--text", str(text_file), "--output-dir", str(out), "--seq-len", "32"]
    assert finetune.main(args + [*FAST, *LORA_FAST, "--merge"]) == 0
    return out


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=ids, use_cache=False).logits


def test_lora_trains_only_the_adapters_and_lowers_held_out_loss(lora_run, text_model, text_file):
    results = json.loads((lora_run / finetune.RESULTS_FILE).read_text())
    before, after = results["before"]["eval_loss"], results["after"]["eval_loss"]
    assert after < before - 0.2, (before, after)  # a frozen random tiny base: the adapters move it less than full
    base = AutoModelForCausalLM.from_pretrained(text_model)
    linear = [m for name, m in base.named_modules() if name.rsplit(".", 1)[-1] in finetune.DEFAULT_LORA_TARGETS]
    expected = sum(4 * (m.in_features + m.out_features) for m in linear)  # r (d_in + d_out) per adapted layer
    assert results["trainable_parameters"] == expected
    assert results["all_parameters"] == sum(p.numel() for p in base.parameters()) + expected
    assert results["lora"] == {"rank": 4, "alpha": 8.0, "dropout": 0.0, "targets": list(finetune.DEFAULT_LORA_TARGETS)}
    # The adapter folder holds the adapter, not a copy of the base weights.
    assert (lora_run / "adapter_model.safetensors").is_file() and not (lora_run / "model.safetensors").exists()
    # The merged folder is a plain model that gives the reported held-out loss.
    _, eval_blocks = _naive_blocks(list(text_file.read_bytes()), 32, 0.1)
    merged = AutoModelForCausalLM.from_pretrained(lora_run / finetune.MERGED_FOLDER)
    assert after == pytest.approx(_lm_loss_float64(merged.eval(), eval_blocks), rel=1e-4)


def test_the_adapter_loads_with_auto_peft_peft_model_and_pipeline_and_equals_the_merged_model(lora_run, text_model):
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import pipeline

    ids = torch.tensor([list(SENTENCE[:20].encode())])  # (1, 20)
    merged = _logits(AutoModelForCausalLM.from_pretrained(lora_run / finetune.MERGED_FOLDER), ids)
    base = _logits(AutoModelForCausalLM.from_pretrained(text_model), ids)
    assert (merged - base).abs().max() > 1e-2  # the adapter changed the model
    auto = AutoPeftModelForCausalLM.from_pretrained(lora_run)  # finds the base through adapter_config.json
    wrapped = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(text_model), lora_run)
    generator = pipeline("text-generation", model=str(lora_run))
    for model in (auto, wrapped, generator.model):
        torch.testing.assert_close(_logits(model, ids), merged, atol=1e-4, rtol=1e-4)
    text = generator(SENTENCE[:12], max_new_tokens=8, do_sample=False)[0]["generated_text"]
    assert text.startswith(SENTENCE[:12]) and len(text) > 12


def test_finetune_writes_the_tokenizers_special_ids_so_trainer_has_nothing_to_align(lora_run, text_model, text_file,
                                                                                   tmp_path, caplog):
    for name in ("config.json", "generation_config.json"):
        saved = json.loads((lora_run / finetune.MERGED_FOLDER / name).read_text())
        assert {saved[key] for key in ("bos_token_id", "eos_token_id", "pad_token_id")} == {0}, name
    assert json.loads((text_model / "config.json").read_text()).get("pad_token_id") is None  # the fixture lacks them
    with caplog.at_level("WARNING", logger="transformers"):
        args = ["causal-lm", str(text_model), "--text", str(text_file), "--output-dir", str(tmp_path / "o"),
                "--seq-len", "32", "--max-steps", "1", "--cpu"]
        assert finetune.main(args) == 0
    assert "PAD/BOS/EOS" not in caplog.text


def test_lora_image_classifier_trains_the_new_head_in_full(image_model, image_folder, tmp_path):
    from peft import PeftModel

    out = tmp_path / "out"
    args = ["image-classification", str(image_model), "--images", str(image_folder), "--output-dir", str(out)]
    assert finetune.main(args + FAST + LORA_FAST + ["--merge", "--cache-dir", str(tmp_path / "cache")]) == 0
    results = json.loads((out / finetune.RESULTS_FILE).read_text())
    assert results["after"]["eval_accuracy"] == 1.0, results
    assert json.loads((out / "adapter_config.json").read_text())["modules_to_save"] == ["classifier"]
    merged = AutoModelForImageClassification.from_pretrained(out / finetune.MERGED_FOLDER).eval()
    assert merged.config.id2label == {0: "bright", 1: "dark"}
    assert results["after"]["eval_loss"] == pytest.approx(_image_loss_and_accuracy(merged, image_folder)[0], rel=1e-3,
                                                          abs=1e-6)
    base = AutoModelForImageClassification.from_pretrained(image_model, num_labels=2, ignore_mismatched_sizes=True)
    wrapped = PeftModel.from_pretrained(base, out).eval()
    pixels = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(wrapped(pixel_values=pixels).logits, merged(pixel_values=pixels).logits)


def test_lora_errors_stop_before_training(text_model, local_text_model, text_file, tmp_path):
    text = ["causal-lm", str(text_model), "--text", str(text_file)]
    _fails([*text, "--merge"], "only apply with --lora", tmp_path / "a")
    _fails([*text, "--lora", "--lora-rank", "0"], "--lora-rank=0", tmp_path / "b")
    _fails([*text, "--lora", "--lora-targets", "q_proj,qkv"], "['qkv']", tmp_path / "c")
    local = ["causal-lm", str(local_text_model), "--text", str(text_file), "--seq-len", "16", "--lora"]
    _fails([*local, "--lora-targets", "q_proj,conv_gamma"], "conv_gamma: this model's mixers have no", tmp_path / "d")
    _fails([*local, "--lora-targets", "position_bias"], "have no position_bias (theirs: ['position_bias_u'",
           tmp_path / "f")
    _fails([*local, "--lora-targets", "q_proj,position_bias_u"], "cannot be combined with its linear layers ['q_proj']",
           tmp_path / "g")
    _fails([*text, "--push-to-hub", "tester/x"], "needs --lora", tmp_path / "e")


def test_lora_adapter_is_pushed_as_one_commit_without_the_merged_model(text_model, text_file, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from tests.helpers import HUB_VARIABLES
    from tests.hub_server import HubServer

    with HubServer(user="tester") as hub:
        for key in HUB_VARIABLES:
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("HF_TOKEN", hub.token)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_saved_token"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite may run offline; this Hub is local
        out = tmp_path / "out"
        args = ["causal-lm", str(text_model), "--text", str(text_file), "--output-dir", str(out), "--seq-len", "32",
                "--max-steps", "2", "--cpu", "--lora", "--merge", "--push-to-hub", "tester/aft-lora"]
        assert finetune.main(args) == 0
        files = hub.files("tester/aft-lora", "main")
    assert files["adapter_model.safetensors"] == (out / "adapter_model.safetensors").read_bytes()
    assert {"adapter_config.json", "tokenizer_config.json", finetune.RESULTS_FILE} <= set(files)
    assert not any(name.startswith("merged/") or name == "training_args.bin" for name in files)
    assert json.loads((out / finetune.RESULTS_FILE).read_text())["hub"]["repo_id"] == "tester/aft-lora"


def test_lora_push_with_a_refused_token_stops_before_training(text_model, text_file, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from tests.helpers import HUB_VARIABLES
    from tests.hub_server import HubServer

    with HubServer(user="tester") as hub:
        for key in HUB_VARIABLES:
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("HF_TOKEN", "hf_wrong")
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_saved_token"))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite may run offline; this Hub is local
        line = _fails(["causal-lm", str(text_model), "--text", str(text_file), "--lora", "--push-to-hub",
                       "tester/x"], "--push-to-hub tester/x", tmp_path / "out")
    assert "hf_wrong" not in line and not (tmp_path / "out" / "adapter_model.safetensors").exists()


def test_lora_on_the_position_bias_factors_trains_them_and_generates_on_the_state(local_text_model, text_file,
                                                                                  tmp_path):
    """peft's target_parameters wraps the mixer; the model reads the decoding state through the wrapper, so
    evaluation and generate() work, and the merged folder holds the adapted U, V."""
    from peft import PeftModel

    out = tmp_path / "out"
    args = ["causal-lm", str(local_text_model), "--text", str(text_file), "--output-dir", str(out), "--seq-len", "16",
            "--lora-targets", "fc1,position_bias_u,position_bias_v"]
    assert finetune.main(args + [*FAST, *LORA_FAST, "--merge"]) == 0
    base = AutoModelForCausalLM.from_pretrained(local_text_model).eval()
    merged = AutoModelForCausalLM.from_pretrained(out / finetune.MERGED_FOLDER).eval()
    for name in ("position_bias_u", "position_bias_v"):
        before = base.model.layers[0].mixer.get_parameter(name)
        assert (merged.model.layers[0].mixer.get_parameter(name) - before).abs().max() > 1e-4, name
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(local_text_model), out).eval()
    ids = torch.tensor([list(SENTENCE[:10].encode())])  # (1, 10)
    torch.testing.assert_close(_logits(adapted, ids), _logits(merged, ids), atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        generated = adapted.generate(input_ids=ids, max_new_tokens=5, do_sample=False, pad_token_id=0)
        logits = merged(generated[:, :-1], use_cache=False).logits
    assert [int(t) for t in generated[0, 10:]] == [int(logits[0, t - 1].argmax()) for t in range(10, 15)]
