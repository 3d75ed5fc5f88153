# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Export: torch.export with a dynamic length, the ONNX prefill + decode_step graphs against the PyTorch model and
its cache, the onnxruntime generation loop (which never imports torch), and the command's one-line errors."""


import json
import sys

import numpy as np
import pytest
import torch
from torch.export import Dim

from modeling_aft import AFTConfig, AFTForCausalLM
from tests.helpers import randomize

VARIANTS = ("full", "local", "simple", "conv")


def tiny(variant: str) -> AFTForCausalLM:
    config = AFTConfig(aft_variant=variant, causal=True, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_heads=4, position_bias_dim=8, max_position_embeddings=128, local_window=8,
                       conv_kernel_size=5)
    torch.manual_seed(0)
    return randomize(AFTForCausalLM(config)).eval()


def left_padded(lengths, seed=0):
    """Prompts of the given lengths, left-padded to the longest: input_ids, attention_mask (B, T) int64."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(1, 256, (len(lengths), width), generator=gen)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, width - n:] = 1
        ids[row, :width - n] = 0
    return ids, mask


# ----------------------------------------------------------------------------------------------------------------
# torch.export: the model's own forward, length symbolic
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_torch_export_forward_with_a_dynamic_length(variant):
    model = tiny(variant)
    ids, mask = left_padded([8, 6])
    batch, length = Dim("batch", min=1, max=16), Dim("length", min=2, max=128)
    program = torch.export.export(
        model, (), kwargs=dict(input_ids=ids, attention_mask=mask, use_cache=False),
        dynamic_shapes=dict(input_ids={0: batch, 1: length}, attention_mask={0: batch, 1: length}, use_cache=None),
    )
    exported = program.module()
    for lengths in ([5, 3, 5], [37], [100, 64]):  # other batches and lengths than the example's (2, 8)
        ids, mask = left_padded(lengths, seed=len(lengths))
        got = exported(input_ids=ids, attention_mask=mask, use_cache=False).logits
        with torch.no_grad():
            want = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        real = mask.bool()
        torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# ONNX: prefill.onnx + decode_step.onnx against the PyTorch model and its cache
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every causal variant saved (with the byte tokenizer) and exported by the command, once per module."""
    from conversion import export_onnx
    from modeling_aft import AFTByteTokenizer

    root = tmp_path_factory.mktemp("export")
    out = {}
    for variant in VARIANTS:
        model = tiny(variant)
        model.save_pretrained(root / variant)
        AFTByteTokenizer().save_pretrained(root / variant)
        assert export_onnx.main([str(root / variant), str(root / f"{variant}-onnx")]) == 0
        out[variant] = (model, root / f"{variant}-onnx")
    return out


def _cache_state(model, cache) -> dict:
    """The PyTorch cache's state of every layer, named as in the exported graphs."""
    state = {}
    for i, block in enumerate(model.model.layers):
        layer = cache.layers[i]
        if block.mixer.variant == "full":
            state[f"{i}.keys"], state[f"{i}.values"] = layer.keys[:, 0], layer.values[:, 0]
            continue
        num, den, high, meta = (layer.recurrent_states[j] for j in range(4))
        state.update({f"{i}.num": num, f"{i}.den": den, f"{i}.max": high, f"{i}.count": meta[:, 0]})
        if block.mixer.state_window > 0:
            state[f"{i}.window"] = layer.conv_states[0]
    return state


@pytest.mark.parametrize("variant", VARIANTS)
def test_onnxruntime_equals_pytorch_over_a_left_padded_prompt_and_64_tokens(exported, variant):
    from training.onnx_runtime import OnnxAFT

    model, folder = exported[variant]
    runtime = OnnxAFT(folder)
    ids, mask = left_padded([11, 4, 7], seed=1)  # batch 3 and length 11: neither is the export's example (2, 8)
    logits, state = runtime.prefill(ids.numpy(), mask.numpy())
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, use_cache=True)
    real = mask.bool().numpy()
    np.testing.assert_allclose(logits[real], out.logits.numpy()[real], atol=1e-4, rtol=0)
    want_state = _cache_state(model, out.cache)
    assert sorted(state) == sorted(want_state)
    for name, tensor in want_state.items():
        np.testing.assert_allclose(state[name], tensor.numpy(), atol=1e-5, rtol=1e-5, err_msg=name)

    # 64 greedy tokens: the onnxruntime step against the PyTorch step on its cache, logits at every step.
    cache, torch_ids, torch_mask = out.cache, ids, mask
    next_onnx, next_torch = logits[:, -1].argmax(-1), out.logits[:, -1].argmax(-1)
    onnx_tokens = []
    for _ in range(64):
        np.testing.assert_array_equal(next_onnx, next_torch.numpy())
        onnx_tokens.append(next_onnx)
        step_logits, state = runtime.step(next_onnx, state)
        torch_ids = torch.cat([torch_ids, next_torch[:, None]], dim=1)
        torch_mask = torch.cat([torch_mask, torch.ones_like(torch_mask[:, :1])], dim=1)
        with torch.no_grad():
            out = model(input_ids=torch_ids[:, -1:], attention_mask=torch_mask, cache=cache, use_cache=True)
        cache = out.cache
        np.testing.assert_allclose(step_logits, out.logits[:, -1].numpy(), atol=1e-4, rtol=0)
        next_onnx, next_torch = step_logits.argmax(-1), out.logits[:, -1].argmax(-1)
    for name, tensor in _cache_state(model, cache).items():  # the state after 64 steps too
        np.testing.assert_allclose(state[name], tensor.numpy(), atol=1e-4, rtol=1e-4, err_msg=name)

    # The runtime's own loop and generate() agree on the tokens.
    loop = np.stack(list(runtime.generate(ids.numpy(), mask.numpy(), 64, stop_at_eos=False)), axis=1)
    with torch.no_grad():
        generated = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=64, min_new_tokens=64,
                                   do_sample=False, pad_token_id=0)
    np.testing.assert_array_equal(loop, generated[:, ids.shape[1]:].numpy())
    np.testing.assert_array_equal(loop, np.stack(onnx_tokens, axis=1))


