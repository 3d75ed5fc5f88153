# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Bits per character (= bits per byte) of a byte-level AFT language model on a byte array, the enwik8 metric.

Windows of `seq_len + 1` bytes start every `stride` bytes (the last one is cut at the end of the data). The first
window scores all its targets, every later window only the targets no earlier window scored: its last `stride`
ones, fewer for the cut last window. So every byte after the first is predicted exactly once, and with
stride < seq_len from at least `seq_len - stride + 1` bytes of context (fewer only inside the first window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class _Window:
    start: int  # the window is data[start:end]
    end: int
    first_scored: int  # index, among the window's end - start - 1 targets, of the first one it scores


def _windows(num_bytes: int, seq_len: int, stride: int) -> list[_Window]:
    windows = []
    scored_up_to = 0  # every target at a position <= this one is already scored
    start = 0
    while scored_up_to < num_bytes - 1:
        end = min(start + seq_len + 1, num_bytes)
        windows.append(_Window(start, end, scored_up_to - start))
        scored_up_to = end - 1
        start += stride
    return windows


def _batches(windows: list[_Window], batch_size: int) -> list[list[_Window]]:
    """Full-length windows batch_size at a time; the cut last window, if any, alone (no padding to count)."""
    full_length = max(w.end - w.start for w in windows)
    full = [w for w in windows if w.end - w.start == full_length]
    short = [w for w in windows if w.end - w.start != full_length]
    return [full[i : i + batch_size] for i in range(0, len(full), batch_size)] + [[w] for w in short]


def _batch_nll(model, data: np.ndarray, batch: list[_Window], device: torch.device) -> tuple[float, int]:
    """Sum of -log p(byte) over the scored targets of a batch of equal-length windows, and their count."""
    tokens = np.stack([data[w.start : w.end] for w in batch]).astype(np.int64)  # (B, L + 1)
    tokens = torch.from_numpy(tokens).to(device)  # (B, L + 1)
    logits = model(input_ids=tokens[:, :-1], use_cache=False).logits  # (B, L, V)
    log_probs = logits.float().log_softmax(dim=-1)  # (B, L, V)
    target_log_probs = log_probs.gather(-1, tokens[:, 1:, None]).squeeze(-1)  # (B, L)
    first = torch.tensor([w.first_scored for w in batch], device=device)  # (B,)
    scored = torch.arange(tokens.shape[1] - 1, device=device)[None, :] >= first[:, None]  # (B, L)
    nll = -(target_log_probs.double() * scored).sum().item()
    return nll, int(scored.sum().item())


def _check_arguments(data, seq_len: int, batch_size: int, stride: int | None, max_bytes: int | None) -> None:
    for name, value in (("seq_len", seq_len), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer.")
    if stride is not None and (isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= seq_len):
        raise ValueError(f"stride={stride!r} must be an integer in [1, seq_len={seq_len}], or None for seq_len.")
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 2):
        raise ValueError(f"max_bytes={max_bytes!r} must be an integer >= 2 (one input and one target), or None.")
    if not isinstance(data, np.ndarray) or data.ndim != 1 or not np.issubdtype(data.dtype, np.integer):
        shape = getattr(data, "shape", None)
        raise ValueError(f"data must be a 1-D integer numpy array of bytes; got {type(data).__name__} {shape}.")
    if data.size < 2:
        raise ValueError(f"data holds {data.size} byte(s); at least 2 are needed to predict one.")


def evaluate_bits_per_byte(
    model,
    data: np.ndarray,
    seq_len: int,
    batch_size: int,
    stride: int | None = None,
    accelerator=None,
    max_bytes: int | None = None,
) -> dict:
    """Bits per byte of a causal LM on `data`, each byte after the first predicted exactly once.

    Args:
        model: an `AFTForCausalLM` (or anything whose `model(input_ids=...).logits` is (B, T, 256)), possibly
            wrapped by `accelerator.prepare`.
        data: the bytes, a 1-D integer array (uint8).
        seq_len: the number of inputs of a window.
        batch_size: windows per forward pass.
        stride: None (= seq_len) for non-overlapping windows; smaller for a sliding window, where each byte sees
            at least seq_len - stride + 1 bytes of context (except in the first window).
        accelerator: an Accelerate `Accelerator`; with several processes each takes every num_processes-th batch
            and the sums are reduced across them. Every process must call this function.
        max_bytes: evaluate only the first max_bytes bytes (a quick estimate during training).

    Returns:
        {"bpc": bits per byte, "nll": nats per byte, "bytes": the number of bytes predicted, "seq_len", "stride"}.
    """
    _check_arguments(data, seq_len, batch_size, stride, max_bytes)
    stride = seq_len if stride is None else stride
    if max_bytes is not None:
        data = data[:max_bytes]
    num_processes = 1 if accelerator is None else accelerator.num_processes
    rank = 0 if accelerator is None else accelerator.process_index
    device = accelerator.device if accelerator is not None else next(model.parameters()).device

    batches = _batches(_windows(data.size, seq_len, stride), batch_size)
    mine = batches[rank::num_processes]
    # Every process runs the same number of forwards through the wrapped model (DDP broadcasts buffers and FSDP
    # gathers shards in each forward, collectives that all processes must join); extra ones are discarded.
    rounds = math.ceil(len(batches) / num_processes)
    total_nll, total_count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(rounds):
                nll, count = _batch_nll(model, data, mine[i] if i < len(mine) else batches[0], device)
                if i < len(mine):
                    total_nll += nll
                    total_count += count
    finally:
        model.train(was_training)

    if num_processes > 1:
        sums = torch.tensor([total_nll, float(total_count)], dtype=torch.float64, device=accelerator.device)
        sums = accelerator.reduce(sums, reduction="sum")  # (2,)
        total_nll, total_count = float(sums[0]), int(round(float(sums[1])))
    nll_per_byte = total_nll / total_count
    return {
        "bpc": nll_per_byte / math.log(2),
        "nll": nll_per_byte,
        "bytes": total_count,
        "seq_len": seq_len,
        "stride": stride,
    }


__all__ = ["evaluate_bits_per_byte"]
