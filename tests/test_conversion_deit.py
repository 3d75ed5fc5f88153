# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""DeiT / ViT -> AFT conversion (conversion.deit_to_aft, the paper's Table 8).

Tiny randomly initialised DeiT and ViT classifiers are saved with transformers and converted. The expected tensor
mapping is written out here by hand, independently of the converter's rename table; a float64 forward written from
the paper's equations checks that every copied tensor landed in the role it had in the source.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    DeiTConfig,
    DeiTForImageClassification,
    DeiTForImageClassificationWithTeacher,
    DeiTImageProcessorPil,
    DeiTModel,
    ViTConfig,
    ViTForImageClassification,
)
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from conversion import deit_to_aft
from conversion.deit_to_aft import convert_folder, derive_config, main, map_state_dict
from modeling_aft import AFTConfig, AFTForImageClassification
from tests.helpers import no_output_left

LABELS = {0: "cat", 1: "dog", 2: "eel"}
SIZES = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=48,
    image_size=16,
    patch_size=4,
    num_channels=3,
    layer_norm_eps=1e-6,
    hidden_act="gelu",
    id2label=LABELS,
    label2id={name: index for index, name in LABELS.items()},
)
NUM_PATCHES = (16 // 4) ** 2


def _randomise(model: torch.nn.Module, seed: int) -> None:
    """Every tensor random (norms and biases too), so a tensor copied into the wrong role cannot go unnoticed."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)


def _save(model, folder: Path, seed: int) -> dict[str, torch.Tensor]:
    _randomise(model, seed)
    model.save_pretrained(folder)
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    made = {}
    made["deit"] = (root / "deit", _save(DeiTForImageClassification(DeiTConfig(**SIZES)), root / "deit", 1))
    # The DeiT processor resizes to 20 and crops 16, as the real ones resize to 256 and crop 224.
    DeiTImageProcessorPil(
        size={"height": 20, "width": 20}, crop_size={"height": 16, "width": 16}, image_mean=[0.4, 0.5, 0.6],
        image_std=[0.2, 0.3, 0.25],
    ).save_pretrained(root / "deit")
    teacher = DeiTForImageClassificationWithTeacher(DeiTConfig(**SIZES))
    made["teacher"] = (root / "teacher", _save(teacher, root / "teacher", 2))
    vit = ViTForImageClassification(ViTConfig(**SIZES, qkv_bias=False))
    made["vit"] = (root / "vit", _save(vit, root / "vit", 3))
    return made


def expected_copies(prefix: str, layers: int, head: bool = True) -> dict[str, str]:
    """The tensors the paper keeps, source name -> AFT name, spelled out."""
    copies = {
        f"{prefix}.embeddings.patch_embeddings.projection.weight": "model.embeddings.patch_embeddings.weight",
        f"{prefix}.embeddings.patch_embeddings.projection.bias": "model.embeddings.patch_embeddings.bias",
        f"{prefix}.layernorm.weight": "model.norm.weight",
        f"{prefix}.layernorm.bias": "model.norm.bias",
    }
    if head:
        copies.update({"classifier.weight": "classifier.weight", "classifier.bias": "classifier.bias"})
    roles = [
        ("layernorm_before", "ln_1"),
        ("layernorm_after", "ln_2"),
        ("mlp.fc1", "mlp.fc1"),
        ("mlp.fc2", "mlp.fc2"),
        ("attention.v_proj", "mixer.v_proj"),
        ("attention.o_proj", "mixer.out_proj"),
    ]
    for i in range(layers):
        for theirs, ours in roles:
            for part in ("weight", "bias"):
                copies[f"{prefix}.layers.{i}.{theirs}.{part}"] = f"model.layers.{i}.{ours}.{part}"
    return copies


def expected_qk(prefix: str, layers: int, parts=("weight", "bias")) -> set[str]:
    names = {f"layers.{i}.attention.{p}.{part}" for i in range(layers) for p in ("q_proj", "k_proj") for part in parts}
    return {f"{prefix}.{name}" for name in names}


def _load(folder: Path) -> AFTForImageClassification:
    return AFTForImageClassification.from_pretrained(folder).eval()


# --------------------------------------------------------------------------------------------------------------
# A float64 AFT forward from the paper's equations
# --------------------------------------------------------------------------------------------------------------


def _layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def naive_converted_logits(src, aft, pixels, heads, eps, head_weight, head_bias, prefix="deit"):
    """AFT-conv at conversion time: gamma = beta = 0 make the kernel 0, and then Eq. 6 is AFT-simple per head,
    Y_t = sigmoid(Q_t) * sum_t' softmax_t'(K_t') V_t'. Every kept tensor is read by its *source* name, the fresh
    query and key by their AFT names."""
    d = lambda t: t.double()  # noqa: E731
    batch, channels, size, _ = pixels.shape
    p = src[f"{prefix}.embeddings.patch_embeddings.projection.weight"].shape[-1]
    grid = size // p
    patches = d(pixels).reshape(batch, channels, grid, p, grid, p).permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, p, p)
    patches = patches.reshape(batch, grid * grid, -1)  # (B, N, C p p), row-major like the conv's flatten
    w_patch = d(src[f"{prefix}.embeddings.patch_embeddings.projection.weight"]).reshape(-1, channels * p * p)
    x = patches @ w_patch.T + d(src[f"{prefix}.embeddings.patch_embeddings.projection.bias"])  # (B, N, D)
    layers = 1 + max(int(name.split(".")[2]) for name in src if name.startswith(f"{prefix}.layers."))
    for i in range(layers):
        s, a = f"{prefix}.layers.{i}", f"model.layers.{i}.mixer"
        h = _layer_norm(x, d(src[f"{s}.layernorm_before.weight"]), d(src[f"{s}.layernorm_before.bias"]), eps)
        q = h @ d(aft[f"{a}.q_proj.weight"]).T + d(aft[f"{a}.q_proj.bias"])  # (B, N, D)
        k = h @ d(aft[f"{a}.k_proj.weight"]).T + d(aft[f"{a}.k_proj.bias"])  # (B, N, H)
        v = h @ d(src[f"{s}.attention.v_proj.weight"]).T  # (B, N, D)
        if f"{s}.attention.v_proj.bias" in src:
            v = v + d(src[f"{s}.attention.v_proj.bias"])
        v = v.reshape(batch, grid * grid, heads, -1)  # (B, N, H, Dh)
        pooled = torch.einsum("bnh,bnhd->bhd", torch.softmax(k, dim=1), v)  # (B, H, Dh)
        y = torch.sigmoid(q).reshape(v.shape) * pooled[:, None]  # (B, N, H, Dh)
        x = x + y.reshape(batch, grid * grid, -1) @ d(src[f"{s}.attention.o_proj.weight"]).T + d(
            src[f"{s}.attention.o_proj.bias"]
        )
        h = _layer_norm(x, d(src[f"{s}.layernorm_after.weight"]), d(src[f"{s}.layernorm_after.bias"]), eps)
        h = F.gelu(h @ d(src[f"{s}.mlp.fc1.weight"]).T + d(src[f"{s}.mlp.fc1.bias"]))
        x = x + h @ d(src[f"{s}.mlp.fc2.weight"]).T + d(src[f"{s}.mlp.fc2.bias"])
    x = _layer_norm(x, d(src[f"{prefix}.layernorm.weight"]), d(src[f"{prefix}.layernorm.bias"]), eps)
    return x.mean(dim=1) @ d(head_weight).T + d(head_bias)  # (B, labels)


# --------------------------------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------------------------------


def test_deit_to_aft_conv_copies_bit_identical_and_reports_everything(sources, tmp_path):
    folder, src = sources["deit"]
    report = convert_folder(folder, tmp_path / "aft", heads=8, kernel_size=3)
    layers = SIZES["num_hidden_layers"]

    assert report.copied == expected_copies("deit", layers)
    model = _load(tmp_path / "aft")
    ours = model.state_dict()
    for source_name, target_name in report.copied.items():
        assert ours[target_name].dtype == src[source_name].dtype
        assert torch.equal(ours[target_name], src[source_name]), (source_name, target_name)

    dropped = expected_qk("deit", layers) | {
        "deit.embeddings.cls_token", "deit.embeddings.position_embeddings", "deit.embeddings.distillation_token"
    }
    assert set(report.dropped) == dropped
    created = {
        f"model.layers.{i}.mixer.{name}"
        for i in range(layers)
        for name in (
            "q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias", "conv_weight", "conv_gamma", "conv_beta"
        )
    }
    assert set(report.created) == created
    assert report.derived == {}
    # Every source tensor and every AFT tensor is accounted for exactly once.
    assert set(report.copied) | set(report.dropped) == set(src)
    assert set(report.copied.values()) | set(report.created) == set(ours)
    assert ours["model.layers.0.mixer.k_proj.weight"].shape == (8, 32)  # K has h dims in AFT-conv

    config = model.config
    assert (config.aft_variant, config.num_heads, config.conv_kernel_size) == ("conv", 8, 3)
    assert config.image_pooling == "mean"
    for name in ("hidden_size", "num_hidden_layers", "intermediate_size", "image_size", "patch_size", "num_channels",
                 "layer_norm_eps", "hidden_act"):
        assert getattr(config, name) == SIZES[name], name
    assert config.id2label == LABELS and config.label2id == SIZES["label2id"]
    assert model.model.embeddings.cls_token is None and model.model.embeddings.position_embeddings is None

    saved = json.loads((tmp_path / "aft" / "conversion_report.json").read_text())
    assert saved["copied"] == report.copied and saved["created"] == report.created
    readme = (tmp_path / "aft" / "README.md").read_text()
    assert "not been evaluated" in readme and "deit.layers.1.mlp.fc2.bias -> model.layers.1.mlp.fc2.bias" in readme


def test_converted_conv_model_computes_aft_simple_with_the_source_weights(sources, tmp_path):
    """At conversion time AFT-conv is AFT-simple (gamma = beta = 0): a float64 forward from the source's tensors
    (by their DeiT names, in their DeiT roles) and the fresh Q, K gives the converted model's logits."""
    folder, src = sources["teacher"]
    report = convert_folder(folder, tmp_path / "aft", heads=4, kernel_size=3)
    model = _load(tmp_path / "aft")
    pixels = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(pixel_values=pixels).logits
    head_weight = (src["cls_classifier.weight"].double() + src["distillation_classifier.weight"].double()) / 2
    head_bias = (src["cls_classifier.bias"].double() + src["distillation_classifier.bias"].double()) / 2
    eps = SIZES["layer_norm_eps"]
    expected = naive_converted_logits(src, model.state_dict(), pixels, 4, eps, head_weight, head_bias)
    torch.testing.assert_close(logits.double(), expected, rtol=0, atol=1e-5)

    # The averaged head: the float64 mean rounded once to float32 is what (a + b) / 2 in float32 gives.
    ours = model.state_dict()
    assert torch.equal(ours["classifier.weight"], head_weight.float())
    assert set(report.derived) == {"classifier.weight", "classifier.bias"}
    assert "cls_classifier.weight + distillation_classifier.weight" in report.derived["classifier.weight"]
    assert report.copied == expected_copies("deit", SIZES["num_hidden_layers"], head=False)


def test_teacher_head_cls_keeps_one_head_and_drops_the_other(sources, tmp_path):
    folder, src = sources["teacher"]
    report = convert_folder(folder, tmp_path / "aft", heads=4, kernel_size=3, teacher_head="cls")
    ours = _load(tmp_path / "aft").state_dict()
    assert report.copied["cls_classifier.weight"] == "classifier.weight"
    assert torch.equal(ours["classifier.weight"], src["cls_classifier.weight"])
    assert torch.equal(ours["classifier.bias"], src["cls_classifier.bias"])
    assert {"distillation_classifier.weight", "distillation_classifier.bias"} <= set(report.dropped)
    with pytest.raises(ValueError, match="teacher_head='both'"):
        convert_folder(folder, tmp_path / "bad", heads=4, kernel_size=3, teacher_head="both")
    assert no_output_left(tmp_path / "bad")


def test_deit_to_aft_full_keeps_the_deit_layout(sources, tmp_path):
    """AFT-full keeps a class token and position embeddings: both come over, minus DeiT's distillation row."""
    folder, src = sources["deit"]
    report = convert_folder(folder, tmp_path / "aft", variant="full", position_bias_dim=8)
    model = _load(tmp_path / "aft")
    ours = model.state_dict()
    assert model.config.max_position_embeddings == NUM_PATCHES + 1 and model.config.image_pooling == "cls"
    assert report.copied["deit.embeddings.cls_token"] == "model.embeddings.cls_token"
    assert torch.equal(ours["model.embeddings.cls_token"], src["deit.embeddings.cls_token"])
    position = src["deit.embeddings.position_embeddings"]  # (1, cls + distillation + N, D)
    assert position.shape[1] == NUM_PATCHES + 2
    expected = torch.cat([position[:, :1], position[:, 2:]], dim=1)
    assert torch.equal(ours["model.embeddings.position_embeddings"], expected)
    assert set(report.derived) == {"model.embeddings.position_embeddings"}
    assert "deit.embeddings.distillation_token" in report.dropped
    assert {f"model.layers.{i}.mixer.position_bias_{uv}" for i in range(2) for uv in "uv"} <= set(report.created)
    for source_name, target_name in expected_copies("deit", 2).items():
        assert torch.equal(ours[target_name], src[source_name])


def test_vit_to_aft_local_mean_pooling_bfloat16_and_no_value_bias(sources, tmp_path):
    """ViT without q/k/v biases: the value bias is created as zeros; mean pooling keeps only the patch rows of the
    position embedding; bfloat16 output holds each copied tensor rounded once; no processor file: ImageNet stats."""
    folder, src = sources["vit"]
    report = convert_folder(
        folder, tmp_path / "aft", variant="local", pooling="mean", position_bias_dim=8, dtype="bfloat16"
    )
    model = _load(tmp_path / "aft")
    ours = model.state_dict()
    assert model.dtype == torch.bfloat16 and model.config.local_window == 4
    copies = expected_copies("vit", 2)
    for i in range(2):
        copies.pop(f"vit.layers.{i}.attention.v_proj.bias")
        assert torch.equal(ours[f"model.layers.{i}.mixer.v_proj.bias"], torch.zeros(32, dtype=torch.bfloat16))
        assert f"model.layers.{i}.mixer.v_proj.bias" in report.created
    assert report.copied == copies
    for source_name, target_name in copies.items():
        assert torch.equal(ours[target_name], src[source_name].to(torch.bfloat16))
    position = src["vit.embeddings.position_embeddings"]  # (1, cls + N, D)
    assert torch.equal(ours["model.embeddings.position_embeddings"], position[:, 1:].to(torch.bfloat16))
    assert "vit.embeddings.cls_token" in report.dropped
    assert set(report.dropped) >= expected_qk("vit", 2, parts=("weight",))

    processor = json.loads((tmp_path / "aft" / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == pytest.approx(list(IMAGENET_DEFAULT_MEAN))
    assert processor["image_std"] == pytest.approx(list(IMAGENET_DEFAULT_STD))


def test_converted_folder_runs_with_its_processor_and_trains_a_step(sources, tmp_path):
    folder, _ = sources["deit"]
    convert_folder(folder, tmp_path / "aft", heads=4, kernel_size=3)
    processor = AutoImageProcessor.from_pretrained(tmp_path / "aft")
    model = AutoModelForImageClassification.from_pretrained(tmp_path / "aft")
    assert isinstance(model, AFTForImageClassification)
    # The source's processor (resize 20, crop 16, its mean/std) came over.
    assert (processor.size["height"], processor.crop_size["height"]) == (20, 16)
    assert list(processor.image_mean) == pytest.approx([0.4, 0.5, 0.6])
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)) for _ in range(4)]
    pixels = processor(images, return_tensors="pt")["pixel_values"]  # (4, 3, 16, 16)
    labels = torch.tensor([0, 1, 2, 1])

    model.train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(pixel_values=pixels, labels=labels).loss
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert changed == with_grad
    for name in ("classifier.weight", "model.layers.0.mixer.q_proj.weight", "model.layers.0.mixer.k_proj.weight",
                 "model.layers.1.mixer.v_proj.weight", "model.layers.0.mixer.conv_gamma"):
        assert name in changed, name


# --------------------------------------------------------------------------------------------------------------
# Errors: each raises, names the problem, leaves nothing behind
# --------------------------------------------------------------------------------------------------------------


def test_heads_that_do_not_divide_the_hidden_size(sources, tmp_path):
    folder, _ = sources["deit"]
    pattern = r"heads=5 does not divide the source's hidden_size=32.*\[1, 2, 4, 8, 16, 32\]"
    with pytest.raises(ValueError, match=pattern):
        convert_folder(folder, tmp_path / "aft", heads=5)
    assert no_output_left(tmp_path / "aft")
    with pytest.raises(ValueError, match="kernel_size=4 must be odd"):
        convert_folder(folder, tmp_path / "aft", kernel_size=4)
    assert no_output_left(tmp_path / "aft")


def test_missing_and_foreign_folders(sources, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert_folder(tmp_path / "nowhere", tmp_path / "out")
    assert no_output_left(tmp_path / "out")

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        convert_folder(empty, tmp_path / "out")
    assert no_output_left(tmp_path / "out")

    aft = tmp_path / "aft_model"
    AFTForImageClassification(AFTConfig.from_preset("cpu-image-conv", num_hidden_layers=1)).save_pretrained(aft)
    with pytest.raises(ValueError, match="model_type='aft'.*not a DeiT or ViT"):
        convert_folder(aft, tmp_path / "out")
    assert no_output_left(tmp_path / "out")

    backbone = tmp_path / "backbone"
    DeiTModel(DeiTConfig(**SIZES)).save_pretrained(backbone)
    with pytest.raises(ValueError, match="DeiTModel"):
        convert_folder(backbone, tmp_path / "out")
    assert no_output_left(tmp_path / "out")

    weightless = tmp_path / "weightless"
    weightless.mkdir()
    (weightless / "config.json").write_text((sources["deit"][0] / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="no weights"):
        convert_folder(weightless, tmp_path / "out")
    assert no_output_left(tmp_path / "out")


def test_incomplete_checkpoint_names_the_missing_tensor(sources, tmp_path):
    folder, _ = sources["vit"]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((folder / "config.json").read_text())
    tensors = load_file(folder / "model.safetensors")
    del tensors["vit.layernorm.weight"]
    save_file(tensors, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"missing tensors \['vit.layernorm.weight'\]"):
        convert_folder(broken, tmp_path / "out")
    assert no_output_left(tmp_path / "out")


def test_shape_and_key_mismatches_in_the_mapping(sources):
    _, src = sources["deit"]
    config = derive_config(DeiTConfig(**SIZES), heads=4, kernel_size=3)
    target = AFTForImageClassification(config).state_dict()
    bad = dict(src)
    bad["deit.layers.1.mlp.fc1.weight"] = torch.zeros(40, 32)
    pattern = (
        r"'model.layers.1.mlp.fc1.weight'.*deit.layers.1.mlp.fc1.weight.*"
        r"expected shape \(48, 32\), found \(40, 32\)"
    )
    with pytest.raises(ValueError, match=pattern):
        map_state_dict(bad, "DeiTForImageClassification", target, config)
    extra = dict(src, **{"deit.layers.0.attention.layer_scale": torch.zeros(32)})
    with pytest.raises(ValueError, match="'deit.layers.0.attention.layer_scale' \\(32,\\) has no counterpart"):
        map_state_dict(extra, "DeiTForImageClassification", target, config)


def test_existing_output_and_failed_writes_leave_nothing_behind(sources, tmp_path, monkeypatch):
    folder, _ = sources["deit"]
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert_folder(folder, existing, heads=4, kernel_size=3)
    assert (existing / "keep.txt").read_text() == "mine"

    def fail(saved_folder, model):
        assert (Path(saved_folder) / "model.safetensors").is_file()  # it fails after the files were written
        raise ValueError("simulated failure after writing")

    monkeypatch.setattr(deit_to_aft, "_verify_saved", fail)
    with pytest.raises(ValueError, match="simulated"):
        convert_folder(folder, tmp_path / "new" / "deeper" / "aft", heads=4, kernel_size=3)
    assert not (tmp_path / "new").exists()  # the parents it made are gone too
    with pytest.raises(ValueError, match="simulated"):
        convert_folder(folder, existing, heads=4, kernel_size=3, overwrite=True)
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]  # the old output is restored
    assert no_output_left(tmp_path / "aft")
    monkeypatch.undo()
    convert_folder(folder, existing, heads=4, kernel_size=3, overwrite=True)
    assert (existing / "model.safetensors").is_file() and not (existing / "keep.txt").exists()


def test_command_line_prints_the_report_and_reports_errors(sources, tmp_path, capsys):
    folder, _ = sources["vit"]
    assert main([str(folder), str(tmp_path / "aft"), "--heads", "2", "--kernel-size", "3", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "vit.layers.0.mlp.fc1.weight -> model.layers.0.mlp.fc1.weight" in out
    assert "created (" in out and "dropped (" in out
    assert AFTConfig.from_pretrained(tmp_path / "aft").num_heads == 2

    assert main([str(folder), str(tmp_path / "bad"), "--heads", "3"]) == 2
    assert "heads=3 does not divide" in capsys.readouterr().err
    assert no_output_left(tmp_path / "bad")


def test_help_through_python_dash_m(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["deit_to_aft", "--help"])
    monkeypatch.delitem(sys.modules, "conversion.deit_to_aft")  # run it fresh, as `python -m` does
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("conversion.deit_to_aft", run_name="__main__")
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--variant", "--heads", "--kernel-size", "--dtype", "--teacher-head", "--overwrite"):
        assert option in text
