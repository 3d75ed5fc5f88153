# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Resizing the learned positions of a saved AFT folder: the model runs at the new length, the same length is the
identity, the interpolation equals a naive float64 one, and every error leaves no output behind."""

import json
import math
from fractions import Fraction

import pytest
import torch
from safetensors.torch import load_file, save_file

from conversion import resize_positions as rp
from modeling_aft import AFTByteTokenizer, AFTConfig, AFTForCausalLM, AFTForImageClassification
from tests.helpers import assert_nothing_written, randomize

T = 16


def _save(folder, variant="local", position_bias_dim=4, use_position_embeddings=None, shard=None, layers=2):
    config = AFTConfig.from_preset(
        f"cpu-text-{variant}", num_hidden_layers=layers, hidden_size=16, intermediate_size=32, num_heads=4,
        max_position_embeddings=T, local_window=4, position_bias_dim=position_bias_dim,
        use_position_embeddings=use_position_embeddings, hidden_dropout_prob=0.0,
    )
    model = randomize(AFTForCausalLM(config), seed=3).eval()
    model.save_pretrained(folder, **({"max_shard_size": shard} if shard else {}))
    AFTByteTokenizer().save_pretrained(folder)
    (folder / "README.md").write_text("card of the original model\n")
    (folder / "results.json").write_text("{}\n")
    return model


def _weights(folder):
    index = folder / rp.INDEX_FILE
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else [rp.SINGLE_FILE]
    out = {}
    for name in files:
        out.update(load_file(folder / name))
    return out


def _naive_linear(x, new):
    """Row i of the result blends the old rows at i (T-1)/(N-1), by hand in float64 (align_corners=True)."""
    old = x.shape[0]
    x = x.double()
    rows = []
    for i in range(new):
        pos = Fraction(i * (old - 1), new - 1) if new > 1 else Fraction(0)
        lo = min(math.floor(pos), old - 1)
        hi = min(lo + 1, old - 1)
        frac = float(pos - lo)
        rows.append((1 - frac) * x[lo] + frac * x[hi])
    return torch.stack(rows)


def _naive_bilinear(w, new):
    return _naive_linear(_naive_linear(w, new).T, new).T  # rows, then columns


def _nearest_rows(old, new):
    return [math.floor(Fraction(i * (old - 1), new - 1) + Fraction(1, 2)) for i in range(new)]


def test_factorised_local_runs_at_the_new_length(tmp_path):
    _save(tmp_path / "in")
    report = rp.resize_positions(tmp_path / "in", tmp_path / "out", 40)
    assert sorted(report["resized"]) == [f"model.layers.{i}.mixer.position_bias_{uv}" for i in (0, 1) for uv in "uv"]
    model = AFTForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert model.config.max_position_embeddings == 40
    with torch.no_grad():
        logits = model(torch.randint(0, 256, (2, 40))).logits
        assert logits.shape == (2, 40, 256) and bool(torch.isfinite(logits).all())
        with pytest.raises(ValueError, match="max_position_embeddings=40"):
            model(torch.randint(0, 256, (1, 41)))

    old, new = _weights(tmp_path / "in"), _weights(tmp_path / "out")
    for i in (0, 1):
        key = f"model.layers.{i}.mixer.position_bias_"
        w_old = old[key + "u"].double() @ old[key + "v"].double().T  # (T, T)
        w_new = new[key + "u"].double() @ new[key + "v"].double().T  # (N, N)
        # Interpolating U and V is interpolating w = U V^T bilinearly.
        torch.testing.assert_close(w_new, _naive_bilinear(w_old, 40), rtol=0, atol=1e-5)
        assert torch.equal(new[key + "u"][[0, -1]], old[key + "u"][[0, -1]])  # the corners keep their values
    for key in old:
        if "position_bias" not in key:
            assert torch.equal(new[key], old[key]), key


def test_other_files_are_copied_and_the_card_is_not(tmp_path):
    _save(tmp_path / "in")
    rp.main([str(tmp_path / "in"), str(tmp_path / "out"), "--max-positions", "24"])
    for name in ("tokenizer_config.json", "tokenization_aft.py", "modeling_aft.py", "generation_config.json"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "in" / name).read_bytes(), name
    assert not (tmp_path / "out" / "README.md").exists() and not (tmp_path / "out" / "results.json").exists()
    old = json.loads((tmp_path / "in" / "config.json").read_text())
    new = json.loads((tmp_path / "out" / "config.json").read_text())
    assert new.pop("max_position_embeddings") == 24 and old.pop("max_position_embeddings") == T
    assert new == old


def test_temporaries_a_killed_writer_left_in_the_source_are_not_copied(tmp_path):
    _save(tmp_path / "in")
    (tmp_path / "in" / ".tmp-config.json-0a1b2c3d").write_text("{half")
    (tmp_path / "in" / ".tmp-model-0a1b2c3d").mkdir()
    (tmp_path / "in" / ".tmp-model-0a1b2c3d" / "model.safetensors").write_bytes(b"half")
    rp.main([str(tmp_path / "in"), str(tmp_path / "out"), "--max-positions", "24"])
    assert not [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("variant, bias_dim, embeddings", [("local", 4, None), ("full", 0, True)])
def test_same_length_is_the_identity(tmp_path, variant, bias_dim, embeddings):
    original = _save(tmp_path / "in", variant, bias_dim, embeddings)
    rp.main([str(tmp_path / "in"), str(tmp_path / "out"), "--max-positions", str(T)])
    old, new = _weights(tmp_path / "in"), _weights(tmp_path / "out")
    assert old.keys() == new.keys()
    for key in old:
        assert old[key].dtype == new[key].dtype and torch.equal(old[key], new[key]), key
    ids = torch.randint(0, 256, (2, T))
    with torch.no_grad():
        assert torch.equal(AFTForCausalLM.from_pretrained(tmp_path / "out").eval()(ids).logits, original(ids).logits)


def test_dense_bias_and_position_embeddings_match_naive_interpolation(tmp_path):
    _save(tmp_path / "in", "full", position_bias_dim=0, use_position_embeddings=True)
    rp.resize_positions(tmp_path / "in", tmp_path / "out", 29)
    old, new = _weights(tmp_path / "in"), _weights(tmp_path / "out")
    for i in (0, 1):
        key = f"model.layers.{i}.mixer.position_bias"
        torch.testing.assert_close(new[key].double(), _naive_bilinear(old[key], 29), rtol=0, atol=1e-6)
    key = "model.embed_positions.weight"
    assert new[key].shape == (29, 16)
    torch.testing.assert_close(new[key].double(), _naive_linear(old[key], 29), rtol=0, atol=1e-6)
    with torch.no_grad():
        assert AFTForCausalLM.from_pretrained(tmp_path / "out")(torch.randint(0, 256, (1, 29))).logits.shape[1] == 29


def test_nearest_copies_learned_positions_in_sharded_folders(tmp_path):
    _save(tmp_path / "in", "full", position_bias_dim=4, shard="20KB")
    assert (tmp_path / "in" / rp.INDEX_FILE).exists()
    rp.resize_positions(tmp_path / "in", tmp_path / "out", 33, mode="nearest")
    old, new = _weights(tmp_path / "in"), _weights(tmp_path / "out")
    rows = _nearest_rows(T, 33)
    for key in old:
        if "position_bias" in key:
            assert torch.equal(new[key], old[key][rows]), key
        else:
            assert torch.equal(new[key], old[key]), key
    index = json.loads((tmp_path / "out" / rp.INDEX_FILE).read_text())
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in new.values())
    with torch.no_grad():
        assert AFTForCausalLM.from_pretrained(tmp_path / "out")(torch.randint(0, 256, (1, 33))).logits.shape[1] == 33


def test_shrinking_and_a_single_position():
    x = torch.randn(T, 3, dtype=torch.float64)
    torch.testing.assert_close(rp.interpolate_positions(x, 5), _naive_linear(x, 5), rtol=0, atol=1e-12)
    assert torch.equal(rp.interpolate_positions(x, 1), x[:1])
    assert rp.nearest_source_index(T, 5).tolist() == _nearest_rows(T, 5)


def test_simple_model_only_changes_the_config(tmp_path):
    _save(tmp_path / "in", "simple")
    report = rp.resize_positions(tmp_path / "in", tmp_path / "out", 64)
    assert report["resized"] == {}
    old, new = _weights(tmp_path / "in"), _weights(tmp_path / "out")
    assert all(torch.equal(old[k], new[k]) for k in old)
    assert AFTConfig.from_pretrained(tmp_path / "out").max_position_embeddings == 64


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exit_info:
        rp.main(["--help"])
    assert exit_info.value.code == 0
    assert "--max-positions" in capsys.readouterr().out


@pytest.mark.parametrize(
    "n, mode, error, words",
    [
        (0, "linear", ValueError, ["max_positions=0"]),
        (3, "linear", ValueError, ["local_window=4"]),
        (20, "cubic", ValueError, ["mode='cubic'"]),
    ],
)
def test_bad_targets_raise_and_write_nothing(tmp_path, n, mode, error, words):
    _save(tmp_path / "in")
    with pytest.raises(error) as info:
        rp.resize_positions(tmp_path / "in", tmp_path / "deeper" / "out", n, mode)
    for word in words:
        assert word in str(info.value)
    assert_nothing_written(tmp_path, keep=("in",))


def test_a_wrong_shape_names_the_tensor_and_writes_nothing(tmp_path, capsys):
    _save(tmp_path / "in")
    weights = load_file(tmp_path / "in" / rp.SINGLE_FILE)
    weights["model.layers.1.mixer.position_bias_u"] = torch.zeros(T, 5)
    save_file(weights, tmp_path / "in" / rp.SINGLE_FILE, metadata={"format": "pt"})
    with pytest.raises(ValueError) as info:
        rp.resize_positions(tmp_path / "in", tmp_path / "out", 32)
    capsys.readouterr()  # the progress bars of saving the input
    assert rp.main([str(tmp_path / "in"), str(tmp_path / "out"), "--max-positions", "32"]) == 2
    assert capsys.readouterr().err == f"error: {info.value}\n"
    for word in ("model.layers.1.mixer.position_bias_u", "(16, 4)", "(16, 5)"):
        assert word in str(info.value)
    assert_nothing_written(tmp_path, keep=("in",))


def test_missing_folder_missing_weights_and_existing_output(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        rp.resize_positions(tmp_path / "nowhere", tmp_path / "out", 32)
    _save(tmp_path / "in")
    (tmp_path / "in" / rp.SINGLE_FILE).rename(tmp_path / "model.bak")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        rp.resize_positions(tmp_path / "in", tmp_path / "out", 32)
    (tmp_path / "model.bak").rename(tmp_path / "in" / rp.SINGLE_FILE)
    assert_nothing_written(tmp_path, keep=("in",))
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        rp.resize_positions(tmp_path / "in", tmp_path / "out", 32)
    assert list((tmp_path / "out").iterdir()) == []


def test_image_models_are_refused(tmp_path):
    config = AFTConfig.from_preset("cpu-image-full", num_hidden_layers=1, hidden_size=16, intermediate_size=32)
    AFTForImageClassification(config).save_pretrained(tmp_path / "in")
    with pytest.raises(ValueError, match="image model"):
        rp.resize_positions(tmp_path / "in", tmp_path / "out", 100)
    assert_nothing_written(tmp_path, keep=("in",))


def test_a_failure_while_writing_leaves_nothing_behind(tmp_path, monkeypatch):
    _save(tmp_path / "in")

    def broken_save(tensors, path, metadata=None):
        with open(path, "wb") as handle:
            handle.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(rp, "save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        rp.resize_positions(tmp_path / "in", tmp_path / "new" / "deeper" / "out", 32)
    assert_nothing_written(tmp_path, keep=("in",))
