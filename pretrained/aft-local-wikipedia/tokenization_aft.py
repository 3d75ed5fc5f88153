# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""AFTByteTokenizer: the byte-level tokenizer of the enwik8 convention, for AFT language models with vocab_size=256.

Token ids 0..255 are the bytes of the UTF-8 encoding of the text, with no offset: id = byte value. A model trained on
raw bytes (enwik8, or CIFAR-10 as sub-pixels) uses the tokenizer as is, and the tokenizer adds no id beyond 255.

Special tokens. There is one special id, 0 (the NUL byte, which does not occur in text), and it is the end of text,
the beginning of text and the padding at once: `eos_token_id == bos_token_id == pad_token_id == 0`. Its readable name
is `"<|endoftext|>"`: `eos_token`, `bos_token` and `pad_token` are that string, `convert_ids_to_tokens(0)` returns it
and `convert_tokens_to_ids("<|endoftext|>") == 0`. The name is only a name, never text:

- Encoding reads text as bytes and nothing else (`split_special_tokens=True` by default): the characters
  "<|endoftext|>" in a text are those 13 bytes, and the NUL character is id 0. So
  `tokenizer(text + tokenizer.eos_token)` does *not* end in EOS; append `tokenizer.eos_token_id` to the ids, or
  "\\x00" to the text, instead.
- Decoding turns id 0 back into the NUL character "\\x00" (with the default `skip_special_tokens=False`), so that
  `decode(encode(text)) == text` holds for every text, NUL included. With `skip_special_tokens=True` (which
  `pipeline("text-generation")` uses) id 0 is dropped: that is the one exception to the round trip.
- Nothing is ever added when encoding: `add_special_tokens` (True by default in `__call__`) adds no BOS and no EOS.
- Bytes that are not valid UTF-8 (a model can generate any of the 256 ids) decode with `errors="replace"`: each bad
  sequence becomes U+FFFD, and decoding never raises.

Tokens (the strings of `tokenize` and `convert_ids_to_tokens`) are one character per byte, chr(byte) (as ByT5 does),
except id 0, which is "<|endoftext|>". `convert_tokens_to_ids` also accepts "\\x00" for 0; a string that is neither one
of those 256 tokens nor an added token has no id (None: there is no unknown token).

