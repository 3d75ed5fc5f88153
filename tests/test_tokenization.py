# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""AFTByteTokenizer: ids are the UTF-8 bytes, id 0 is EOS = BOS = PAD ("<|endoftext|>"), and a saved folder loads
through AutoTokenizer, with or without this package, and drives pipeline("text-generation")."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer, pipeline

from modeling_aft import AFTByteTokenizer, AFTConfig, AFTForCausalLM
from tests.helpers import BLOCK_PACKAGE

REPO_ROOT = Path(__file__).resolve().parent.parent
ENDOFTEXT = "<|endoftext|>"
# Texts that a tokenizer with normalisation, stripping or clean-up would change, and the ones the brief names.
AWKWARD_TEXTS = [
    "",
    " ",
    "  leading and trailing  ",
    "tabs\tand\r\nnewlines\n\n",
    "hello , world . it 's n't",  # clean_up_tokenization would join these
    "émoji 🤗👩‍👩‍👧 flags 🇫🇷 and variation ☺️",
    "中文，日本語のテキスト，한국어",
    "combining: e\u0301 a\u0308 \u1100\u1161\u11a8 and NFC \u00e9 differ",
    "zero width\u200b\u200d joiners, BOM \ufeff, RTL \u202e",
    "nul\x00in the middle and at the end\x00",
    f"the name {ENDOFTEXT} is only text",
    "\x7f\x80\x9f latin-1 controls \u00ff",
    "astral \U0010ffff \U0001d11e",
]


@pytest.fixture(scope="module")
def tokenizer():
    return AFTByteTokenizer()


def utf8(text):
    return list(text.encode("utf-8"))


# ----------------------------------------------------------------------------------------------------------------
# Text <-> ids
# ----------------------------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.text())
def test_any_text_round_trips_and_its_ids_are_its_utf8_bytes(text):
    tokenizer = AFTByteTokenizer()
    ids = tokenizer(text)["input_ids"]
    assert ids == utf8(text)
    assert tokenizer.encode(text) == ids
    assert tokenizer.decode(ids) == text
    # skip_special_tokens drops id 0, so NUL is the one character that does not come back.
    assert tokenizer.decode(ids, skip_special_tokens=True) == text.replace("\x00", "")


@pytest.mark.parametrize("text", AWKWARD_TEXTS)
def test_awkward_texts_round_trip(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    assert ids == utf8(text)
    assert tokenizer.decode(ids) == text
    assert tokenizer.decode(ids, skip_special_tokens=False) == text
    assert tokenizer.convert_tokens_to_string(tokenizer.tokenize(text)) == text
    assert tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)) == ids


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.binary(max_size=64))
def test_any_bytes_decode_like_python_and_valid_utf8_comes_back_exactly(data):
    tokenizer = AFTByteTokenizer()
    ids = list(data)
    text = tokenizer.decode(ids)
    assert text == data.decode("utf-8", errors="replace")
    assert tokenizer.decode(ids, skip_special_tokens=True) == data.replace(b"\x00", b"").decode("utf-8", "replace")
    assert tokenizer.encode(text) == utf8(text)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        assert "\ufffd" in text
    else:
        assert tokenizer.encode(text) == ids


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.lists(st.lists(st.integers(0, 255), max_size=24), min_size=1, max_size=4))
def test_decoding_random_ids_never_raises(batch):
    tokenizer = AFTByteTokenizer()
    for skip in (False, True):
        texts = tokenizer.batch_decode(batch, skip_special_tokens=skip)
        # Skipping drops id 0 before the bytes are decoded: [0xC3, 0, 0xA9] gives "é" with skip_special_tokens.
        kept = [[i for i in ids if i or not skip] for ids in batch]
        assert texts == [bytes(ids).decode("utf-8", "replace") for ids in kept]
        assert tokenizer.decode(torch.tensor(batch[0], dtype=torch.long), skip_special_tokens=skip) == texts[0]
    assert tokenizer.decode([0xC3, 0, 0xA9], skip_special_tokens=True) == "\u00e9"
    assert tokenizer.decode([0xC3, 0, 0xA9]) == "\ufffd\x00\ufffd"


def test_every_id_is_a_token_and_back(tokenizer):
    ids = list(range(256))
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert len(set(tokens)) == 256
    assert tokens[0] == ENDOFTEXT
    assert tokens[1:] == [chr(i) for i in range(1, 256)]
    assert tokenizer.convert_tokens_to_ids(tokens) == ids
    assert [tokenizer.convert_tokens_to_ids(tokenizer.convert_ids_to_tokens(i)) for i in ids] == ids
    assert tokenizer.convert_tokens_to_ids("\x00") == 0
    assert tokenizer.convert_tokens_to_string(tokens) == bytes(ids).decode("utf-8", "replace")
    vocab = tokenizer.get_vocab()
    assert sorted(vocab.values()) == ids
    assert len(tokenizer) == tokenizer.vocab_size == 256


