# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Generate text from an exported AFT model (python -m conversion.export_onnx) with onnxruntime, numpy and the
tokenizer files alone: no torch, no transformers.

    python -m training.onnx_runtime OUT --prompt "The " [--max-new-tokens 200] [--temperature 0.8] [--top-k 50]
                                        [--top-p 0.95] [--repetition-penalty 1.0] [--greedy] [--seed 0]

(the same as `python -m training.generate --onnx OUT ...`). The prompt runs once through prefill.onnx, which returns
the logits and the decoding state as plain tensors; every new token is one run of decode_step.onnx on that state,
which for simple, local and conv has the same size after a million tokens as after one. Batches are left-padded.
Every failure is one line `error: ...` on stderr and exit status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

# conversion.cli imports only argparse and sys (conversion/__init__ only a logging filter): no torch comes with it.
from conversion import cli

DESCRIPTION = "aft_onnx.json"
FORMAT_VERSION = 1
BYTE_TOKENIZERS = ("AFTByteTokenizer",)


class ByteCodec:
    """The byte tokenizer of tokenization_aft.py (id = UTF-8 byte, 0 is end of text, BOS and padding at once),
    read from the tokenizer files without transformers."""

    def __init__(self, folder: Path):
        config_file = folder / "tokenizer_config.json"
        name = "AFTByteTokenizer"
        if config_file.is_file():
            name = json.loads(config_file.read_text(encoding="utf-8")).get("tokenizer_class", name)
        if name not in BYTE_TOKENIZERS:
            raise ValueError(f"{folder} uses the tokenizer {name!r}; this runtime reads only the byte tokenizer "
                             f"({', '.join(BYTE_TOKENIZERS)}).")
        self.pad_token_id = 0

    @staticmethod
    def encode(text: str) -> list[int]:
        return list(text.encode("utf-8"))

    @staticmethod
    def decode(ids, skip_special_tokens: bool = True) -> str:
        data = bytes(int(i) for i in ids if not (skip_special_tokens and int(i) == 0))
        return data.decode("utf-8", errors="replace")


