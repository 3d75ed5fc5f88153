# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""A decoding step on onnxruntime (the exported decode_step.onnx) against PyTorch's generate(), side by side.

    python -m benchmarks.export [--contexts 1024 16384] [--rounds 5] [--steps 32] [--threads 1]
                                [--out benchmarks/results/export]

Models: the shipped pretrained/aft-local-wikipedia (4 x 256, local window 32), whose absolute positions end at
max_position_embeddings = 256, so it is measured only at its limit (a 192-token context, 32 new tokens up to 224);
a local model of the shipped size (4 x 256) and one of 6 x 512, both randomly initialised with
max_position_embeddings large enough for every context. Each model is exported (python -m conversion.export_onnx)
into a temporary folder. For each context one PyTorch prefill gives the decoding state; the onnxruntime loop starts
from the same state handed over as its named tensors (the prefill graph forms T x T biases, too large at 16k; the
tests check that its state equals PyTorch's), so both then decode the same tokens. Timed in alternation, `--rounds`
rounds of `--steps` tokens each:

* onnxruntime: `OnnxAFT.step` (one run of decode_step.onnx with numpy in and out, greedy pick in numpy);
* PyTorch generate(): `model.generate(..., max_new_tokens=steps, do_sample=False)` continuing from a copy of the
  state, total time / steps (generate()'s own bookkeeping included, as a user pays it);
* PyTorch step: a bare `model(token, cache=state)` per token, the floor of PyTorch's own cost.

Reported: the median ms per token of each, the ratio generate() / onnxruntime and, for the onnxruntime step, the
ratio of its time after the longest context to that after the shortest. Writes <out>.json.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SHIPPED = Path(__file__).resolve().parents[1] / "pretrained" / "aft-local-wikipedia"


def _cache_state(model, cache) -> dict:
    """The cache's state as the named tensors of the exported graphs (numpy)."""
    return {f"{i}.{name}": tensor.detach().numpy().copy() for i, block in enumerate(model.model.layers)
            for name, tensor in block.mixer.cache_state_tensors(cache).items()}


def _random_local(width: int, layers: int, max_positions: int):
    from modeling_aft import AFTConfig, AFTForCausalLM

    config = AFTConfig.from_preset("cpu-text-local", hidden_size=width, intermediate_size=4 * width,
                                   num_hidden_layers=layers, max_position_embeddings=max_positions, local_window=32,
                                   position_bias_dim=128)
    torch.manual_seed(0)
    return AFTForCausalLM(config).eval()


@torch.no_grad()
def _measure(model, runtime, context: int, rounds: int, steps: int) -> dict:
    ids = torch.randint(1, 256, (1, context), generator=torch.Generator().manual_seed(context))
    out = model(ids, use_cache=True, logits_to_keep=1)
    cache, first = out.cache, out.logits[:, -1].argmax(-1)
    state = _cache_state(model, cache)
    prompt = torch.cat([ids, first[:, None]], dim=1)  # generate() reads the one unread token, then steps on

    def onnx_round():
        tokens, current, times = [], state, []
        token = first.numpy()
        for _ in range(steps):
            start = time.perf_counter()
            logits, current = runtime.step(token, current)
            token = logits.argmax(-1)
            times.append(time.perf_counter() - start)
            tokens.append(int(token[0]))
        return statistics.median(times) * 1e3, tokens

    def generate_round():
        held = copy.deepcopy(cache)
        start = time.perf_counter()
        generated = model.generate(prompt, cache=held, max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                                   pad_token_id=0)
        return (time.perf_counter() - start) * 1e3 / steps, generated[0, prompt.shape[1]:].tolist()

    def step_round():
        held, token, times = copy.deepcopy(cache), first[:, None], []
        for _ in range(steps):
            start = time.perf_counter()
            logits = model(token, cache=held, use_cache=True).logits
            token = logits[:, -1:].argmax(-1)
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e3

    onnx_round(), generate_round(), step_round()  # warm-up
    onnx_ms, generate_ms, step_ms = [], [], []
    agree = True
    for _ in range(rounds):
        ms, onnx_tokens = onnx_round()
        onnx_ms.append(ms)
        ms, torch_tokens = generate_round()
        generate_ms.append(ms)
        step_ms.append(step_round())
        agree = agree and onnx_tokens == torch_tokens  # both read `first` and go on from there
    onnx, gen, step = (statistics.median(x) for x in (onnx_ms, generate_ms, step_ms))
    return dict(context=context, onnx_ms=onnx, generate_ms=gen, torch_step_ms=step, generate_over_onnx=gen / onnx,
                torch_step_over_onnx=step / onnx, same_greedy_tokens=agree, tokens_per_round=steps)


def main(argv=None) -> int:
    from conversion.export_onnx import export_onnx, load_model
    from training.onnx_runtime import OnnxAFT

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contexts", type=int, nargs="+", default=[1024, 16384])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (default 1)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/export"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    longest = max(args.contexts) + args.steps * 2 + 64
    models = [("aft-local-wikipedia (shipped, 4 x 256)", lambda: load_model(str(SHIPPED)), [192]),
              ("local 4 x 256 (shipped size, random)", lambda: _random_local(256, 4, longest), args.contexts),
              ("local 6 x 512 (random)", lambda: _random_local(512, 6, longest), args.contexts)]
    rows = []
    print(f"{'model':40} {'context':>8} {'onnxruntime':>12} {'generate()':>11} {'torch step':>11} "
          f"{'gen/ort':>8} {'same tokens':>11}", flush=True)
    for label, build, contexts in models:
        model = build()
        with tempfile.TemporaryDirectory() as scratch:
            export_onnx(model, Path(scratch) / "onnx")
            runtime = OnnxAFT(Path(scratch) / "onnx", threads=args.threads)
            for context in contexts:
                row = dict(model=label, **_measure(model, runtime, context, args.rounds, args.steps))
                rows.append(row)
                print(f"{label:40} {context:>8} {row['onnx_ms']:>9.3f} ms {row['generate_ms']:>8.3f} ms "
                      f"{row['torch_step_ms']:>8.3f} ms {row['generate_over_onnx']:>7.1f}x "
                      f"{str(row['same_greedy_tokens']):>11}", flush=True)
    ratios = {}
    for label in {row["model"] for row in rows}:
        mine = {row["context"]: row["onnx_ms"] for row in rows if row["model"] == label}
        if len(mine) > 1:
            ratios[label] = mine[max(mine)] / mine[min(mine)]
            print(f"{label}: onnxruntime step after {max(mine)} / after {min(mine)} tokens = {ratios[label]:.3f}")
    facts = dict(torch=torch.__version__, onnxruntime=__import__("onnxruntime").__version__, threads=args.threads,
                 numpy=np.__version__, date=time.strftime("%Y-%m-%dT%H:%M:%S"), python=sys.version.split()[0])
    from training.atomic import atomic_write_json

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out.with_suffix(".json"), dict(machine=facts, settings=vars(args) | {"out": str(args.out)},
                                                          results=rows, onnx_long_over_short=ratios))
    print(f"wrote {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
