# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""aft-pytorch's AFTFull, AFTSimple and AFTLocal, converted, give the same outputs as our AFTMixer.

The reference is aft-pytorch itself (PyPI aft-pytorch 0.2.2), run on the same inputs; its layers are bidirectional
and subtract no maximum, so the sizes here keep exp() far from overflow.
"""

import json
import warnings

import pytest
import torch
from aft_pytorch import AFTFull, AFTLocal, AFTSimple

from conversion import aft_pytorch_to_aft as conv
from modeling_aft import AFTModel
from tests.helpers import assert_nothing_written

DIM = 16
MAX_SEQLEN = 24
WINDOW = 5
CLASSES = {"full": AFTFull, "simple": AFTSimple, "local": AFTLocal}


def _layer(kind: str, seed: int, window: int = WINDOW, dim: int = DIM, hidden_dim: int = DIM):
    """An aft-pytorch layer with every weight random and the bias of order 1, so that w visibly matters."""
    torch.manual_seed(seed)
    extra = dict(s=window) if kind == "local" else {}
    module = CLASSES[kind](max_seqlen=MAX_SEQLEN, dim=dim, hidden_dim=hidden_dim, **extra)
    gen = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            scale = 1.0 if name == "wbias" else 0.3
            param.copy_(scale * torch.randn(param.shape, generator=gen))
    return module


def _theirs(module, x):
    with warnings.catch_warnings():  # AFTLocal.forward turns a tensor that requires grad into floats
        warnings.simplefilter("ignore")
        with torch.no_grad():
            return module(x)


def _inputs(seed: int, length: int) -> torch.Tensor:
    return torch.randn(3, length, DIM, generator=torch.Generator().manual_seed(seed))  # (B, T, D)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["full", "simple", "local"])
def test_converted_mixer_matches_aft_pytorch(kind, seed):
    module = _layer(kind, seed)
    ours = conv.mixer_from_module(module)  # before their forward: AFTLocal's forward rewrites its own bias
    for length in (MAX_SEQLEN, 17):  # the whole bias, and its top-left corner for a shorter input
        x = _inputs(seed, length)
        with torch.no_grad():
            expected, found = _theirs(module, x), ours(x)
        assert found.shape == expected.shape == (3, length, DIM)
        assert (found - expected).abs().max().item() < 1e-5


def test_the_comparison_sees_the_window_and_the_bias():
    """Guards the test above: AFTLocal differs from AFTFull with the same weights, and w changes AFT-full."""
    full, local = _layer("full", 0), _layer("local", 0)
    local.load_state_dict(full.state_dict())
    x = _inputs(0, MAX_SEQLEN)
    assert (_theirs(full, x) - _theirs(local, x)).abs().max().item() > 1e-3
    state, config = conv.convert_module(full)
    state["position_bias"] = torch.zeros_like(state["position_bias"])
    mixer = conv.AFTMixer(config)
    mixer.load_state_dict(state)
    with torch.no_grad():
        assert (mixer(x) - _theirs(full, x)).abs().max().item() > 1e-3


def test_local_bias_is_the_same_before_and_after_their_forward():
    module = _layer("local", 3)
    before, config = conv.convert_module(module)
    _theirs(module, _inputs(3, 8))  # masks module.wbias in place
    after, _ = conv.convert_module(module)
    assert torch.equal(before["position_bias"], after["position_bias"])
    t = torch.arange(MAX_SEQLEN, dtype=torch.float64)
    outside = (t[:, None] - t[None, :]).abs() >= WINDOW
    assert bool((after["position_bias"][outside] == 0).all())
    assert config.local_window == WINDOW and config.position_bias_dim == 0 and not config.causal


def test_local_window_wider_than_the_sequence_converts_to_the_whole_length():
    module = _layer("local", 4, window=256)  # aft-pytorch's default s
    ours = conv.mixer_from_module(module)
    assert ours.config.local_window == MAX_SEQLEN
    x = _inputs(4, MAX_SEQLEN)
    with torch.no_grad():
        assert (ours(x) - _theirs(module, x)).abs().max().item() < 1e-5


def test_cli_writes_a_one_block_model_whose_mixer_matches(tmp_path, capsys):
    module = _layer("local", 5)
    torch.save(module.state_dict(), tmp_path / "sd.pt")
    out = tmp_path / "converted"
    args = ["--kind", "local", "--dim", str(DIM), "--hidden-dim", str(DIM), "--window", str(WINDOW), "--seed", "7"]
    assert conv.main([str(tmp_path / "sd.pt"), str(out)] + args) == 0
    assert "masked   wbias" in capsys.readouterr().out
    model = AFTModel.from_pretrained(out)
    assert model.config.num_hidden_layers == 1 and model.config.aft_variant == "local"
    assert model.config.max_position_embeddings == MAX_SEQLEN and not model.config.causal
    x = _inputs(5, 20)
    with torch.no_grad():
        assert (model.layers[0].mixer(x) - _theirs(module, x)).abs().max().item() < 1e-5
        hidden = model(input_ids=torch.randint(0, 256, (2, 20))).last_hidden_state
    assert hidden.shape == (2, 20, DIM) and bool(torch.isfinite(hidden).all())
    report = json.loads((out / "conversion.json").read_text())
    assert report["copied"]["to_q.weight"] == "layers.0.mixer.q_proj.weight"
    assert "wbias" in report["masked"] and "embed_tokens.weight" in report["created"]["tensors"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_prefix_picks_a_layer_out_of_a_larger_model(tmp_path):
    module = _layer("full", 6)
    wrapper = torch.nn.ModuleDict({"attn": module, "head": torch.nn.Linear(DIM, 3)})
    torch.save(wrapper.state_dict(), tmp_path / "sd.pt")
    report = conv.convert_file(tmp_path / "sd.pt", tmp_path / "out", "full", DIM, DIM, prefix="attn.")
    assert report["ignored"] == ["head.bias", "head.weight"]
    x = _inputs(6, MAX_SEQLEN)
    with torch.no_grad():
        found = AFTModel.from_pretrained(tmp_path / "out").layers[0].mixer(x)
    assert (found - _theirs(module, x)).abs().max().item() < 1e-5


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exit_info:
        conv.main(["--help"])
    assert exit_info.value.code == 0
    assert "--kind" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, words",
    [
        (["--kind", "full", "--dim", "16", "--hidden-dim", "16", "--max-seqlen", "30"],
         ["wbias", "(30, 30)", "(24, 24)"]),
        (["--kind", "full", "--dim", "16"], ["to_q.weight", "(64, 16)", "(16, 16)"]),
        (["--kind", "simple", "--dim", "16", "--hidden-dim", "16"], ["wbias", "--kind full"]),
        (["--kind", "local", "--dim", "16", "--hidden-dim", "16", "--window", "0"], ["window=0"]),
        (["--kind", "full", "--dim", "16", "--hidden-dim", "16", "--prefix", "enc."], ["enc."]),
    ],
)
def test_bad_state_dicts_fail_in_one_line_and_write_nothing(tmp_path, capsys, args, words):
    torch.save(_layer("full", 0).state_dict(), tmp_path / "sd.pt")
    assert conv.main([str(tmp_path / "sd.pt"), str(tmp_path / "deeper" / "out")] + args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err
    assert_nothing_written(tmp_path, keep=("sd.pt",))


def test_inner_width_other_than_model_width_is_refused(tmp_path, capsys):
    module = _layer("simple", 0, hidden_dim=8)
    torch.save(module.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="hidden_dim=8 differs from dim=16"):
        conv.convert_file(tmp_path / "sd.pt", tmp_path / "out", "simple", 16, 8)
    assert conv.main([str(tmp_path / "sd.pt"), str(tmp_path / "out"), "--kind", "simple", "--dim", "16",
                      "--hidden-dim", "8"]) == 2
    assert capsys.readouterr().err.startswith("error: hidden_dim=8 differs from dim=16")
    assert_nothing_written(tmp_path, keep=("sd.pt",))


def test_missing_file_pickled_module_and_existing_output(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        conv.convert_file(tmp_path / "nope.pt", tmp_path / "out", "simple", DIM, DIM)
    torch.save(_layer("simple", 0), tmp_path / "sd.pt")  # the whole module, not its state dict
    with pytest.raises(ValueError, match="state_dict"):
        conv.convert_file(tmp_path / "sd.pt", tmp_path / "out", "simple", DIM, DIM)
    assert_nothing_written(tmp_path, keep=("sd.pt",))
    torch.save(_layer("simple", 0).state_dict(), tmp_path / "sd.pt")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="already exists"):
        conv.convert_file(tmp_path / "sd.pt", tmp_path / "out", "simple", DIM, DIM)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.txt"]


def test_a_failure_while_writing_leaves_nothing_behind(tmp_path, monkeypatch):
    torch.save(_layer("full", 0).state_dict(), tmp_path / "sd.pt")

    def broken_save(self, folder, **kwargs):
        (folder / "half-written.safetensors").parent.mkdir(parents=True, exist_ok=True)
        (folder / "half-written.safetensors").write_bytes(b"x")
        raise OSError("disk full")

    monkeypatch.setattr(AFTModel, "save_pretrained", broken_save)
    with pytest.raises(OSError, match="disk full"):
        conv.convert_file(tmp_path / "sd.pt", tmp_path / "new" / "deeper" / "out", "full", DIM, DIM)
    assert_nothing_written(tmp_path, keep=("sd.pt",))
