# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Generate text from a saved AFT language model, printing it as it comes.

    python -m training.generate FOLDER --prompt "The " [--max-new-tokens 200] [--temperature 0.8] [--top-k 50]
                                       [--top-p 0.95] [--repetition-penalty 1.1] [--greedy] [--seed 0]
    python -m training.generate --onnx OUT --prompt "The " ...   (onnxruntime, a folder of conversion.export_onnx)

FOLDER holds a checkpoint written by `save_pretrained` (with its tokenizer; the byte tokenizer is used when the
folder has none). Decoding runs on AFT's recurrent state: simple, local and conv keep a state of constant size.
Every failure is one line `error: ...` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, TextStreamer
from transformers.utils import logging as hf_logging

from conversion import cli
from modeling_aft import AFTByteTokenizer  # importing modeling_aft registers "aft" with the Auto classes


def load(folder: Path):
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; pass a folder written by save_pretrained.")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no config.json; pass a folder written by save_pretrained.")
    try:
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
    except (SafetensorError, RuntimeError) as err:  # a corrupt file; weights that do not fit the config
        raise ValueError(f"{folder} holds a model that cannot be loaded: {err}") from err
    if (folder / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(folder)
    else:
        tokenizer = AFTByteTokenizer()
    return model, tokenizer


def check_length(config, prompt_tokens: int, max_new_tokens: int) -> None:
    """Refuse before the first token a continuation longer than the positions the model learned; found during
    generation, the error would come after part of the text was printed."""
    limit = config.max_position_embeddings
    if not config.has_absolute_positions or prompt_tokens + max_new_tokens <= limit:
        return
    fix = "or resize the model's positions to a longer maximum (python -m conversion.resize_positions) and fine-tune"
    if prompt_tokens >= limit:
        raise ValueError(
            f"the prompt has {prompt_tokens} tokens but this AFT-{config.aft_variant} model learned positions only "
            f"up to max_position_embeddings={limit}, which leaves no room for a new token; shorten the prompt to "
            f"at most {limit - 1} tokens, {fix}."
        )
    raise ValueError(
        f"the prompt's {prompt_tokens} tokens plus --max-new-tokens {max_new_tokens} make "
        f"{prompt_tokens + max_new_tokens} but this AFT-{config.aft_variant} model learned positions only up to "
        f"max_position_embeddings={limit}; "
        f"pass --max-new-tokens {limit - prompt_tokens} or fewer, shorten the prompt, {fix}."
    )


def build_parser() -> argparse.ArgumentParser:
    parser = cli.Parser(prog="python -m training.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, nargs="?", help="a saved AFTForCausalLM checkpoint")
    parser.add_argument("--onnx", type=Path, metavar="OUT",
                        help="generate with onnxruntime from a folder of python -m conversion.export_onnx instead")
    cli.add_sampling_arguments(parser)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.folder is None) == (args.onnx is None):
        parser.error("pass either a model FOLDER or --onnx OUT (an exported folder), not both or neither")
    if args.onnx is not None:
        from training.onnx_runtime import run_generation

        return cli.run(lambda: run_generation(args.onnx, args))
    return cli.run(lambda: generate(args))


def generate(args: argparse.Namespace) -> int:
    if args.top_p > 1:
        raise ValueError(f"--top-p must lie in (0, 1]; got {args.top_p}.")
    if args.top_k < 0:
        raise ValueError(f"--top-k must be >= 0 (0 disables top-k filtering); got {args.top_k}.")
    hf_logging.disable_progress_bar()
    model, tokenizer = load(args.folder)
    torch.manual_seed(args.seed)
    inputs = tokenizer(args.prompt, return_tensors="pt")
    if inputs["input_ids"].shape[1] == 0:
        raise ValueError("the prompt is empty; pass --prompt with at least one character.")
    check_length(model.config, inputs["input_ids"].shape[1], args.max_new_tokens)
    streamer = TextStreamer(tokenizer, skip_special_tokens=True)
    sampling = {} if args.greedy else dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    with torch.no_grad():
        model.generate(
            **inputs,
            max_new_tokens=args.max_new_tokens,
            do_sample=not args.greedy,
            repetition_penalty=args.repetition_penalty,
            pad_token_id=tokenizer.pad_token_id,
            streamer=streamer,
            **sampling,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