`register_tokenizer()` makes `AutoTokenizer` pick this class for `AFTConfig` and makes `save_pretrained` write the
`auto_map` and a copy of this file, so a saved folder also loads with `trust_remote_code=True` where the package is not
installed. This file must therefore stay self-contained: no module-level import of the rest of the package.
"""

from __future__ import annotations

import importlib

from transformers.tokenization_python import AddedToken, PreTrainedTokenizer

NUM_BYTES = 256
ENDOFTEXT = "<|endoftext|>"
ENDOFTEXT_ID = 0


class AFTByteTokenizer(PreTrainedTokenizer):
    r"""
    Byte-level tokenizer of the enwik8 convention: the ids are the UTF-8 bytes of the text (id = byte value, 0..255),
    and there are exactly 256 of them (`len(tokenizer) == vocab_size == 256`).

    Special tokens: id 0 (the NUL byte) is EOS, BOS and PAD at once, named `"<|endoftext|>"`. The name is never read
    from text (text is encoded as bytes only, `split_special_tokens=True`), and id 0 decodes to "\x00", so
    `decode(encode(text)) == text` for every text; `decode(..., skip_special_tokens=True)` drops id 0, which is the one
    exception. No BOS or EOS is added when encoding, whatever `add_special_tokens` says: append `eos_token_id` to the
    ids yourself. Ids that are not valid UTF-8 decode with `errors="replace"`.

    Args:
        eos_token (`str`, *optional*, defaults to `"<|endoftext|>"`):
            The name of id 0. `bos_token` and `pad_token` must be the same string, since they are the same id.
        bos_token (`str`, *optional*, defaults to `"<|endoftext|>"`):
            The name of id 0.
        pad_token (`str`, *optional*, defaults to `"<|endoftext|>"`):
            The name of id 0; padding writes id 0 with attention mask 0.
        split_special_tokens (`bool`, *optional*, defaults to `True`):
            Encode the text as bytes only. With `False`, the characters of an added token (such as "<|endoftext|>")
            in a text become its id, and `decode(encode(text)) == text` no longer holds for such texts.

    Example:
        >>> tokenizer = AFTByteTokenizer()
        >>> tokenizer("h\u00e9")["input_ids"]
        [104, 195, 169]
        >>> tokenizer.decode([104, 195, 169, 0])
        'hé\x00'
        >>> tokenizer.decode([104, 195, 169, 0], skip_special_tokens=True)
        'hé'
    """

    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        eos_token: str | AddedToken = ENDOFTEXT,
        bos_token: str | AddedToken | None = ENDOFTEXT,
        pad_token: str | AddedToken | None = ENDOFTEXT,
        split_special_tokens: bool = True,
        **kwargs,
    ) -> None:
        names = {str(token) for token in (eos_token, bos_token, pad_token) if token is not None}
        if len(names) != 1:
            raise ValueError(
                f"eos_token={str(eos_token)!r}, bos_token={str(bos_token)!r} and pad_token={str(pad_token)!r} all "
                f"name id {ENDOFTEXT_ID}, the only special id of a byte vocabulary; give them the same string "
                f"(the default is {ENDOFTEXT!r})."
            )
        if kwargs.get("unk_token") is not None:
            raise ValueError(
                "AFTByteTokenizer has no unknown token: every text is bytes, and every byte has an id; drop unk_token."
            )
        kwargs.pop("unk_token", None)
        (name,) = names
        special = AddedToken(name, lstrip=False, rstrip=False, normalized=False, special=True)
        # Id 0 is an added token with the readable name: it keeps that name when saved and reloaded, it is what
        # skip_special_tokens drops, and PythonBackend.__init__ finds it and adds no new id for the special tokens.
        # A tokenizer loaded from a folder gets the same entry back through `added_tokens_decoder`.
        self._added_tokens_decoder = {ENDOFTEXT_ID: special}
        super().__init__(
            eos_token=special,
            bos_token=special if bos_token is not None else None,
            pad_token=special if pad_token is not None else None,
            split_special_tokens=split_special_tokens,
            special_tokens_pattern="none",
            token_type_ids_pattern="all_zeros",
            **kwargs,
        )

    # ------------------------------------------------------------------------------------------------------------
    # Vocabulary
    # ------------------------------------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return NUM_BYTES

    def get_vocab(self) -> dict[str, int]:
        # One entry per id: the NUL character is not listed next to the name of id 0 (it would make len() 257).
        vocab = {self.convert_ids_to_tokens(i): i for i in range(NUM_BYTES)}
        vocab.update(self._added_tokens_encoder)
        return vocab

    def _convert_token_to_id(self, token: str) -> int | None:
        if len(token) == 1 and ord(token) < NUM_BYTES:
            return ord(token)
        return None

    def _convert_id_to_token(self, index: int) -> str:
        if not 0 <= index < NUM_BYTES:
            raise ValueError(
                f"id {index} is not a byte: AFTByteTokenizer has the ids 0..{NUM_BYTES - 1} (and any added tokens)."
            )
        return chr(index)

    # ------------------------------------------------------------------------------------------------------------
    # Text <-> tokens
    # ------------------------------------------------------------------------------------------------------------

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        """The UTF-8 bytes of `text`, one token per byte (the NUL byte under the name of id 0). A str holding a lone
        surrogate has no UTF-8 encoding and raises UnicodeEncodeError."""
        eos = str(self._added_tokens_decoder[ENDOFTEXT_ID])
        return [chr(byte) if byte else eos for byte in text.encode("utf-8")]

    def _token_to_bytes(self, token: str) -> bytes:
        index = self._added_tokens_encoder.get(token)
        if index is None:
            index = self._convert_token_to_id(token)
        if index is not None and index < NUM_BYTES:
            return bytes((index,))
        # An added token beyond the bytes (only if someone added one): its text.
        return token.encode("utf-8")

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join the bytes of the tokens and decode them as UTF-8; a bad byte sequence becomes U+FFFD."""
        return b"".join(self._token_to_bytes(token) for token in tokens).decode("utf-8", errors="replace")

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        # The vocabulary is the 256 bytes: there is no file to write.
        return ()


def register_tokenizer() -> None:
    """Make `AutoTokenizer` load `AFTByteTokenizer` for an `AFTConfig`, and make `save_pretrained` record it in the
    `auto_map` of tokenizer_config.json (with a copy of this file) for loading with `trust_remote_code=True`."""
    from transformers import AutoTokenizer

    # Imported here and through importlib, not with `from .configuration_aft import ...`: save_pretrained copies every
    # file this one imports relatively (found by a text search, even inside a function), and the saved tokenizer
    # needs only this file.
    config_class = importlib.import_module(".configuration_aft", __package__).AFTConfig
    AutoTokenizer.register(config_class, tokenizer_class=AFTByteTokenizer, exist_ok=True)
    AFTByteTokenizer.register_for_auto_class("AutoTokenizer")


__all__ = ["AFTByteTokenizer", "register_tokenizer"]
