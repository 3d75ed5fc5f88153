# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Property tests (hypothesis) over what users feed in: config dicts of any types and keys, random bytes where a
checkpoint file should be, and random ids, masks and lengths (0 included) through forward and generate.

The examples are derandomized under CI (the same inputs on every run, so a red CI is reproducible); locally each run
draws new ones and hypothesis prints the failing example to paste into a regular test.
"""

import json
import os
import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeling_aft import AFTConfig, AFTForCausalLM, AFTForImageClassification
from modeling_aft.configuration_aft import BOOL_FIELDS, FLOAT_FIELDS, INT_FIELDS
from tests.helpers import randomize

settings.register_profile(
    "aft", deadline=None, database=None, derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("aft")

# ------------------------------------------------------------------------------------------------------------------
# Config dicts: every dict either loads into a config whose fields have their declared types, or is refused with a
# ValueError that names one of the dict's keys.
# ------------------------------------------------------------------------------------------------------------------

STRING_FIELDS = ("aft_variant", "hidden_act", "pooling")
TOKEN_FIELDS = ("pad_token_id", "bos_token_id", "eos_token_id")
OTHER_FIELDS = ("num_labels", "id2label", "label2id", "use_position_embeddings", "dtype")
FIELDS = INT_FIELDS + FLOAT_FIELDS + BOOL_FIELDS + STRING_FIELDS + TOKEN_FIELDS + OTHER_FIELDS

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["32", "true", "false", "local", "conv", "gelu", "mean", "cls", "float32", "nope", ""]),
    st.lists(st.integers(min_value=-3, max_value=300), max_size=3),
    st.dictionaries(st.sampled_from(["0", "1", "a"]), st.text(max_size=3), max_size=2),
)
# Values that are often valid, so that the draws also reach the range checks behind the type checks.
PLAUSIBLE = {
    **{name: st.integers(min_value=-2, max_value=64) for name in INT_FIELDS},
    **{name: st.floats(min_value=-1.0, max_value=1.0) for name in FLOAT_FIELDS},
    **{name: st.booleans() for name in BOOL_FIELDS},
    "aft_variant": st.sampled_from(["full", "local", "simple", "conv", "Local", "attention"]),
    "hidden_act": st.sampled_from(["gelu", "relu", "silu", "nope"]),
    "pooling": st.sampled_from([None, "cls", "mean", "max"]),
}


@st.composite
def config_dicts(draw):
    names = draw(st.lists(st.sampled_from(FIELDS), max_size=6, unique=True))
    config = {}
    for name in names:
        config[name] = draw(st.one_of(PLAUSIBLE[name], ANY_VALUE) if name in PLAUSIBLE else ANY_VALUE)
    unknown = draw(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10), max_size=2))
    for name in unknown:
        if not hasattr(AFTConfig(), name):
            config[name] = draw(ANY_VALUE)
    return config


def check_types(config: AFTConfig) -> None:
    for name in INT_FIELDS:
        assert type(getattr(config, name)) is int, name
    for name in FLOAT_FIELDS:
        assert type(getattr(config, name)) in (int, float), name
    for name in BOOL_FIELDS:
        assert type(getattr(config, name)) is bool, name
    for name in ("pad_token_id", "bos_token_id"):
        value = getattr(config, name)
        assert value is None or (type(value) is int and 0 <= value < config.vocab_size), name
    eos = config.eos_token_id
    for value in eos if isinstance(eos, list) else [eos]:
        assert value is None or (type(value) is int and 0 <= value < config.vocab_size), "eos_token_id"
    assert config.num_labels >= 1


@given(config_dicts())
@settings(max_examples=300)
def test_config_dicts_load_with_their_types_or_name_the_bad_field(config_dict):
    try:
        config = AFTConfig(**config_dict)
    except ValueError as error:
        message = str(error)
        assert any(name in message for name in config_dict), f"{message!r} names none of {sorted(config_dict)}"
        return
    check_types(config)
    # What loads survives a save: config.json read back gives the same config (unknown keys kept, as transformers
    # keeps them, for the code that wrote them).
    again = AFTConfig.from_dict(json.loads(config.to_json_string()))
    assert again.to_dict() == config.to_dict()


@given(config_dicts())
@settings(max_examples=100)
def test_config_json_files_load_or_name_the_bad_field(tmp_path_factory, config_dict):
    folder = tmp_path_factory.mktemp("config")
    try:
        text = json.dumps({"model_type": "aft", **config_dict})
    except ValueError:  # NaN and infinities are written by json.dumps as non-standard tokens; they still load
        return
    (folder / "config.json").write_text(text)
    try:
        config = AFTConfig.from_pretrained(folder)
    except ValueError as error:
        message = str(error)
        assert any(name in message for name in config_dict), f"{message!r} names none of {sorted(config_dict)}"
        return
    check_types(config)


# ------------------------------------------------------------------------------------------------------------------
# Random bytes where a checkpoint file should be: refused, and the message names the file.
# ------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_lm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved") / "lm"
    config = AFTConfig.from_preset("cpu-text-local", num_hidden_layers=1, hidden_size=16, intermediate_size=32,
                                   max_position_embeddings=32, local_window=4, position_bias_dim=4)
    AFTForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("file_name", ["model.safetensors", "config.json"])
@given(junk=st.one_of(st.binary(max_size=200), st.just(b""), st.binary(min_size=8, max_size=8).map(lambda b: b + b"{}"),
                      st.sampled_from([b"[1, 2]", b"null", b"\"aft\"", b"{\"model_type\": 3}", b"\x00" * 64])))
@settings(max_examples=40)
def test_random_bytes_as_a_checkpoint_file_are_refused_by_name(saved_lm, tmp_path_factory, file_name, junk):
    folder = tmp_path_factory.mktemp("damaged") / "lm"
    shutil.copytree(saved_lm, folder)
    (folder / file_name).write_bytes(junk)
    with pytest.raises((OSError, ValueError)) as caught:
        AFTForCausalLM.from_pretrained(folder)
    assert file_name in str(caught.value), str(caught.value)


# ------------------------------------------------------------------------------------------------------------------
# Random ids, masks and lengths through forward and generate.
# ------------------------------------------------------------------------------------------------------------------

VARIANTS = ["full", "local", "simple", "conv"]
MAX_POSITIONS = 24


def tiny_lm(variant: str, seed: int = 0) -> AFTForCausalLM:
    config = AFTConfig.from_preset(
        f"cpu-text-{variant}", num_hidden_layers=2, hidden_size=16, intermediate_size=32, num_heads=4,
        max_position_embeddings=MAX_POSITIONS, local_window=3, position_bias_dim=4, conv_kernel_size=3,
        hidden_dropout_prob=0.0,
    )
    torch.manual_seed(seed)
    return randomize(AFTForCausalLM(config), seed=seed).eval()


MODELS = {variant: tiny_lm(variant) for variant in VARIANTS}


@st.composite
def padded_batches(draw):
    """(ids, mask, lengths): rows of random real lengths (0 included), left-padded to the longest."""
    lengths = draw(st.lists(st.integers(min_value=0, max_value=MAX_POSITIONS), min_size=0, max_size=3))
    width = max(lengths, default=draw(st.integers(min_value=0, max_value=4)))
    seed = draw(st.integers(min_value=0, max_value=2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 256, (len(lengths), width), generator=gen)
    mask = (torch.arange(width) >= torch.tensor([[width - n] for n in lengths]).reshape(-1, 1)).long()
    return ids, mask, lengths


@pytest.mark.parametrize("variant", VARIANTS)
@given(batch=padded_batches())
@settings(max_examples=25)
def test_any_padded_batch_gives_each_row_what_it_gives_alone(variant, batch):
    model = MODELS[variant]
    ids, mask, lengths = batch
    with torch.no_grad():
        logits = model(ids, attention_mask=mask, use_cache=False).logits
        assert logits.shape == (*ids.shape, 256)
        for row, length in enumerate(lengths):
            alone = model(ids[row:row + 1, ids.shape[1] - length:], use_cache=False).logits[0]
            together = logits[row, ids.shape[1] - length:]
            assert torch.isfinite(together).all()
            torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
@given(length=st.integers(min_value=0, max_value=MAX_POSITIONS - 8), new=st.integers(min_value=1, max_value=6),
       seed=st.integers(min_value=0, max_value=2**31 - 1))
@settings(max_examples=15)
def test_greedy_generation_of_any_prompt_follows_the_forward(variant, length, new, seed):
    """Each generated token is the argmax of the parallel forward over the text before it; an empty prompt is
    either generated from or refused with a ValueError that says what to pass."""
    model = MODELS[variant]
    prompt = torch.randint(0, 256, (1, length), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        try:
            out = model.generate(prompt, max_new_tokens=new, do_sample=False, pad_token_id=0)
        except ValueError as error:
            assert length == 0 and "prompt" in str(error), str(error)
            return
        assert out.shape == (1, length + new)
        assert torch.equal(out[:, :length], prompt)
        if out.shape[1] > 1:
            logits = model(out[:, :-1], use_cache=False).logits
            for t in range(max(length, 1), out.shape[1]):
                assert out[0, t] == logits[0, t - 1].argmax(), t


@given(ids=st.lists(st.integers(min_value=-3, max_value=260), min_size=1, max_size=6))
@settings(max_examples=30)
def test_token_ids_outside_the_vocabulary_are_refused_by_value(ids):
    model = MODELS["simple"]
    batch = torch.tensor([ids])
    bad = [i for i in ids if not 0 <= i < 256]
    with torch.no_grad():
        if not bad:
            assert torch.isfinite(model(batch).logits).all()
            return
        with pytest.raises(ValueError) as caught:
            model(batch)
    assert "vocab_size=256" in str(caught.value) and f"= {bad[0]} is not a token id" in str(caught.value)


@pytest.mark.parametrize("variant", VARIANTS)
@given(batch=st.integers(min_value=0, max_value=2), seed=st.integers(min_value=0, max_value=2**31 - 1))
@settings(max_examples=6)
def test_any_batch_of_images_is_classified(variant, batch, seed):
    config = AFTConfig.from_preset(f"cpu-image-{variant}", num_hidden_layers=1, hidden_size=16, intermediate_size=32,
                                   num_heads=4)
    torch.manual_seed(0)
    model = AFTForImageClassification(config).eval()
    pixels = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        logits = model(pixel_values=pixels).logits
    assert logits.shape == (batch, 10) and torch.isfinite(logits).all()


# ------------------------------------------------------------------------------------------------------------------
# Random bytes in a trainer checkpoint: --resume's check names the file (the fallback itself is tested end to end in
# tests/test_training_text.py).
# ------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trainer_checkpoint(tmp_path_factory):
    """A checkpoint folder with the files Accelerate's save_state writes for one process, and its manifest."""
    from accelerate.utils import save
    from safetensors.torch import save_file

    from training import engine

    folder = tmp_path_factory.mktemp("ckpt") / "checkpoint-4"
    folder.mkdir()
    save_file({"w": torch.randn(8, 8)}, folder / "model.safetensors")
    torch.save({"state": {}, "param_groups": []}, folder / "optimizer.bin")
    save({"torch_manual_seed": torch.get_rng_state(), "step": 4}, folder / "random_states_0.pkl")
    state = {"step": 4, "config": {}, "args": {}, "num_processes": 1, "manifest": True}
    (folder / engine.STATE_FILE).write_text(json.dumps(state))
    engine.write_manifest(folder)
    assert engine.checkpoint_problems(folder) == ([], True)
    return folder