def test_tokens_outside_the_bytes(tokenizer):
    assert tokenizer.convert_tokens_to_ids(["\u0100", "ab", "\u20ac"]) == [None, None, None]
    with pytest.raises(ValueError, match="not a byte"):
        tokenizer.decode([256])


def test_a_lone_surrogate_is_not_utf8_text(tokenizer):
    with pytest.raises(UnicodeEncodeError):
        tokenizer("\ud800")


# ----------------------------------------------------------------------------------------------------------------
# Special tokens
# ----------------------------------------------------------------------------------------------------------------


def test_id_0_is_eos_bos_and_pad(tokenizer):
    assert tokenizer.eos_token == tokenizer.bos_token == tokenizer.pad_token == ENDOFTEXT
    assert tokenizer.eos_token_id == tokenizer.bos_token_id == tokenizer.pad_token_id == 0
    assert tokenizer.unk_token is None and tokenizer.unk_token_id is None
    assert tokenizer.all_special_ids == [0]
    assert tokenizer.all_special_tokens == [ENDOFTEXT]
    assert list(tokenizer.added_tokens_decoder) == [0]


def test_nothing_is_added_when_encoding(tokenizer):
    text = "abc"
    for kwargs in ({}, {"add_special_tokens": True}, {"add_special_tokens": False}):
        assert tokenizer(text, **kwargs)["input_ids"] == utf8(text)
        assert tokenizer.encode(text, **kwargs) == utf8(text)
    assert tokenizer("abc", "de")["input_ids"] == utf8("abcde")
    assert tokenizer.num_special_tokens_to_add() == 0
    assert tokenizer(text, return_special_tokens_mask=True)["special_tokens_mask"] == [0, 0, 0]
    assert "token_type_ids" not in tokenizer(text)


def test_the_name_is_not_read_from_text_but_nul_is(tokenizer):
    # Documented: appending eos_token (a name) to a text gives its bytes; "\x00" or eos_token_id gives EOS.
    assert tokenizer("a" + tokenizer.eos_token)["input_ids"] == utf8("a" + ENDOFTEXT)
    assert tokenizer("a\x00")["input_ids"] == [97, tokenizer.eos_token_id]
    assert tokenizer.tokenize("a\x00b") == ["a", ENDOFTEXT, "b"]


def test_special_token_names_must_agree():
    custom = AFTByteTokenizer(eos_token="</s>", bos_token="</s>", pad_token="</s>")
    assert custom.eos_token_id == custom.pad_token_id == 0 and custom.convert_ids_to_tokens(0) == "</s>"
    assert custom.decode(custom("x\x00")["input_ids"]) == "x\x00"
    assert len(custom) == 256
    with pytest.raises(ValueError, match="same string"):
        AFTByteTokenizer(eos_token="</s>")
    with pytest.raises(ValueError, match="no unknown token"):
        AFTByteTokenizer(unk_token="<unk>")


# ----------------------------------------------------------------------------------------------------------------
# Batches and padding
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding(tokenizer, side):
    batch = tokenizer(["a", "abc"], padding=True, padding_side=side, return_tensors="pt")
    pads = [0, 0]
    if side == "left":
        expected_ids = [pads + [97], [97, 98, 99]]
        expected_mask = [[0, 0, 1], [1, 1, 1]]
    else:
        expected_ids = [[97] + pads, [97, 98, 99]]
        expected_mask = [[1, 0, 0], [1, 1, 1]]
    assert batch["input_ids"].dtype == torch.long
    assert batch["input_ids"].tolist() == expected_ids
    assert batch["attention_mask"].tolist() == expected_mask
    # The padding is id 0, which skip_special_tokens drops.
    assert tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=True) == ["a", "abc"]
    # The same through the tokenizer's own padding_side, and to a fixed length.
    sided = AFTByteTokenizer(padding_side=side)
    assert sided(["a", "abc"], padding=True, return_tensors="pt")["attention_mask"].tolist() == expected_mask
    fixed = sided(["a", "abc"], padding="max_length", max_length=5)["attention_mask"]
    assert [sum(row) for row in fixed] == [1, 3] and all(len(row) == 5 for row in fixed)
    assert (fixed[0][0] == 0) == (side == "left")


def test_batch_encode_decode_and_truncation(tokenizer):
    texts = ["héllo", "", "🤗\x00x", "plain"]
    encoded = tokenizer(texts)
    assert encoded["input_ids"] == [utf8(t) for t in texts]
    assert encoded["attention_mask"] == [[1] * len(utf8(t)) for t in texts]
    assert tokenizer.batch_decode(encoded["input_ids"]) == texts
    assert tokenizer.decode(encoded["input_ids"]) == texts  # a list of lists is a batch for decode too
    cut = tokenizer(texts, truncation=True, max_length=2)["input_ids"]
    assert cut == [utf8(t)[:2] for t in texts]
    assert tokenizer.decode(cut[0]) == "h\ufffd"  # half of "é"