class OnnxAFT:
    """The two exported graphs and their state: prefill(ids, mask) and step(tokens, state), both -> (logits,
    state); the state a dict of numpy arrays named as in aft_onnx.json."""

    def __init__(self, folder, threads: int | None = None):
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder; pass one written by python -m conversion.export_onnx.")
        if not (folder / DESCRIPTION).is_file():
            raise FileNotFoundError(f"{folder} holds no {DESCRIPTION}; pass a folder written by "
                                    "python -m conversion.export_onnx.")
        self.description = json.loads((folder / DESCRIPTION).read_text(encoding="utf-8"))
        if self.description.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder / DESCRIPTION} has format_version {self.description.get('format_version')}, "
                             f"this runtime reads {FORMAT_VERSION}; export the model again.")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        for name in ("prefill", "decode_step"):
            file = folder / self.description[name]["file"]
            if not file.is_file():
                raise FileNotFoundError(f"{file} is missing; export the model again.")
        self.prefill_session = ort.InferenceSession(str(folder / self.description["prefill"]["file"]), options,
                                                    providers=["CPUExecutionProvider"])
        self.step_session = ort.InferenceSession(str(folder / self.description["decode_step"]["file"]), options,
                                                 providers=["CPUExecutionProvider"])
        self.state_names = [n.split(".", 1)[1] for n in self.description["prefill"]["outputs"][1:]]
        self.tokenizer = ByteCodec(folder)
        self.max_positions = self.description.get("max_position_embeddings")

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray):
        """input_ids, attention_mask (B, T) int64, left-padded -> logits (B, T, V), state."""
        outputs = self.prefill_session.run(None, {"input_ids": input_ids.astype(np.int64),
                                                  "attention_mask": attention_mask.astype(np.int64)})
        return outputs[0], dict(zip(self.state_names, outputs[1:]))

    def step(self, tokens: np.ndarray, state: dict):
        """tokens (B,) int64 -> logits (B, V) of the next token, the next state."""
        feeds = {"input_ids": tokens.astype(np.int64).reshape(-1, 1)}
        feeds.update({f"past.{name}": state[name] for name in self.state_names})
        outputs = self.step_session.run(None, feeds)
        return outputs[0][:, -1], dict(zip(self.state_names, outputs[1:]))

    def encode_batch(self, texts: list[str]):
        """Left-padded ids and mask (B, T) int64 of texts."""
        encoded = [self.tokenizer.encode(text) for text in texts]
        width = max(len(ids) for ids in encoded)
        ids = np.full((len(texts), width), self.tokenizer.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, tokens in enumerate(encoded):
            if tokens:
                ids[row, width - len(tokens):] = tokens
                mask[row, width - len(tokens):] = 1
        return ids, mask

    def check_length(self, prompt_tokens: int, max_new_tokens: int) -> None:
        limit = self.max_positions
        if limit is not None and prompt_tokens + max_new_tokens > limit:
            raise ValueError(
                f"the prompt's {prompt_tokens} tokens plus {max_new_tokens} new ones make "
                f"{prompt_tokens + max_new_tokens}, but this AFT-{self.description['aft_variant']} model learned "
                f"positions only up to max_position_embeddings={limit}; pass --max-new-tokens "
                f"{max(limit - prompt_tokens, 0)} or fewer, or shorten the prompt."
            )

    def generate(self, input_ids, attention_mask, max_new_tokens: int, greedy: bool = True, temperature: float = 1.0,
                 top_k: int = 0, top_p: float = 1.0, repetition_penalty: float = 1.0, seed: int = 0,
                 stop_at_eos: bool = True):
        """Yield the next token of every sequence (B,) int64, max_new_tokens times (fewer once every sequence has
        ended with the end-of-text id, which then repeats as padding)."""
        self.check_length(int(attention_mask.sum(axis=1).max()), max_new_tokens)
        rng = np.random.default_rng(seed)
        logits, state = self.prefill(input_ids, attention_mask)
        logits = logits[:, -1]
        seen = [set(row[m > 0].tolist()) for row, m in zip(input_ids, attention_mask)]
        eos = self.description.get("eos_token_id")
        done = np.zeros(len(input_ids), dtype=bool)
        for index in range(max_new_tokens):
            scores = logits.astype(np.float64)
            if repetition_penalty != 1.0:
                scores = _penalise(scores, seen, repetition_penalty)
            tokens = scores.argmax(axis=-1) if greedy else _sample(scores, temperature, top_k, top_p, rng)
            if eos is not None and stop_at_eos:
                tokens = np.where(done, eos, tokens)
                done |= tokens == eos
            for row, token in enumerate(tokens):
                seen[row].add(int(token))
            yield tokens.astype(np.int64)
            if stop_at_eos and done.all() or index == max_new_tokens - 1:
                return
            logits, state = self.step(tokens, state)


def _penalise(scores, seen, penalty):
    """transformers' repetition penalty: a seen token's positive logit divided by it, a negative one multiplied."""
    out = scores.copy()
    for row, tokens in enumerate(seen):
        index = np.fromiter(tokens, dtype=np.int64)
        picked = out[row, index]
        out[row, index] = np.where(picked > 0, picked / penalty, picked * penalty)
    return out


def _sample(scores, temperature, top_k, top_p, rng):
    """One token per row from softmax(scores / temperature), keeping the top_k and the top_p mass (as generate())."""
    scores = scores / temperature
    if top_k and top_k < scores.shape[-1]:
        kth = np.sort(scores, axis=-1)[:, -top_k][:, None]
        scores = np.where(scores < kth, -np.inf, scores)
    probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p < 1.0:
        order = np.argsort(-probs, axis=-1)
        sorted_probs = np.take_along_axis(probs, order, axis=-1)
        before = np.cumsum(sorted_probs, axis=-1) - sorted_probs  # mass of the tokens more likely than this one
        sorted_probs = np.where(before < top_p, sorted_probs, 0.0)
        probs = np.zeros_like(probs)
        np.put_along_axis(probs, order, sorted_probs, axis=-1)
        probs /= probs.sum(axis=-1, keepdims=True)
    return np.array([rng.choice(len(p), p=p) for p in probs], dtype=np.int64)


# ----------------------------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------------------------


def run_generation(folder, args, out=None) -> int:
    """The command's work: print the prompt and its continuation as it comes."""
    out = sys.stdout if out is None else out
    if args.top_p > 1:
        raise ValueError(f"--top-p must lie in (0, 1]; got {args.top_p}.")
    if args.top_k < 0:
        raise ValueError(f"--top-k must be >= 0 (0 disables top-k filtering); got {args.top_k}.")
    if not args.prompt:
        raise ValueError("the prompt is empty; pass --prompt with at least one character.")
    runtime = OnnxAFT(folder)
    ids, mask = runtime.encode_batch([args.prompt])
    runtime.check_length(ids.shape[1], args.max_new_tokens)  # refused before any text is printed
    out.write(args.prompt)
    pending = []
    for tokens in runtime.generate(ids, mask, args.max_new_tokens, greedy=args.greedy, temperature=args.temperature,
                                   top_k=args.top_k, top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                                   seed=args.seed):
        pending.append(int(tokens[0]))
        text = runtime.tokenizer.decode(pending)
        if not text.endswith("\ufffd"):  # a character's bytes still arriving: wait for the rest
            out.write(text)
            out.flush()
            pending = []
    out.write(runtime.tokenizer.decode(pending) + "\n")
    return 0


def main(argv=None) -> int:
    parser = cli.Parser(prog="python -m training.onnx_runtime", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder written by python -m conversion.export_onnx")
    cli.add_sampling_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_generation(args.folder, args)
    except (ValueError, OSError, ort.capi.onnxruntime_pybind11_state.Fail) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