CHECKPOINT_FILES = ["model.safetensors", "optimizer.bin", "random_states_0.pkl", "trainer_state.json"]


@pytest.mark.parametrize("file_name", CHECKPOINT_FILES)
@given(junk=st.binary(max_size=300))
@settings(max_examples=25)
def test_random_bytes_in_a_trainer_checkpoint_are_named(trainer_checkpoint, tmp_path_factory, file_name, junk):
    from training import engine

    folder = tmp_path_factory.mktemp("damaged") / "checkpoint-4"
    shutil.copytree(trainer_checkpoint, folder)
    if junk == (folder / file_name).read_bytes():
        return
    (folder / file_name).write_bytes(junk)
    problems, _ = engine.checkpoint_problems(folder)
    assert any(problem.startswith(file_name) for problem in problems), problems
    # Without the manifest (a checkpoint from before manifests), the state file and the RNG states are still read.
    (folder / engine.MANIFEST_FILE).unlink()
    state = json.loads((trainer_checkpoint / engine.STATE_FILE).read_text())
    state["manifest"] = False
    if file_name != engine.STATE_FILE:
        (folder / engine.STATE_FILE).write_text(json.dumps(state))
    if file_name in ("random_states_0.pkl", engine.STATE_FILE):
        problems, verified = engine.checkpoint_problems(folder)
        assert not verified and any(problem.startswith(file_name) for problem in problems), problems
