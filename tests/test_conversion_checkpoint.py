# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""A real training checkpoint (a tiny text run, a tiny image run) -> an HF folder: the weights are the checkpoint's
bit for bit (or their bf16/fp16 cast), shards load the same, an HF folder in gives the same folder out, the layouts
Accelerate writes under DDP and FSDP read the same, and every corruption is a clear error that leaves no OUT."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import modeling_aft  # noqa: F401
from conversion import checkpoint_to_hf as c2h
from tests.helpers import TINY_TEXT_OVERRIDES, no_output_left, reset_accelerate_state
from training import train_image, train_text

TINY = TINY_TEXT_OVERRIDES
TINY_IMAGE = "num_hidden_layers=1,hidden_size=16,intermediate_size=32,num_heads=4"
QUIET = ["--max-steps", "2", "--save-every", "2", "--eval-every", "2", "--skip-final-eval", "--no-progress",
         "--no-tensorboard"]
EMBED, HEAD = "model.embed_tokens.weight", "lm_head.weight"


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("text") / "run"
    try:
        train_text.main(["--output-dir", str(out), "--seq-len", "64", "--batch-size", "8", "--eval-bytes", "512",
                         "--sample-bytes", "0", "--config-overrides", TINY, *QUIET])
    finally:
        reset_accelerate_state()
    return out


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("image") / "run"
    try:
        train_image.main(["--output-dir", str(out), "--batch-size", "8", "--warmup-steps", "1", "--eval-images",
                          "16", "--config-overrides", TINY_IMAGE, *QUIET])
    finally:
        reset_accelerate_state()
    return out


def ckpt(run: Path) -> Path:
    return run / "checkpoints" / "checkpoint-2"


