# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The conversion commands fail in one line: `error: ...` on stderr naming the value and the fix, exit status 2, no
traceback and no output written, whatever is wrong (a missing or wrong file, a bad number, an unwritable output)."""

import pytest
import torch

from conversion import aft_pytorch_to_aft, resize_positions
from modeling_aft import AFTConfig, AFTForCausalLM
from tests.helpers import one_line_error, run_module

T = 16


@pytest.fixture
def files(tmp_path):
    """An aft-pytorch AFTFull state dict (dim 8, T = 16), a saved AFT-local folder (T = 16), a corrupt folder and a
    file that is no state dict."""
    torch.manual_seed(0)
    state = {f"{name}.{part}": torch.randn(8, 8) if part == "weight" else torch.randn(8)
             for name in ("to_q", "to_k", "to_v", "project") for part in ("weight", "bias")}
    state["wbias"] = torch.randn(T, T)
    torch.save(state, tmp_path / "full.pt")
    (tmp_path / "junk.pt").write_text("not a torch file")
    config = AFTConfig.from_preset("cpu-text-local", num_hidden_layers=1, hidden_size=16, intermediate_size=32,
                                   max_position_embeddings=T, local_window=4, position_bias_dim=4)
    AFTForCausalLM(config).save_pretrained(tmp_path / "model")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "config.json").write_text((tmp_path / "model" / "config.json").read_text())
    (tmp_path / "corrupt" / "model.safetensors").write_bytes(b"\x10" + b"\x00" * 7 + b"{not a header}")
    return tmp_path


CONVERT = ["--kind", "full", "--dim", "8", "--hidden-dim", "8"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["{d}/nowhere.pt", "{d}/out", *CONVERT], ["nowhere.pt", "does not exist"]),
        (["{d}/junk.pt", "{d}/out", *CONVERT], ["junk.pt", "torch.save(module.state_dict()"]),
        (["{d}/full.pt", "{d}/out", "--kind", "full", "--dim", "0", "--hidden-dim", "8"], ["dim=0"]),
        (["{d}/full.pt", "{d}/out", "--kind", "full", "--dim", "eight"], ["--dim", "'eight'", "--help"]),
        (["{d}/full.pt", "{d}/out", *CONVERT, "--max-seqlen", "100000"], ["(100000, 100000)", "(16, 16)"]),
        (["{d}/full.pt", "{d}/out", "--kind", "simple", "--dim", "8", "--hidden-dim", "8"], ["--kind full"]),
        (["{d}/full.pt", "{d}/model", *CONVERT], ["model", "already exists"]),
        (["{d}/full.pt", "{d}/full.pt/out", *CONVERT], ["full.pt' is a file, not a folder"]),
        (["{d}/full.pt", "/proc/out", *CONVERT], ["cannot make a folder in '/proc'"]),
    ],
    ids=["missing-file", "not-a-state-dict", "zero-dim", "not-a-number", "too-long", "wrong-kind", "existing-output",
         "output-under-a-file", "unwritable-output"],
)
def test_aft_pytorch_to_aft_fails_in_one_line(files, capsys, argv, words):
    before = sorted(p.name for p in files.iterdir())
    err = one_line_error(aft_pytorch_to_aft.main, [a.format(d=files) for a in argv], capsys)
    for word in words:
        assert word in err, (word, err)
    assert sorted(p.name for p in files.iterdir()) == before  # nothing written


@pytest.mark.parametrize(
    "argv, words",
    [
        (["{d}/nowhere", "{d}/out", "--max-positions", "32"], ["nowhere", "does not exist"]),
        (["{d}/full.pt", "{d}/out", "--max-positions", "32"], ["full.pt", "save_pretrained"]),
        (["{d}/corrupt", "{d}/out", "--max-positions", "32"], ["corrupt/model.safetensors", "not a readable"]),
        (["{d}/model", "{d}/out", "--max-positions", "-3"], ["max_positions=-3"]),
        (["{d}/model", "{d}/out", "--max-positions", "many"], ["--max-positions", "'many'"]),
        (["{d}/model", "{d}/out", "--max-positions", "2"], ["local_window=4", "at least 4"]),
        (["{d}/model", "{d}/out", "--max-positions", "32", "--mode", "cubic"], ["'cubic'"]),
        (["{d}/model", "{d}/model", "--max-positions", "32"], ["already exists"]),
        (["{d}/model", "{d}/full.pt/out", "--max-positions", "32"], ["full.pt' is a file, not a folder"]),
        # U and V of 100 million x 4 are 3.2 GB: refused with the size before anything is computed.
        (["{d}/model", "{d}/out", "--max-positions", "100000000"],
         ["max_positions=100000000", "3.2 GB", "limit of 2.0 GB", "--force"]),
    ],
    ids=["missing-folder", "a-file", "corrupt-weights", "negative", "not-a-number", "below-the-window", "bad-mode",
         "onto-itself", "output-under-a-file", "too-large"],
)
def test_resize_positions_fails_in_one_line(files, capsys, argv, words):
    before = sorted(p.name for p in files.iterdir())
    err = one_line_error(resize_positions.main, [a.format(d=files) for a in argv], capsys)
    for word in words:
        assert word in err, (word, err)
    assert sorted(p.name for p in files.iterdir()) == before


def test_resize_positions_force_writes_past_the_limit(files, monkeypatch):
    from modeling_aft import AFTPreTrainedModel

    monkeypatch.setattr(AFTPreTrainedModel, "max_position_table_bytes", 1000)  # T = 16 x 4 x 2 x 4 B = 512 B: fits
    with pytest.raises(ValueError, match=r"max_positions=64 would make the position tables 0\.0 GB"):
        resize_positions.resize_positions(files / "model", files / "out", 64)
    report = resize_positions.resize_positions(files / "model", files / "out", 64, force=True)
    assert report["new_max_positions"] == 64 and AFTPreTrainedModel.max_position_table_bytes == 1000


@pytest.mark.parametrize("command", ["conversion.resize_positions", "conversion.aft_pytorch_to_aft"])
def test_the_commands_print_no_traceback(files, command):
    argv = ([str(files / "model"), str(files / "out"), "--max-positions", "100000000"]
            if command == "conversion.resize_positions" else [str(files / "junk.pt"), str(files / "out"), *CONVERT])
    result = run_module(command, *argv, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    # The last line is ours; a package imported on the way may print warnings of its own before it.
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.rstrip("\n").splitlines()[-1] == errors[0], result.stderr
    assert not (files / "out").exists()


@pytest.mark.parametrize("command", ["conversion.checkpoint_to_hf", "conversion.deit_to_aft"])
@pytest.mark.parametrize("case", ["usage", "missing-source", "source-is-a-file"])
def test_every_converter_fails_in_one_line(files, tmp_path, command, case):
    """Usage errors (argparse prints two lines by default) and unreadable sources alike: one `error:` line, exit 2."""
    (tmp_path / "a-file").write_text("not a folder")
    argv = {"usage": ["--no-such-option"], "missing-source": [str(tmp_path / "nowhere"), str(tmp_path / "out")],
            "source-is-a-file": [str(tmp_path / "a-file"), str(tmp_path / "out")]}[case]
    result = run_module(command, *argv, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:") and sum(line.startswith("error:") for line in lines) == 1, lines
    assert not (tmp_path / "out").exists()