# ----------------------------------------------------------------------------------------------------------------
# Saving and loading
# ----------------------------------------------------------------------------------------------------------------


def test_save_pretrained_writes_the_auto_map_and_only_this_file(tokenizer, tmp_path):
    AFTByteTokenizer(padding_side="left").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["auto_map"] == {"AutoTokenizer": ["tokenization_aft.AFTByteTokenizer", None]}
    assert config["tokenizer_class"] == "AFTByteTokenizer"
    assert config["eos_token"] == config["bos_token"] == config["pad_token"] == ENDOFTEXT
    assert config["added_tokens_decoder"]["0"]["content"] == ENDOFTEXT
    # The remote code is this one self-contained file (no configuration_aft.py dragged along by an import).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenization_aft.py", "tokenizer_config.json"]

    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded) is AFTByteTokenizer
    assert loaded.padding_side == "left"
    assert loaded.special_tokens_map == tokenizer.special_tokens_map
    assert len(loaded) == 256 and list(loaded.added_tokens_decoder) == [0]
    for text in AWKWARD_TEXTS:
        assert loaded(text)["input_ids"] == utf8(text)
        assert loaded.decode(loaded(text)["input_ids"]) == text


def _save_lm_with_tokenizer(folder):
    torch.manual_seed(0)
    config = AFTConfig.from_preset("cpu-text-simple", hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    AFTForCausalLM(config).eval().save_pretrained(folder)
    AFTByteTokenizer().save_pretrained(folder)


def test_auto_tokenizer_for_a_saved_model(tmp_path):
    _save_lm_with_tokenizer(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded) is AFTByteTokenizer
    assert loaded("día")["input_ids"] == utf8("día")


def test_text_generation_pipeline(tmp_path):
    _save_lm_with_tokenizer(tmp_path)
    generator = pipeline("text-generation", model=str(tmp_path))
    assert type(generator.tokenizer) is AFTByteTokenizer
    prompt = "The café 🤗 "
    out = generator(prompt, max_new_tokens=5, do_sample=False)
    assert isinstance(out, list) and len(out) == 1
    assert out[0]["generated_text"].startswith(prompt)
    new_text = out[0]["generated_text"][len(prompt) :]
    assert len(new_text.encode("utf-8")) <= 5 * 3  # five bytes, each at worst one U+FFFD
    # The same five bytes by hand.
    ids = generator.tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        generated = generator.model.generate(ids, max_new_tokens=5, do_sample=False)[0, ids.shape[1] :]
    assert new_text == generator.tokenizer.decode(generated, skip_special_tokens=True)


REMOTE_SCRIPT = BLOCK_PACKAGE + textwrap.dedent(
    """
    import json
    import sys

    from transformers import AutoTokenizer

    cases = json.loads(sys.argv[1])
    for folder in cases["folders"]:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        assert type(tokenizer).__name__ == "AFTByteTokenizer", type(tokenizer)
        assert type(tokenizer).__module__.startswith("transformers_modules."), type(tokenizer).__module__
        ids = [tokenizer(text)["input_ids"] for text in cases["texts"]]
        assert ids == cases["ids"], (ids, cases["ids"])
        assert tokenizer.batch_decode(ids) == cases["texts"]
        assert tokenizer.eos_token_id == tokenizer.pad_token_id == 0 and len(tokenizer) == 256
        print("matched", folder)

    assert "modeling_aft" not in sys.modules, "modeling_aft was imported"
    print("REMOTE-CODE-OK")
    """
)


def test_trust_remote_code_without_the_package(tokenizer, tmp_path):
    tokenizer_only = tmp_path / "tokenizer"
    tokenizer.save_pretrained(tokenizer_only)
    with_model = tmp_path / "lm"
    _save_lm_with_tokenizer(with_model)
    cases = {
        "folders": [str(tokenizer_only), str(with_model)],
        "texts": AWKWARD_TEXTS,
        "ids": [tokenizer(text)["input_ids"] for text in AWKWARD_TEXTS],
    }
    script = tmp_path / "check_remote_tokenizer.py"
    script.write_text(REMOTE_SCRIPT)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["HF_HUB_OFFLINE"] = "1"
    env["HF_HOME"] = str(tmp_path / "hf_home")  # a private modules cache for the remote code
    result = subprocess.run(
        [sys.executable, str(script), json.dumps(cases)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-6000:]}"
    assert "REMOTE-CODE-OK" in result.stdout
    assert result.stdout.count("matched") == 2