def folder_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of an HF folder, read file by file (not through the converter)."""
    out = {}
    for path in sorted(folder.glob("model*.safetensors")):
        out.update(load_file(path))
    return out


def assert_loaded_equals(model, reference: dict[str, torch.Tensor], dtype: torch.dtype) -> None:
    """Every tensor of the loaded model is the reference's (cast to dtype), bit for bit; the LM head is the
    embedding (tied), the only name the checkpoint may leave out."""
    loaded = model.state_dict()
    assert set(reference) <= set(loaded) and set(loaded) - set(reference) <= {HEAD}
    for name, tensor in loaded.items():
        want = reference[EMBED if name not in reference else name].to(dtype)
        assert tensor.dtype == dtype and torch.equal(tensor, want), name


def convert_cli(*argv) -> int:
    return c2h.main([str(a) for a in argv])


# ----------------------------------------------------------------------------------------------------------------
# The happy paths
# ----------------------------------------------------------------------------------------------------------------


def test_a_text_checkpoint_becomes_an_hf_folder_with_the_same_weights_tokenizer_and_provenance(text_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "hf"
    assert convert_cli(ckpt(text_run), out) == 0
    reference = load_file(ckpt(text_run) / "model.safetensors")
    model = AutoModelForCausalLM.from_pretrained(out)
    assert type(model).__name__ == "AFTForCausalLM"
    assert_loaded_equals(model, reference, torch.float32)
    # The run's own final folder was saved at the same step 2: the same weights by another route.
    final = load_file(text_run / "model" / "model.safetensors")
    assert folder_tensors(out).keys() == final.keys()
    assert all(torch.equal(folder_tensors(out)[k], final[k]) for k in final)
    config = json.loads((out / "config.json").read_text())
    assert "AutoModelForCausalLM" in config["auto_map"] and (out / "modeling_aft.py").is_file()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.decode(tokenizer("<page> é").input_ids) == "<page> é"
    state = json.loads((ckpt(text_run) / "trainer_state.json").read_text())
    provenance = json.loads((out / "conversion.json").read_text())
    assert provenance["step"] == 2 and provenance["args"] == state["args"] and provenance["num_processes"] == 1
    assert provenance["source_format"] == "accelerate save_state: model.safetensors"
    assert provenance["tensors"] == len(reference)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_dtype_conversion_casts_the_floating_tensors(text_run, tmp_path, dtype):
    from transformers import AutoModelForCausalLM

    out = tmp_path / dtype
    assert convert_cli(ckpt(text_run), out, "--dtype", dtype) == 0
    target = getattr(torch, dtype)
    reference = load_file(ckpt(text_run) / "model.safetensors")
    assert all(t.dtype == target for t in folder_tensors(out).values())
    assert_loaded_equals(AutoModelForCausalLM.from_pretrained(out), reference, target)
    assert json.loads((out / "config.json").read_text())["dtype"] == dtype


def test_a_tiny_shard_size_gives_several_shards_and_an_index_that_load_identically(text_run, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "sharded"
    assert convert_cli(ckpt(text_run), out, "--max-shard-size", "8KB") == 0
    shards = sorted(out.glob("model-*-of-*.safetensors"))
    assert len(shards) >= 3 and not (out / "model.safetensors").exists()
    index = json.loads((out / "model.safetensors.index.json").read_text())
    reference = load_file(ckpt(text_run) / "model.safetensors")
    assert set(index["weight_map"]) == set(reference) and set(index["weight_map"].values()) == {p.name for p in shards}
    assert_loaded_equals(AutoModelForCausalLM.from_pretrained(out), reference, torch.float32)


def test_an_hf_folder_in_gives_the_same_folder_out(text_run, tmp_path):
    plain, sharded, back = tmp_path / "plain", tmp_path / "sharded", tmp_path / "back"
    assert convert_cli(ckpt(text_run), plain) == 0
    assert convert_cli(ckpt(text_run), sharded, "--max-shard-size", "8KB") == 0
    assert convert_cli(sharded, back) == 0  # shards in, one file out: the plain conversion again
    names = {p.name for p in plain.iterdir()}
    assert {p.name for p in back.iterdir()} == names
    for name in names - {"conversion.json", "model.safetensors"}:
        assert (back / name).read_bytes() == (plain / name).read_bytes(), name
    a, b = load_file(plain / "model.safetensors"), load_file(back / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    provenance = json.loads((back / "conversion.json").read_text())
    assert provenance["step"] == 2 and provenance["source_format"].startswith("hf folder: model-00001-of-")

    # The trainer's own folder: its card, results and loss curves come along; bf16 from it = bf16 from the checkpoint.
    bf16_run, bf16_ckpt = tmp_path / "bf16_run", tmp_path / "bf16_ckpt"
    assert convert_cli(text_run / "model", bf16_run, "--dtype", "bfloat16") == 0
    assert convert_cli(ckpt(text_run), bf16_ckpt, "--dtype", "bfloat16") == 0
    for name in ("README.md", "results.json", "loss_curves.png", "tokenizer_config.json"):
        assert (bf16_run / name).read_bytes() == (text_run / "model" / name).read_bytes()
    a, b = load_file(bf16_run / "model.safetensors"), load_file(bf16_ckpt / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_an_image_checkpoint_becomes_a_classifier_with_the_trainers_image_processor(image_run, tmp_path):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    out = tmp_path / "hf"
    assert convert_cli(ckpt(image_run), out) == 0
    model = AutoModelForImageClassification.from_pretrained(out)
    reference = load_file(ckpt(image_run) / "model.safetensors")
    loaded = model.state_dict()
    assert loaded.keys() == reference.keys() and all(torch.equal(loaded[k], reference[k]) for k in reference)
    assert model.config.id2label[0] == "T-shirt/top"
    # The processor is rebuilt from the run's arguments; the trainer saved its own at the end of the same run.
    ours = json.loads((out / "preprocessor_config.json").read_text())
    theirs = json.loads((image_run / "model" / "preprocessor_config.json").read_text())
    assert ours == theirs
    assert list(AutoImageProcessor.from_pretrained(out).image_mean) == theirs["image_mean"]


def test_temporaries_a_killed_writer_left_in_an_hf_folder_are_not_copied(text_run, tmp_path):
    source = tmp_path / "model"
    shutil.copytree(text_run / "model", source)
    (source / ".tmp-README.md-0a1b2c3d").write_text("half a card")
    (source / ".tmp-model.safetensors-0a1b2c3d").write_bytes(b"half")
    (source / ".tmp-extra-0a1b2c3d").mkdir()
    (source / ".tmp-extra-0a1b2c3d" / "notes.txt").write_text("half")
    assert convert_cli(source, tmp_path / "out") == 0
    names = {p.name for p in (text_run / "model").iterdir()}
    assert {p.name for p in (tmp_path / "out").iterdir()} == names | {"conversion.json"}


def test_a_pixel_lm_checkpoint_is_a_causal_lm_whose_folder_says_it_has_no_tokenizer(text_run, tmp_path):
    source = copy_checkpoint(text_run, tmp_path)
    edit_state(source, lambda s: s["args"].update(task="pixels"))
    report = c2h.convert(source, tmp_path / "hf")
    assert report.model_class == "AFTForCausalLM" and report.preprocessing.startswith("none:")
    assert not (tmp_path / "hf" / "tokenizer_config.json").exists()


# ----------------------------------------------------------------------------------------------------------------
# The layouts Accelerate writes under DDP and FSDP
# ----------------------------------------------------------------------------------------------------------------


def copy_checkpoint(run: Path, tmp_path: Path, name: str = "checkpoint-2") -> Path:
    return Path(shutil.copytree(ckpt(run), tmp_path / "copy" / name))


def edit_state(folder: Path, change) -> None:
    state = json.loads((folder / "trainer_state.json").read_text())
    change(state)
    (folder / "trainer_state.json").write_text(json.dumps(state))


def test_a_ddp_pytorch_model_bin_with_module_prefixes_reads_the_same(text_run, tmp_path):
    source = copy_checkpoint(text_run, tmp_path)
    reference = load_file(source / "model.safetensors")
    (source / "model.safetensors").unlink()
    # What save_state writes for a DDP-wrapped model with safe_serialization=False: the wrapper's "module." keys,
    # and both tied names (pickle keeps shared tensors).
    torch.save({f"module.{k}": v for k, v in {**reference, HEAD: reference[EMBED]}.items()},
               source / "pytorch_model.bin")
    out = tmp_path / "hf"
    report = c2h.convert(source, out)
    assert report.source_format == "accelerate save_state: pytorch_model.bin"
    assert folder_tensors(out).keys() == reference.keys()
    assert all(torch.equal(folder_tensors(out)[k], reference[k]) for k in reference)


def test_an_fsdp_sharded_state_dict_folder_reads_the_same(text_run, tmp_path):
    import warnings

    import torch.distributed.checkpoint as dcp

    source = copy_checkpoint(text_run, tmp_path)
    reference = load_file(source / "model.safetensors")
    (source / "model.safetensors").unlink()
    with warnings.catch_warnings():  # "torch.distributed ... uninitialized, assuming ... a single process"
        warnings.simplefilter("ignore")
        # Accelerate's save_fsdp_model with SHARDED_STATE_DICT: {"model": state_dict} through DCP.
        dcp.save({"model": dict(reference)}, storage_writer=dcp.FileSystemWriter(str(source / "pytorch_model_fsdp_0")),
                 no_dist=True)
        out = tmp_path / "hf"
        report = c2h.convert(source, out)
    assert report.source_format == "accelerate save_state: pytorch_model_fsdp_0"
    assert all(torch.equal(folder_tensors(out)[k], reference[k]) for k in reference)


@pytest.mark.parametrize("layout, expected", [
    ("pytorch_model_fsdp_rank0.bin", "per-rank FSDP shards (pytorch_model_fsdp_rank0.bin"),
    ("pytorch_model_fsdp_0_rank1.bin", "per-rank FSDP shards (pytorch_model_fsdp_0_rank1.bin"),
    ("pytorch_model/mp_rank_00_model_states.pt", "is a DeepSpeed checkpoint (pytorch_model)"),
    ("model_1.safetensors", "more than one prepared model (model_1.safetensors)"),
    ("pytorch_model.bin", "holds the weights twice (model.safetensors and pytorch_model.bin)"),
])
def test_layouts_that_cannot_be_read_are_named(text_run, tmp_path, layout, expected):
    source = copy_checkpoint(text_run, tmp_path)
    (source / layout).parent.mkdir(parents=True, exist_ok=True)
    torch.save({}, source / layout)
    out = tmp_path / "hf"
    with pytest.raises(c2h.ConversionError, match=re.escape(expected)):
        c2h.convert(source, out)
    assert no_output_left(out)


# ----------------------------------------------------------------------------------------------------------------
# Corruption: a clear error, no OUT
# ----------------------------------------------------------------------------------------------------------------


def rewrite_weights(folder: Path, change) -> None:
    tensors = load_file(folder / "model.safetensors")
    change(tensors)
    save_file(tensors, folder / "model.safetensors")


@pytest.mark.parametrize("corruption, message", [
    (lambda t: t.update({"model.layers.0.mixer.q_proj.weight": torch.zeros(32, 33)}),
     r"tensor model\.layers\.0\.mixer\.q_proj\.weight: expected shape \(32, 32\), found \(32, 33\)"),
    (lambda t: t.pop("model.layers.0.mlp.fc2.bias"),
     r"tensor model\.layers\.0\.mlp\.fc2\.bias \(shape \(32,\)\) is missing from the checkpoint"),
    (lambda t: t.update({"model.layers.1.ln_1.weight": torch.ones(32)}),
     r"1 tensor\(s\) the AFTForCausalLM does not have: model\.layers\.1\.ln_1\.weight \(32,\)"),
    (lambda t: t.update({HEAD: t[EMBED] + 1}),
     r"tensors model\.embed_tokens\.weight and lm_head\.weight are tied in the model but differ"),
])
def test_a_corrupt_checkpoint_is_refused_naming_the_tensor_and_leaves_no_output(text_run, tmp_path, capsys,
                                                                                corruption, message):
    source = copy_checkpoint(text_run, tmp_path)
    rewrite_weights(source, corruption)
    out = tmp_path / "deep" / "hf"
    with pytest.raises(c2h.ConversionError, match=message):
        c2h.convert(source, out)
    assert convert_cli(source, out) == 2
    assert "error: " in capsys.readouterr().err
    assert no_output_left(out) and not (tmp_path / "deep").exists()


def test_a_config_that_does_not_match_the_weights_is_refused(text_run, tmp_path):
    source = copy_checkpoint(text_run, tmp_path)
    edit_state(source, lambda s: s["config"].update(intermediate_size=48))
    with pytest.raises(c2h.ConversionError, match=r"tensor model\.layers\.0\.mlp\.fc1\.weight: expected shape "
                                                   r"\(48, 32\), found \(64, 32\)"):
        c2h.convert(source, tmp_path / "hf")
    assert no_output_left(tmp_path / "hf")


def test_missing_or_broken_trainer_state_and_bad_options_are_refused(text_run, tmp_path):
    source = copy_checkpoint(text_run, tmp_path)
    out = tmp_path / "hf"
    (source / "trainer_state.json").write_text("{\"step\": 2")
    with pytest.raises(c2h.ConversionError, match="trainer_state.json is not valid JSON"):
        c2h.convert(source, out)
    edit_state_text = json.loads((ckpt(text_run) / "trainer_state.json").read_text())
    edit_state_text["args"]["task"] = "audio"
    (source / "trainer_state.json").write_text(json.dumps(edit_state_text))
    with pytest.raises(c2h.ConversionError, match="args.task is 'audio'"):
        c2h.convert(source, out)
    (source / "trainer_state.json").unlink()
    (source / "model.safetensors").rename(source / "kept.safetensors")  # neither a checkpoint nor an HF folder
    with pytest.raises(FileNotFoundError, match="neither trainer_state.json .* nor config.json"):
        c2h.convert(source, out)
    # The run folder instead of a checkpoint: the message points at the latest checkpoint.
    with pytest.raises(FileNotFoundError, match="e.g. .*checkpoint-2 \\(the latest of 1 in"):
        c2h.convert(text_run, out)
    with pytest.raises(c2h.ConversionError, match="--max-shard-size '5 gigs' is not a size"):
        c2h.convert(ckpt(text_run), out, max_shard_size="5 gigs")
    assert no_output_left(out)


def test_missing_trainer_state_beside_weights_is_named(text_run, tmp_path):
    source = copy_checkpoint(text_run, tmp_path)
    (source / "trainer_state.json").unlink()
    (source / "config.json").write_text("{}")  # neither complete checkpoint nor AFT folder
    with pytest.raises(c2h.ConversionError, match="model_type None, not 'aft'"):
        c2h.convert(source, tmp_path / "hf")
    (source / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="has neither trainer_state.json"):
        c2h.convert(source, tmp_path / "hf")
    assert no_output_left(tmp_path / "hf")


def test_float16_refuses_values_it_cannot_hold(text_run, tmp_path):
    source = copy_checkpoint(text_run, tmp_path)
    rewrite_weights(source, lambda t: t["model.norm.weight"].__setitem__(0, 1e6))
    with pytest.raises(c2h.ConversionError, match=r"tensor model\.norm\.weight holds \|values\| up to 1e\+06"):
        c2h.convert(source, tmp_path / "hf", dtype="float16")
    assert no_output_left(tmp_path / "hf")
    assert c2h.convert(source, tmp_path / "hf", dtype="bfloat16").dtype == "bfloat16"  # bf16 has the range


def test_an_existing_output_is_kept_unless_overwrite(text_run, tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="exists; choose a new OUT folder or pass --overwrite"):
        c2h.convert(ckpt(text_run), out)
    assert (out / "mine.txt").read_text() == "keep"
    # A failing --overwrite leaves the old folder as it was.
    broken = copy_checkpoint(text_run, tmp_path)
    rewrite_weights(broken, lambda t: t.pop(EMBED))
    with pytest.raises(c2h.ConversionError, match="is missing"):
        c2h.convert(broken, out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    c2h.convert(ckpt(text_run), out, overwrite=True)
    assert not (out / "mine.txt").exists() and (out / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".tmp-", ".old-"))]