def test_the_exported_files_record_the_algorithm_and_the_state(exported):
    import onnx

    from modeling_aft import ops_export

    for variant, (model, folder) in exported.items():
        description = json.loads((folder / "aft_onnx.json").read_text())
        assert description["algorithm"] == ops_export.ALGORITHM and description["aft_variant"] == variant
        names = [spec["name"] for layer in description["state"] for spec in layer]
        expected = {"full": ["keys", "values"], "simple": ["num", "den", "max", "count"]}.get(
            variant, ["num", "den", "max", "count", "window"])
        assert names == [f"{i}.{n}" for i in range(2) for n in expected]
        grows = ["past_sequence" in spec["shape"] for layer in description["state"] for spec in layer]
        assert any(grows) == (variant == "full") == description["state_grows"]
        for graph in ("prefill.onnx", "decode_step.onnx"):
            props = {p.key: p.value for p in onnx.load(str(folder / graph), load_external_data=False).metadata_props}
            assert props["aft_algorithm"] == ops_export.ALGORITHM and props["aft_variant"] == variant
        assert (folder / "tokenizer_config.json").is_file() and (folder / "config.json").is_file()
        assert not list(folder.parent.glob(".tmp-*"))  # staged, then renamed


# ----------------------------------------------------------------------------------------------------------------
# The onnxruntime loop runs without torch; the commands' errors
# ----------------------------------------------------------------------------------------------------------------

BLOCK_TORCH = """
import importlib.abc, sys

class BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "modeling_aft"):
            raise ImportError(f"blocked: {name}")
        return None

sys.meta_path.insert(0, BlockTorch())
sys.argv = ["onnx_runtime"] + sys.argv[1:]
import runpy
runpy.run_module("training.onnx_runtime", run_name="__main__")
"""


def test_the_onnxruntime_loop_generates_without_torch(exported):
    from tests.helpers import run_command

    model, folder = exported["local"]
    result = run_command([sys.executable, "-c", BLOCK_TORCH, str(folder), "--prompt", "The cat", "--greedy",
                          "--max-new-tokens", "40"], timeout=120)
    assert result.returncode == 0, result.stderr
    with torch.no_grad():
        ids = torch.tensor([list(b"The cat")])
        generated = model.generate(input_ids=ids, max_new_tokens=40, min_new_tokens=40, do_sample=False,
                                   pad_token_id=0)
    text = bytes(i for i in generated[0].tolist() if i != 0).decode("utf-8", errors="replace")
    assert result.stdout.rstrip("\n") == text

    # Blocking works: the same script refuses training.generate, which needs torch.
    blocked = run_command([sys.executable, "-c", BLOCK_TORCH.replace("training.onnx_runtime", "training.generate"),
                           "--onnx", str(folder)], timeout=120)
    assert blocked.returncode != 0 and "blocked: torch" in blocked.stderr


def test_generate_with_onnx_samples_and_streams(exported, capsys):
    from training import generate

    folder = exported["conv"][1]
    argv = ["--onnx", str(folder), "--prompt", "ab", "--max-new-tokens", "12", "--seed", "3", "--top-k", "5"]
    assert generate.main(argv) == 0
    first = capsys.readouterr().out
    assert generate.main(argv) == 0
    assert capsys.readouterr().out == first and first.startswith("ab")  # seeded


def test_export_refuses_a_missing_folder_and_a_model_without_a_decoding_state(tmp_path, capsys):
    from conversion import export_onnx
    from modeling_aft import AFTForImageClassification
    from tests.helpers import one_line_error

    err = one_line_error(export_onnx.main, [str(tmp_path / "nowhere"), str(tmp_path / "out")], capsys)
    assert "nowhere" in err and "does not exist" in err
    config = AFTConfig(aft_variant="conv", causal=False, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_heads=4, image_size=32, patch_size=16, num_labels=3)
    AFTForImageClassification(config).save_pretrained(tmp_path / "classifier")
    err = one_line_error(export_onnx.main, [str(tmp_path / "classifier"), str(tmp_path / "out")], capsys)
    assert "AFTForImageClassification" in err and "no decoding state" in err
    assert not (tmp_path / "out").exists()
    err = one_line_error(export_onnx.main, [str(tmp_path / "classifier")], capsys)  # argparse's own, on one line
    assert "output" in err


def test_the_onnxruntime_command_errors_in_one_line(exported, tmp_path, capsys):
    from tests.helpers import one_line_error
    from training import onnx_runtime

    capsys.readouterr()
    assert onnx_runtime.main([str(exported["local"][1]), "--prompt", "xy", "--max-new-tokens", "127"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # refused before the prompt is echoed
    assert captured.err.count("\n") == 1 and "max_position_embeddings=128" in captured.err
    assert "--max-new-tokens 126" in captured.err

    err = one_line_error(onnx_runtime.main, [str(tmp_path / "nowhere")], capsys)
    assert "nowhere is not a folder" in err
    (tmp_path / "empty").mkdir()
    err = one_line_error(onnx_runtime.main, [str(tmp_path / "empty")], capsys)
    assert "aft_onnx.json" in err
