# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""CPU quantisation of the shipped byte LM through transformers' quantizers: bitsandbytes 8-bit (LLM.int8) and
4-bit (NF4), torchao int8 weight-only, against float32. Prints a table and writes benchmarks/results/quantization.json:
memory of the weights (stored bytes), greedy decode tokens per second, and bits per character on the
first --test-bytes bytes of the Wikipedia test split (windows of max_position_embeddings, as the trainer evaluates).

    python -m benchmarks.quantization [--folder pretrained/aft-local-wikipedia] [--test-bytes 32768] [--new-tokens 128]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "quantization.json"
SHIPPED = Path(__file__).resolve().parents[1] / "pretrained" / "aft-local-wikipedia"
PROMPT = b"The city of "


def quantization_configs() -> dict:
    """name -> from_pretrained kwargs. bitsandbytes computes in float32 on CPU (4-bit: compute dtype float32)."""
    from torchao.quantization import Int8WeightOnlyConfig
    from transformers import BitsAndBytesConfig, TorchAoConfig

    return {
        "float32": {},
        "bnb-int8": {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)},
        "bnb-nf4": {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                              bnb_4bit_compute_dtype=torch.float32)},
        "torchao-int8-weight-only": {"quantization_config": TorchAoConfig(Int8WeightOnlyConfig())},
    }


def load(folder: Path, name: str):
    from transformers import AutoModelForCausalLM

    importlib.import_module("modeling_aft")  # registers "aft"

    return AutoModelForCausalLM.from_pretrained(folder, device_map="cpu", **quantization_configs()[name]).eval()


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor really holds. torchao's quantized weights are tensor subclasses that report the float dtype
    (so model.get_memory_footprint() counts them as float32); their inner tensors (int8 data, scales) are summed."""
    if hasattr(tensor, "__tensor_flatten__") and type(tensor) not in (torch.Tensor, torch.nn.Parameter):
        names, _ = tensor.__tensor_flatten__()
        return sum(tensor_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()


def memory_bytes(model) -> int:
    """Parameters and buffers (parameters() yields the tied LM head and embedding once)."""
    return sum(tensor_bytes(tensor.data) for tensor in [*model.parameters(), *model.buffers()])


def decode_speed(model, new_tokens: int) -> tuple[float, bytes]:
    ids = torch.tensor([list(PROMPT)])  # (1, P)
    model.generate(ids, max_new_tokens=4, do_sample=False)  # warm-up
    start = time.perf_counter()
    out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    seconds = time.perf_counter() - start
    return new_tokens / seconds, bytes(out[0].tolist())


def measure(folder: Path, names: list[str], test_bytes: int, new_tokens: int) -> list[dict]:
    from training.data_text import load_text
    from training.evaluate_text import evaluate_bits_per_byte

    test = load_text(None).test
    rows = []
    for name in names:
        model = load(folder, name)
        with torch.no_grad():
            tokens_per_second, text = decode_speed(model, new_tokens)
            bpc = evaluate_bits_per_byte(model, test, model.config.max_position_embeddings, 16, max_bytes=test_bytes)
        rows.append({"name": name, "memory_bytes": memory_bytes(model),
                     "decode_tokens_per_second": tokens_per_second, "bpc": bpc["bpc"], "bytes": bpc["bytes"],
                     "sample": text.decode("utf-8", "replace")})
    return rows


def table(rows: list[dict]) -> str:
    base = rows[0]
    lines = ["| weights | memory | decode tokens/s | bits per character (test part) | bpc vs float32 |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for row in rows:
        lines.append(f"| {row['name']} | {row['memory_bytes'] / 2**20:.1f} MiB | {row['decode_tokens_per_second']:.0f} "
                     f"| {row['bpc']:.4f} | {row['bpc'] - base['bpc']:+.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=SHIPPED)
    parser.add_argument("--test-bytes", type=int, default=32768)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.test_bytes < 2 or args.new_tokens < 1 or not (args.folder / "config.json").is_file():
        print("error: --test-bytes >= 2, --new-tokens >= 1 and a --folder with config.json are needed", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    rows = measure(args.folder, list(quantization_configs()), args.test_bytes, args.new_tokens)
    print(table(rows))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    payload = {"folder": str(args.folder), "threads": args.threads, "test_bytes": args.test_bytes,
               "new_tokens": args.new_tokens, "torch": torch.__version__, "rows": rows}
    args.output.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
