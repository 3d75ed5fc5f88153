# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The training loop shared by the three trainers (text LM, pixel LM, image classification), on Accelerate.

What Accelerate does: devices, DDP/FSDP/DeepSpeed, mixed precision, gradient sync, saving and loading the whole
training state (model, optimizer, every process's RNG), trackers (TensorBoard). What this file adds:

- A data order that is a pure function of (seed, step): the global batch of optimizer step s is items
  [s*B, (s+1)*B) of an endless sequence of per-epoch permutations. `--batch-size` is that global batch, split over
  processes and accumulation steps, so 1 process and N processes see the same samples per step, and a resumed run
  continues exactly where the checkpoint was taken. Augmentations draw from a generator seeded by (seed, step, micro
  step, process) for the same reason.
- Checkpoints written under a temporary name and renamed into place when complete (a run killed mid-write leaves
  only a `.tmp-*` folder, which is never loaded), keeping the last K. Each ends with `manifest.json` (every file's
  size and sha256), so that a file truncated or damaged later is found before it is loaded.
- `--resume`: the latest intact checkpoint (a damaged newer one is named, set aside as `checkpoint-N.damaged`, and the
  one before it used), or a given one; a checkpoint of another model configuration or data order is refused before
  any training.
- At the end: a Hugging Face folder (`save_pretrained` + tokenizer or image processor + model card with the measured
  metrics + loss curves), written under a temporary name and swapped in; a run killed during the swap has it put back
  by the next run in that --output-dir.
- A full disk, an --output-dir that is a file, a token the Hub refuses: one line `error: ...` (exit 2), nothing
  half-written left behind.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import math
import os
import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from . import presets as preset_table
from .atomic import atomic_write_json, atomic_write_text, is_temporary, plain_modes, temporary_path
from .baselines import BASELINES, is_baseline, with_baseline
from .publish import human_size

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"
# Written last into a checkpoint: {"files": {relative path: {"size", "sha256"}}}. trainer_state.json says that a
# checkpoint has one (`"manifest": true`), so that a deleted manifest is damage, not an old checkpoint.
MANIFEST_FILE = "manifest.json"
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)
# What torch.save and safetensors raise on a failed write: not OSError, so recognised by their text.
WRITE_FAILED = re.compile(r"no space left|os error 28|storagefull|disk quota|file write failed", re.IGNORECASE)
# Arguments that decide which samples each step sees: a checkpoint made with other values cannot be continued.
# The --dataset ones exist in some trainers only (getattr gives None elsewhere, and in checkpoints from before them).
DATA_ORDER_ARGS = ("seed", "batch_size", "seq_len", "data", "dataset", "dataset_config", "dataset_split", "text_column",
                   "streaming", "max_bytes", "image_column", "label_column")


class TrainingError(ValueError):
    """Bad input found before training starts; the message names the value and the fix."""


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------


def base_parser(task: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default=preset_table.DEFAULT_PRESET[task],
                   help=f"training preset: {', '.join(preset_table.presets_for(task))}")
    p.add_argument("--data", default=None, help="data source (see the trainer's description); default: embedded")
    p.add_argument("--output-dir", default=f"runs/{task}", help="checkpoints, logs, and the final model folder")
    p.add_argument("--config-overrides", default="",
                   help="model config fields to change, e.g. 'num_hidden_layers=2,hidden_size=64'")
    p.add_argument("--max-steps", type=int, help="optimizer steps")
    p.add_argument("--batch-size", type=int, help="global batch per optimizer step (all processes and accumulation)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step and process")
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--min-lr-ratio", type=float, default=0.0, help="cosine decays to this fraction of the peak lr")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--adam-beta2", type=float)
    p.add_argument("--max-grad-norm", type=float, help="gradient clipping; 0 disables it")
    p.add_argument("--dropout", type=float, help="hidden_dropout_prob of the model")
    p.add_argument("--mixed-precision", default=None, choices=["no", "fp16", "bf16"],
                   help="default: what `accelerate launch` (or its config file) says, else no")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline", default=None, choices=sorted({b for bs in BASELINES.values() for b in bs}),
                   help="train the attention baseline of the same size instead of the AFT (same data, batches, "
                        "schedule and evaluation): gpt2 for the language models, vit for image classification")
    p.add_argument("--eval-every", type=int, help="evaluate every N steps (and at the end)")
    p.add_argument("--save-every", type=int, help="checkpoint every N steps (and at the end)")
    p.add_argument("--keep-last", type=int, default=2, help="checkpoints to keep")
    p.add_argument("--log-every", type=int, default=10, help="log the training loss every N steps")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--resume", nargs="?", const="latest", default=None,
                   help="continue from the latest complete checkpoint in --output-dir, or from the one given")
    p.add_argument("--overwrite-output-dir", action="store_true",
                   help="start afresh in an --output-dir that holds an earlier run (its checkpoints are deleted)")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard logs")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.add_argument("--skip-final-eval", action="store_true", help="no evaluation on the test split at the end")
    p.add_argument("--push-to-hub", metavar="REPO_ID", default=None,
                   help="publish the final folder to this Hub repo (token from HF_TOKEN or the saved login; "
                        "HF_ENDPOINT selects another Hub)")
    p.add_argument("--hub-private", action="store_true", help="with --push-to-hub: create the repo private")
    p.add_argument("--hub-revision", default=None, help="with --push-to-hub: the branch to commit to")
    return p


def parse_args(parser: argparse.ArgumentParser, task: str, argv: list[str] | None) -> argparse.Namespace:
    """Parse twice: the preset fills every value the command line leaves out."""
    known, _ = parser.parse_known_args(argv)
    try:
        defaults = preset_table.resolve(task, known.preset)
    except ValueError as err:
        parser.error(str(err))
    parser.set_defaults(**{k: v for k, v in defaults.items() if k != "model_preset"})
    args = parser.parse_args(argv)
    args.task = task
    args.model_preset = defaults["model_preset"]
    args.model_overrides = dict(defaults.get("model_overrides", {}))
    try:
        args.model_overrides.update(parse_overrides(args.config_overrides))
    except ValueError as err:
        parser.error(str(err))
    return args


def parse_overrides(text: str) -> dict[str, Any]:
    """'a=1,b=0.5,c=local,d=true' -> {'a': 1, 'b': 0.5, 'c': 'local', 'd': True} (JSON values, else strings)."""
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if "=" not in item:
            raise ValueError(f"--config-overrides item {item!r} is not key=value (e.g. 'hidden_size=64').")
        key, value = (s.strip() for s in item.split("=", 1))
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def check_batch_args(args: argparse.Namespace, num_processes: int) -> int:
    """The micro-batch each process runs; the global batch must split evenly."""
    for name in ("batch_size", "max_steps", "grad_accum"):
        if getattr(args, name) is None or getattr(args, name) < 1:
            raise TrainingError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}.")
    parts = num_processes * args.grad_accum
    if args.batch_size % parts:
        raise TrainingError(
            f"--batch-size {args.batch_size} does not split over {num_processes} process(es) x --grad-accum "
            f"{args.grad_accum}; use a multiple of {parts}.")
    for name in ("eval_every", "save_every", "log_every"):
        if getattr(args, name) is None or getattr(args, name) < 1:
            raise TrainingError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}.")
    return args.batch_size // parts


# ----------------------------------------------------------------------------------------------------------------
# The model config
# ----------------------------------------------------------------------------------------------------------------


def model_config(args: argparse.Namespace, defaults: dict | None = None, fixed: dict | None = None):
    """The trainers' one way to build the model config: the preset's, changed by (weakest first) --dropout, what the
    data suggests (`defaults`, e.g. a sequence length), the preset's and the command line's --config-overrides, and
    what the task requires (`fixed`, e.g. its vocabulary or labels). A value the config refuses is one TrainingError
    naming it."""
    from modeling_aft import AFTConfig

    overrides = {"hidden_dropout_prob": args.dropout, **(defaults or {}), **args.model_overrides, **(fixed or {})}
    try:
        return AFTConfig.from_preset(args.model_preset, **overrides)
    except (ValueError, TypeError) as err:
        raise TrainingError(f"model config: {err}") from None


def check_positions(config, length: int, too_long: str, shorter: str = "") -> None:
    """Sequences of `length` tokens fit a model that learns something per absolute position (its config says so:
    has_absolute_positions) only up to max_position_embeddings; refuse longer ones before training instead of in
    the first forward. `too_long` opens the message ("--seq-len 2048 is"), `shorter` offers the other way out."""
    limit = config.max_position_embeddings
    if config.has_absolute_positions and length > limit:
        raise TrainingError(
            f"{too_long} above max_position_embeddings {limit} (this AFT-{config.aft_variant} model learns a value "
            f"per position only up to there); {shorter}pass --config-overrides max_position_embeddings={length}.")


# ----------------------------------------------------------------------------------------------------------------
# Data order
# ----------------------------------------------------------------------------------------------------------------


class StepBatchSampler(Sampler[list[int]]):
    """Micro-batches of this process for optimizer steps start_step .. max_steps - 1, a pure function of the seed.

    The global sample stream is the concatenation of permutations of range(n), one per epoch, each drawn from a
    generator seeded with (seed, epoch). Step s takes stream items [s*B, (s+1)*B); micro-step a of process r takes
    the slice [(a*P + r)*m, (a*P + r + 1)*m) of those, with m = B / (P * A).
    """

    def __init__(self, num_items: int, batch_size: int, grad_accum: int, num_processes: int, process_index: int,
                 seed: int, start_step: int, max_steps: int):
        if num_items < 1:
            raise TrainingError("the training set is empty; give more data.")
        self.n, self.batch, self.accum = num_items, batch_size, grad_accum
        self.procs, self.rank, self.seed = num_processes, process_index, seed
        self.start, self.stop = start_step, max_steps
        self.micro = batch_size // (num_processes * grad_accum)
        self._perm_epoch, self._perm = -1, None

    def _item(self, i: int) -> int:
        epoch, pos = divmod(i, self.n)
        if epoch != self._perm_epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=gen), epoch
        return int(self._perm[pos])

    def step_items(self, step: int) -> list[int]:
        return [self._item(step * self.batch + j) for j in range(self.batch)]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            items = self.step_items(step)
            for a in range(self.accum):
                lo = (a * self.procs + self.rank) * self.micro
                yield items[lo:lo + self.micro]

    def __len__(self) -> int:
        return (self.stop - self.start) * self.accum


def step_generator(seed: int, step: int, micro: int, process: int) -> torch.Generator:
    """A generator for the random augmentations of one micro-batch; the same on a resumed run."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 1009 + micro) * 257 + process)


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------------------------


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under root, oldest first. A folder only gets its final name once complete, and must hold
    its state file; anything else (a `.tmp-*` folder of a killed run, a `checkpoint-N.damaged`) is ignored."""
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = CHECKPOINT_RE.match(path.name)
        if match and path.is_dir() and (path / STATE_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def write_json_atomic(path: Path, obj: Any) -> None:
    """The trainers' JSON files (state, manifest, results): sorted keys, anything else as its str(). Atomic; a full
    disk leaves no half-written temporary behind. (One name that tests and benchmarks patch or call.)"""
    atomic_write_json(path, obj, indent=2, sort_keys=True, default=str)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    """Every file of the checkpoint with its size and sha256, written last: with it the checkpoint is complete.
    Temporaries (a file or folder of a writer that failed inside it) are not part of it."""
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and path.name != MANIFEST_FILE and not any(is_temporary(part) for part in relative.parts):
            files[relative.as_posix()] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    write_json_atomic(folder / MANIFEST_FILE, {"files": files})


def checkpoint_problems(ckpt: Path) -> tuple[list[str], bool]:
    """What is wrong with the files of a checkpoint (nothing: it is intact), and whether a manifest vouched for them.

    A checkpoint from before manifests is only checked for a readable state file and loadable RNG states."""
    problems: list[str] = []
    state = None
    try:
        state = json.loads((ckpt / STATE_FILE).read_text())
        if not isinstance(state, dict) or not {"step", "config", "args"} <= set(state):
            problems.append(f"{STATE_FILE} lacks step/config/args")
            state = None
    except FileNotFoundError:
        problems.append(f"{STATE_FILE} is missing")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        problems.append(f"{STATE_FILE} is not valid JSON ({err})")
    verified = False
    manifest_path = ckpt / MANIFEST_FILE
    if manifest_path.is_file():
        try:
            files = json.loads(manifest_path.read_text())["files"]
            entries = [(rel, int(e["size"]), str(e["sha256"])) for rel, e in files.items()]
            if any(Path(rel).is_absolute() or ".." in Path(rel).parts for rel, _, _ in entries):
                raise ValueError("a path outside the checkpoint")
            verified = True
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
            problems.append(f"{MANIFEST_FILE} is not valid ({err})")
            entries = []
        for rel, size, sha256 in entries:
            path = ckpt / rel
            if not path.is_file():
                problems.append(f"{rel} is missing")
            elif path.stat().st_size != size:
                problems.append(f"{rel} is {path.stat().st_size} bytes, the manifest says {size}")
            elif file_sha256(path) != sha256:
                problems.append(f"{rel} differs from the manifest (sha256)")
    elif state is not None and state.get("manifest"):
        problems.append(f"{MANIFEST_FILE} is missing (this checkpoint was written with one)")
    if state is not None:
        problems += _rng_problems(ckpt, state, {p.split(" ", 1)[0] for p in problems})
    return problems, verified


def _rng_problems(ckpt: Path, state: dict, reported: set[str]) -> list[str]:
    """Accelerate loads random_states_<process>.pkl (weights_only=True, numpy's reconstructors allow-listed) but
    swallows any failure: the run then goes on with other dropout masks, without a word. Load them here the same way."""
    from accelerate.utils import load

    problems = []
    for rank in range(int(state.get("num_processes") or 1)):
        name = f"random_states_{rank}.pkl"
        if name in reported:
            continue
        path = ckpt / name
        if not path.is_file():
            problems.append(f"{name} is missing")
            continue
        try:
            loaded = load(path)
            if not isinstance(loaded, dict) or "torch_manual_seed" not in loaded:
                raise ValueError("no torch RNG state in it")
        except Exception as err:  # torch.load raises anything from UnpicklingError to RuntimeError on a bad file
            problems.append(f"{name} does not load ({_first_line(err)})")
    return problems


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def pick_checkpoint(found: list[tuple[int, Path]], accelerator) -> Path:
    """The newest checkpoint whose files are intact. Damaged newer ones are named in one warning line each and
    renamed `checkpoint-N.damaged` (never loaded, never rotated: an intact one must not be deleted in their favour);
    with none intact, the error names every damaged file."""
    damaged: list[tuple[Path, list[str]]] = []
    chosen, verified = None, False
    for _, path in reversed(found):
        problems, verified = checkpoint_problems(path)
        if not problems:
            chosen = path
            break
        damaged.append((path, problems))
    if chosen is None:
        details = "; ".join(f"{path.name}: {', '.join(problems)}" for path, problems in damaged)
        raise TrainingError(
            f"--resume: no intact checkpoint in {found[-1][1].parent} ({details}); put the damaged files back from a "
            f"copy, or start afresh with --overwrite-output-dir (or another --output-dir).")
    accelerator.wait_for_everyone()  # every process has chosen before any folder is renamed
    if accelerator.is_main_process:
        for path, problems in damaged:
            aside = path.with_name(f"{path.name}.damaged")
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(path, aside)
            print(f"warning: {path} is damaged ({', '.join(problems)}); resuming from {chosen.name} instead "
                  f"(the damaged one is kept as {aside.name})", file=sys.stderr)
        if not verified:
            print(f"warning: {chosen} has no {MANIFEST_FILE} (written before checkpoints had one): its files cannot "
                  "be verified; loading it as it is", file=sys.stderr)
    accelerator.wait_for_everyone()
    return chosen


def restore_final_folder(folder: Path) -> None:
    """Undo a run killed between the two renames of save_final (folder -> .old-folder, .tmp-folder -> folder).

    A `.old-*` copy exists only during that swap, after the new folder was complete: so with no folder, the new one
    is put in place (or, if it is gone, the old one back)."""
    old, tmp = _aside(folder), temporary_path(folder, random=False)
    if not old.is_dir():
        return
    if not folder.exists():
        source = tmp if tmp.is_dir() else old
        os.replace(source, folder)
        print(f"warning: {folder} was missing (a run was stopped while replacing it); put back from {source.name}",
              file=sys.stderr)
    shutil.rmtree(old, ignore_errors=True)


def _aside(folder: Path) -> Path:
    """Where save_final moves the previous final folder during its swap. A fixed name, so that a run killed between
    the two renames can be completed by the next one; hidden, so no reader of the output folder takes it."""
    return folder.with_name(f".old-{folder.name}")


def check_output_dir(out: Path) -> None:
    """--output-dir must be a folder, or a path where one can be made (the nearest existing parent is a folder)."""
    for path in (out, *out.parents):
        if path.exists():
            if path.is_dir():
                break
            if path == out:
                raise TrainingError(f"--output-dir {out} is a file, not a folder; pass a folder (it is created if "
                                    f"missing), or move the file away.")
            raise TrainingError(f"--output-dir {out} cannot be made: {path} is a file; pass another --output-dir.")
    target = out if out.exists() else path
    if not os.access(target, os.W_OK | os.X_OK):
        raise TrainingError(f"--output-dir {out}: {target} is not writable; pass a folder you can write to.")


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def _free_bytes(path: Path) -> int:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return 0


def write_failure(err: BaseException) -> str | None:
    """'full' for a full disk or quota, 'io' for another failed write, None for anything else (a bug: re-raised)."""
    if isinstance(err, OSError):
        return "full" if err.errno in FULL_DISK else "io"
    if WRITE_FAILED.search(str(err)):
        return "full" if not re.search("file write failed", str(err), re.IGNORECASE) else "io"
    return None


def write_error(what: str, where: Path, err: BaseException, kind: str, needed: int, after: str) -> TrainingError:
    """One line: what could not be written where, how much room it needs and has, and the way out."""
    free = _free_bytes(where)
    if kind == "full" or free < needed:
        cause = (f"the disk is full ({human_size(free)} free on the disk of {where}, about {human_size(needed)} "
                 "needed)")
        fix = (f"free at least {human_size(max(needed - free, 0) + (1 << 20))} there or pass an --output-dir on a "
               "bigger disk")
    else:
        cause = f"{_first_line(err)}; {human_size(free)} free there"
        fix = f"make {where} writable"
    return TrainingError(f"could not write {what} into {where}: {cause}. Nothing half-written was left; {after}; "
                         f"{fix}.")


def comparable_config(config_dict: dict) -> dict:
    """The fields that define the model's parameters and computation (not bookkeeping such as versions)."""
    skip = {"transformers_version", "architectures", "auto_map", "_name_or_path", "dtype", "torch_dtype",
            "output_hidden_states", "output_attentions", "return_dict", "use_cache"}
    # Through JSON, as the checkpoint stored it (id2label's int keys become strings).
    return {k: v for k, v in json.loads(json.dumps(config_dict, default=str)).items() if k not in skip}


def check_resumable(ckpt: Path, config_dict: dict, args: argparse.Namespace) -> dict:
    state_path = ckpt / STATE_FILE
    if not state_path.is_file():
        raise TrainingError(f"{ckpt} is not a complete checkpoint (no {STATE_FILE}); pass a checkpoint-N folder.")
    try:
        state = json.loads(state_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TrainingError(f"--resume {ckpt}: {state_path} is not valid JSON ({err}); pass another checkpoint.") \
            from None
    saved, current = comparable_config(state["config"]), comparable_config(config_dict)
    diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if diff:
        details = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in diff[:8])
        raise TrainingError(
            f"--resume {ckpt}: the checkpoint was made with a different model configuration ({details}). Use the "
            f"same --preset/--config-overrides as that run, or another --output-dir to start afresh.")
    order_diff = [k for k in DATA_ORDER_ARGS if state["args"].get(k) != getattr(args, k, None)]
    if order_diff:
        details = "; ".join(f"--{k.replace('_', '-')}: checkpoint {state['args'].get(k)!r}, now "
                            f"{getattr(args, k, None)!r}" for k in order_diff)
        raise TrainingError(f"--resume {ckpt}: the data order differs ({details}); use the checkpoint's values.")
    return state


# ----------------------------------------------------------------------------------------------------------------
# The task interface each trainer implements
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Task:
    """What differs between the trainers. `prepare(batch, generator)` augments a micro-batch on the CPU (the
    generator is seeded from (seed, step, micro step, process)); `loss(model, batch)` returns its scalar mean loss,
    the batch on the accelerator's device; `evaluate(model, accelerator, final)` returns metrics (the same on every
    process); `finish(folder, model, metrics, final)` saves the tokenizer/processor and returns (card results,
    sample text or None, sample image or None); `final` says whether the metrics are the full final evaluation or
    the last partial one."""

    name: str
    config: Any
    model_class: Any
    train_set: Dataset
    loss: Callable
    evaluate: Callable
    finish: Callable
    card_task: str
    dataset_info: dict
    prepare: Callable | None = None  # (batch, generator) -> batch: random augmentation, on the CPU
    unit: str = "samples"
    metric: str = "loss"  # the eval metric shown in the progress bar
    extra_state: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------------------


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only: biases, norms, gains (gamma/beta of conv) stay undecayed."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class MetricsLog:
    """metrics.jsonl (one JSON object per line) for the loss plot; rewritten on resume to drop lost steps."""

    def __init__(self, path: Path, enabled: bool, resume_step: int | None):
        self.path, self.enabled = path, enabled
        if enabled and resume_step is not None and path.is_file():
            keep = []
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line)["step"] <= resume_step:
                        keep.append(line)
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
            atomic_write_text(path, "".join(line + "\n" for line in keep))
        elif enabled and resume_step is None and path.exists():
            path.unlink()

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def run(task: Task, args: argparse.Namespace, accelerator, start_time: float) -> dict:
    """Train, evaluate, checkpoint; write the final folder. Returns the final metrics."""
    out = Path(args.output_dir)
    check_before_training(args, accelerator, out)
    resume_from, state = find_resume(task, args, accelerator, out / "checkpoints")
    model, optimizer, scheduler = build_training(task, args, accelerator)
    start_step = load_resume(accelerator, scheduler, resume_from, state)
    log = open_logs(args, accelerator, out, start_step, resumed=resume_from is not None)
    metrics = train_loop(task, args, accelerator, model, optimizer, scheduler, start_step, log)
    return finish_run(task, args, accelerator, model, metrics, log, start_time)


def check_before_training(args: argparse.Namespace, accelerator, out: Path) -> None:
    """What can be refused before anything is built: the output folder, the batch arithmetic, the Hub token."""
    check_output_dir(out)
    check_batch_args(args, accelerator.num_processes)
    if args.push_to_hub:
        check_hub_args(args)
    if accelerator.is_main_process:  # even a run refused below puts back a final folder lost mid-swap
        restore_final_folder(out / "model")
    accelerator.wait_for_everyone()


def find_resume(task: Task, args: argparse.Namespace, accelerator, ckpt_root: Path) -> tuple[Path | None, dict | None]:
    """The checkpoint to continue from and its state, checked before anything expensive is built; or (None, None)
    for a fresh run, after clearing an earlier run's checkpoints when --overwrite-output-dir allows it."""
    if not args.resume:
        _clear_earlier_run(args, accelerator, ckpt_root)
        return None, None
    if args.resume == "latest":
        found = list_checkpoints(ckpt_root)
        if not found:
            raise TrainingError(f"--resume: no complete checkpoint in {ckpt_root}; run without --resume first.")
        resume_from = pick_checkpoint(found, accelerator)
    else:
        resume_from = Path(args.resume)
        if not resume_from.is_dir():
            raise TrainingError(f"--resume {resume_from}: no such checkpoint folder.")
        problems, verified = checkpoint_problems(resume_from)
        if problems:  # the one asked for: no silent fallback to another
            raise TrainingError(f"--resume {resume_from} is damaged ({', '.join(problems)}); pass another "
                                f"checkpoint, or --resume alone for the newest intact one.")
        if not verified and accelerator.is_main_process:
            print(f"warning: {resume_from} has no {MANIFEST_FILE} (written before checkpoints had one): its "
                  "files cannot be verified; loading it as it is", file=sys.stderr)
    state = check_resumable(resume_from, task.config.to_dict(), args)
    foreign = sorted(path.name for path in resume_from.glob("custom_checkpoint_*"))
    if foreign:  # Accelerate would refuse them anyway (nothing is registered); say why, and never load them
        raise TrainingError(
            f"--resume {resume_from}: it holds {', '.join(foreign)}, pickles that this trainer never writes and "
            f"never loads (they could run code). Delete them to resume (an older run's scheduler state is "
            f"recomputed from the step).")
    if state["step"] >= args.max_steps:
        raise TrainingError(f"--resume {resume_from}: it is at step {state['step']}, not before --max-steps "
                            f"{args.max_steps}; raise --max-steps to train on.")
    return resume_from, state


def _clear_earlier_run(args: argparse.Namespace, accelerator, ckpt_root: Path) -> None:
    """A fresh run in an --output-dir with checkpoints: refused, or (--overwrite-output-dir) they and the logs go."""
    earlier = list_checkpoints(ckpt_root)
    if not earlier:
        return
    out = ckpt_root.parent
    if not args.overwrite_output_dir:
        raise TrainingError(
            f"{out} holds checkpoints of an earlier run ({earlier[-1][1].name}); pass --resume to continue it, "
            f"--overwrite-output-dir to start afresh there, or another --output-dir.")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(ckpt_root)
        shutil.rmtree(out / "logs", ignore_errors=True)
    accelerator.wait_for_everyone()


def build_training(task: Task, args: argparse.Namespace, accelerator):
    """The model (the same initial weights on every process), AdamW and the cosine schedule; model and optimizer
    prepared by Accelerate."""
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    set_seed(args.seed)
    model = task.model_class(task.config)
    optimizer = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.learning_rate,
                                  betas=(0.9, args.adam_beta2), eps=1e-8)
    scheduler = get_cosine_schedule_with_warmup(optimizer, args.warmup_steps, args.max_steps)
    if args.min_lr_ratio > 0:
        floor = args.min_lr_ratio
        base = scheduler.lr_lambdas[0]
        scheduler.lr_lambdas = [lambda s, base=base: floor + (1 - floor) * base(s)] * len(optimizer.param_groups)
    model, optimizer = accelerator.prepare(model, optimizer)
    # The scheduler is neither prepared (that would step it once per process) nor registered for checkpointing:
    # Accelerate saves registered objects as pickles and loads them with weights_only=False, so a shared checkpoint
    # could run code on --resume. Its learning rate is a pure function of the step, so a resumed run steps a fresh
    # one to the checkpoint's step instead (and a `custom_checkpoint_*.pkl` in a checkpoint is never read).
    return model, optimizer, scheduler


def load_resume(accelerator, scheduler, resume_from: Path | None, state: dict | None) -> int:
    """Load the checkpoint's training state (model, optimizer, every process's RNG) and step the scheduler to its
    step; returns the step to start at (0 for a fresh run)."""
    if resume_from is None:
        return 0
    try:
        accelerator.load_state(str(resume_from))
    except Exception as err:  # what its manifest could not vouch for (an old checkpoint); name it, no traceback
        raise TrainingError(f"--resume {resume_from} does not load ({_first_line(err)}); pass another "
                            "checkpoint-N folder of this run.") from None
    start_step = state["step"]
    with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": intended here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(start_step):
            scheduler.step()
    accelerator.print(f"resumed from {resume_from} at step {start_step}")
    return start_step


def open_logs(args: argparse.Namespace, accelerator, out: Path, start_step: int, resumed: bool) -> MetricsLog:
    """The output folder, metrics.jsonl (cut back to the checkpoint's step on resume) and TensorBoard."""
    main = accelerator.is_main_process
    if main:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise TrainingError(f"--output-dir {out} cannot be made ({_first_line(err)}); pass another one.") from None
    log = MetricsLog(out / "metrics.jsonl", main, start_step if resumed else None)
    if not args.no_tensorboard:
        try:
            accelerator.init_trackers("tensorboard", config=_hparams(args),
                                      init_kwargs={"tensorboard": {"purge_step": start_step}})
        except Exception as err:  # a tracker is a convenience; training goes on without it
            accelerator.print(f"warning: no TensorBoard logs ({err})")
    return log


def train_loop(task: Task, args: argparse.Namespace, accelerator, model, optimizer, scheduler, start_step: int,
               log: MetricsLog) -> dict:
    """Optimizer steps start_step .. --max-steps - 1, logging, evaluating and checkpointing on their schedules.
    Returns the metrics of the last evaluation."""
    from tqdm.auto import tqdm

    out = Path(args.output_dir)
    sampler = StepBatchSampler(len(task.train_set), args.batch_size, args.grad_accum, accelerator.num_processes,
                               accelerator.process_index, args.seed, start_step, args.max_steps)
    # The loader's own generator: creating its iterator must not draw from the global RNG, which the checkpoint
    # restores (a resumed run would otherwise get other dropout masks than the uninterrupted one).
    loader = DataLoader(task.train_set, batch_sampler=sampler, num_workers=args.num_workers,
                        generator=torch.Generator().manual_seed(args.seed))
    batches = iter(loader)
    params = [p for p in model.parameters() if p.requires_grad]
    bar = tqdm(total=args.max_steps, initial=start_step, disable=not accelerator.is_main_process or args.no_progress,
               unit="step", dynamic_ncols=True)
    window, metrics = _LossWindow(), {}
    for step in range(start_step, args.max_steps):
        step_loss, grad_norm = optimizer_step(task, args, accelerator, model, optimizer, params, batches, step)
        scheduler.step()
        done = step + 1
        window.add(accelerator.reduce(step_loss, "mean").item())
        bar.update(1)
        if _due(done, args.log_every, args.max_steps):
            record = window.record(done, scheduler.get_last_lr()[0], grad_norm)
            accelerator.log({k: v for k, v in record.items() if k != "step"}, step=done)
            log.write(record)
            bar.set_postfix(loss=f"{record['train/loss']:.4f}", refresh=False)
        if _due(done, args.eval_every, args.max_steps):
            metrics = task.evaluate(model, accelerator, final=False)
            record = {"step": done, **{f"eval/{k}": v for k, v in metrics.items()}}
            accelerator.log({k: v for k, v in record.items() if k != "step"}, step=done)
            log.write(record)
            bar.write(f"step {done}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
            if accelerator.is_main_process:  # the curves so far, to look at during a long run
                _plot_quietly(out / "metrics.jsonl", out / "loss_curves.png", f"{args.preset} ({task.name})")
        if _due(done, args.save_every, args.max_steps):
            save_checkpoint(accelerator, out / "checkpoints", done, task.config.to_dict(), args, args.keep_last)
    bar.close()
    accelerator.wait_for_everyone()
    return metrics


def optimizer_step(task: Task, args: argparse.Namespace, accelerator, model, optimizer, params: list, batches,
                   step: int) -> tuple[torch.Tensor, Any]:
    """One optimizer step over --grad-accum micro-batches. Returns this process's mean loss and the gradient norm
    (None without clipping)."""
    from accelerate.utils import send_to_device

    model.train()
    step_loss = torch.zeros((), device=accelerator.device)
    grad_norm = None
    for a in range(args.grad_accum):
        batch = next(batches)
        if task.prepare is not None:
            batch = task.prepare(batch, step_generator(args.seed, step, a, accelerator.process_index))
        batch = send_to_device(batch, accelerator.device)
        # Accelerate's accumulation: no gradient sync before the last micro-batch, the loss divided by the
        # number of micro-batches, the (prepared) optimizer stepping only on the last; DeepSpeed does its own.
        with accelerator.accumulate(model):
            loss = task.loss(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the loss is {loss.item()} at step {step}; lower --learning-rate "
                                         f"(now {args.learning_rate}) or use --mixed-precision no.")
            accelerator.backward(loss)
            if accelerator.sync_gradients and args.max_grad_norm and args.max_grad_norm > 0:
                grad_norm = accelerator.clip_grad_norm_(params, args.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        step_loss += loss.detach() / args.grad_accum
    if not accelerator.sync_gradients:
        raise RuntimeError(f"accumulation out of step at step {step}: the optimizer did not step.")
    return step_loss, grad_norm


def _due(done: int, every: int, max_steps: int) -> bool:
    """Logging, evaluation and checkpoints happen every N steps and at the last one."""
    return done % every == 0 or done == max_steps


class _LossWindow:
    """The training loss averaged over the steps since the last log line, and their speed."""

    def __init__(self):
        self.total, self.count, self.since = 0.0, 0, time.perf_counter()

    def add(self, loss: float) -> None:
        self.total += loss
        self.count += 1

    def record(self, done: int, lr: float, grad_norm) -> dict:
        now = time.perf_counter()
        record = {"step": done, "train/loss": self.total / self.count, "train/lr": lr,
                  "train/steps_per_s": self.count / max(now - self.since, 1e-9)}
        if grad_norm is not None:
            record["train/grad_norm"] = float(grad_norm)
        self.total, self.count, self.since = 0.0, 0, now
        return record


def finish_run(task: Task, args: argparse.Namespace, accelerator, model, metrics: dict, log: MetricsLog,
               start_time: float) -> dict:
    """The final evaluation (unless --skip-final-eval), the final folder, and --push-to-hub. Returns the metrics the
    card reports."""
    out = Path(args.output_dir)
    if args.skip_final_eval:  # the card then reports the last (partial) validation evaluation, and says so
        final_metrics, final = metrics, False
    else:
        final_metrics, final = task.evaluate(model, accelerator, final=True), True
        log.write({"step": args.max_steps, **{f"test/{k}": v for k, v in final_metrics.items()}})
    elapsed = time.perf_counter() - start_time
    save_final(accelerator, model, task, args, out / "model", final_metrics, final, elapsed)
    if args.push_to_hub and accelerator.is_main_process:
        push_final(args, out / "model", final_metrics)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return final_metrics


def push_final(args: argparse.Namespace, folder: Path, final_metrics: dict) -> None:
    from .publish import PublishError, publish, report

    summary = ", ".join(f"{k} {v:.4f}" for k, v in final_metrics.items() if isinstance(v, float))
    try:
        result = publish(folder, args.push_to_hub, private=args.hub_private, revision=args.hub_revision,
                         commit_message=f"{args.preset}: {args.max_steps} steps; {summary}")
    except PublishError as err:  # the run itself is saved: say how to publish it without training again
        raise TrainingError(f"--push-to-hub: {err}. The model is saved in {folder}; publish it with "
                            f"python -m training.publish {folder} {args.push_to_hub}") from None
    print(report(result))


def _hparams(args: argparse.Namespace) -> dict:
    """TensorBoard's hparams accept only scalars and strings."""
    return {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in sorted(vars(args).items())}


def check_hub_args(args: argparse.Namespace) -> None:
    """--push-to-hub fails before training, not after it: a valid repo id, and a token that the Hub (HF_ENDPOINT)
    accepts and that may write to the repo's namespace."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from .publish import PublishError, check_token

    try:
        validate_repo_id(args.push_to_hub)
    except HFValidationError as err:
        raise TrainingError(f"--push-to-hub {args.push_to_hub!r} is not a repo id ('org/name'): {err}") from None
    if get_token() is None:
        raise TrainingError("--push-to-hub: no Hub token; set HF_TOKEN or log in with `hf auth login` first.")
    try:
        check_token(args.push_to_hub)
    except (PublishError, ValueError) as err:
        raise TrainingError(f"--push-to-hub {args.push_to_hub}: {err}") from None


def save_checkpoint(accelerator, root: Path, step: int, config_dict: dict, args: argparse.Namespace,
                    keep_last: int) -> Path:
    """accelerator.save_state into `.tmp-checkpoint-N`, then the state file, then the manifest, then one rename;
    then rotation. A failed write (a full disk) removes the temporary folder and is one TrainingError; the earlier
    checkpoints are untouched."""
    final = root / f"checkpoint-{step}"
    tmp = temporary_path(final, random=False)  # every process writes into it: one name they all know
    previous = list_checkpoints(root)
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            state = {"step": step, "config": config_dict, "args": {k: v for k, v in vars(args).items()},
                     "num_processes": accelerator.num_processes, "manifest": True}
            write_json_atomic(tmp / STATE_FILE, state)
            write_manifest(tmp)
    except Exception as err:
        kind = write_failure(err)
        if kind is None:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        written = _folder_bytes(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        needed = max(_folder_bytes(previous[-1][1]) if previous else 0, written)
        after = (f"{previous[-1][1]} is intact: --resume continues from it" if previous else
                 "no checkpoint of this run was kept yet")
        raise write_error(f"checkpoint-{step}", root, err, kind, needed, after) from None
    if accelerator.is_main_process:
        if final.exists():  # the same step saved again (e.g. a resumed run that ends where it started)
            shutil.rmtree(final)
        os.replace(tmp, final)
        for _, old in list_checkpoints(root)[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def save_final(accelerator, model, task: Task, args: argparse.Namespace, folder: Path, metrics: dict, final: bool,
               elapsed: float) -> None:
    """The Hugging Face folder: weights, config + code, tokenizer/processor, card, loss curves. Atomic."""
    tmp = temporary_path(folder, random=False)  # fixed: the next run's restore_final_folder must find it
    state_dict = accelerator.get_state_dict(model)  # every process takes part (FSDP/DeepSpeed gather)
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        try:
            _write_final(accelerator, unwrapped, state_dict, task, args, tmp, metrics, final, elapsed)
        except Exception as err:
            kind = write_failure(err)
            written = _folder_bytes(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            if kind is None:
                raise
            checkpoints = list_checkpoints(Path(args.output_dir) / "checkpoints")
            after = (f"{folder} is unchanged and {checkpoints[-1][1]} holds the trained weights (python -m "
                     f"conversion.checkpoint_to_hf {checkpoints[-1][1]} {folder} --overwrite makes the folder from it)"
                     if checkpoints else f"{folder} is unchanged")
            raise write_error(folder.name, folder.parent, err, kind, max(written, _folder_bytes(folder)), after) \
                from None
        plain_modes(tmp)  # save_pretrained writes model.safetensors 0600: the shipped folder must be readable
        # Two renames: a run killed between them has `.old-model` and `.tmp-model` but no `model`, which the next
        # run's restore_final_folder completes.
        if folder.exists():
            old = _aside(folder)
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
        print(f"saved {folder}")
    accelerator.wait_for_everyone()


def _write_final(accelerator, unwrapped, state_dict, task: Task, args: argparse.Namespace, tmp: Path, metrics: dict,
                 final: bool, elapsed: float) -> None:
    """Everything of the final folder, into `tmp`."""
    from .model_card import write_model_card

    shutil.rmtree(tmp, ignore_errors=True)
    unwrapped.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
    results, sample_text, sample_image = task.finish(tmp, unwrapped, metrics, final)
    _plot_quietly(Path(args.output_dir) / "metrics.jsonl", tmp / "loss_curves.png", f"{args.preset} ({task.name})")
    training = {
        "preset": args.preset, "steps": args.max_steps, "batch_size": args.batch_size,
        "learning_rate": args.learning_rate, "weight_decay": args.weight_decay,
        "warmup_steps": args.warmup_steps, "seconds": round(elapsed, 1), "hardware": _hardware(accelerator),
        "mixed_precision": accelerator.mixed_precision, "num_processes": accelerator.num_processes,
        "command": "python -m " + " ".join([f"training.train_{task.name}"] + sys.argv[1:]),
        "tokens_or_images": f"{args.max_steps * args.batch_size * task.extra_state.get('units_per_item', 1):,}"
                            f" {task.unit}",
    }
    model_facts = {"model_type": unwrapped.config.model_type, "class": type(unwrapped).__name__,
                   "parameters": sum(p.numel() for p in unwrapped.parameters())}
    write_json_atomic(tmp / "results.json", {"metrics": metrics, "final_evaluation": final,
                                             "training": training, "model": model_facts})
    if not is_baseline(unwrapped.config):  # a baseline's numbers go into its AFT's card (training.ship)
        write_model_card(tmp, task=task.card_task, config=unwrapped.config, results=results,
                         dataset=task.dataset_info, training=training, sample=sample_text,
                         sample_image=sample_image, repo_id=args.push_to_hub)


_PLOT_WARNINGS: set[str] = set()


def _plot_quietly(metrics_path: Path, png_path: Path, title: str) -> None:
    """A missing plot must not end a run: no loss logged yet, or no matplotlib (the `train` extra left out)."""
    from .plots import plot_loss_curves

    if metrics_path.is_file():
        try:
            plot_loss_curves(metrics_path, png_path, title=title)
        except ImportError as err:
            message = (f"warning: no loss plot: {err}; install matplotlib (pip install -e '.[train]') for "
                       "loss_curves.png. Training goes on.")
            if message not in _PLOT_WARNINGS:  # once per run, not at every evaluation
                _PLOT_WARNINGS.add(message)
                print(message, file=sys.stderr)
        except ValueError as err:
            print(f"warning: no loss plot ({err})", file=sys.stderr)


def _hardware(accelerator) -> str:
    if accelerator.device.type == "cuda":
        return f"{accelerator.num_processes} x {torch.cuda.get_device_name(accelerator.device)}"
    return f"{accelerator.num_processes} process(es) on CPU ({os.cpu_count()} cores)"


def make_accelerator(args: argparse.Namespace):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true") and not torch.accelerator.is_available():
        # Accelerate 1.15 raises "There are currently no available devices found" on CPU processes, or, with the
        # config's device-only options turned off, trains plain DDP under the FSDP name: neither is what was asked.
        raise TrainingError(
            "FSDP (training/accelerate_configs/fsdp.yaml) needs GPUs: Accelerate refuses it on CPU processes. On CPU "
            "launch DDP over gloo instead: ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes N "
            "-m training.train_...")
    project = ProjectConfiguration(project_dir=args.output_dir, logging_dir=str(Path(args.output_dir) / "logs"))
    log_with = None if args.no_tensorboard else "tensorboard"
    return Accelerator(mixed_precision=args.mixed_precision, gradient_accumulation_steps=args.grad_accum,
                       log_with=log_with, project_config=project)


def cli(task_name: str, parser: argparse.ArgumentParser, make_task: Callable, report: Callable,
        argv: list[str] | None) -> dict:
    """What each trainer's main does: parse (preset defaults), build the task, train; `report(metrics, args)` prints
    the final numbers on the main process when a final evaluation ran."""
    start = time.perf_counter()
    args = parse_args(parser, task_name, argv)

    def go():
        check_output_dir(Path(args.output_dir))  # before the data is read: that can take minutes
        task = with_baseline(make_task(args), args.baseline)
        accelerator = make_accelerator(args)
        metrics = run(task, args, accelerator, start)
        if accelerator.is_main_process and report(metrics, args):
            print(f"{time.perf_counter() - start:.1f} s in all")
        return metrics

    return main_guard(go)


def main_guard(fn: Callable[[], Any]) -> Any:
    """Turn TrainingError (and a full disk met anywhere, e.g. by the metrics log) into a one-line message and exit
    status 2, as argparse does."""
    from training.data_images import UnreadableImageError  # here: the text trainer need not import PIL's loaders

    try:
        return fn()
    except TrainingError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except UnreadableImageError as err:  # a file damaged after the check at open, met by a batch mid-run
        print(f"error: {err} The last checkpoint is intact: continue with --resume.", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as err:
        if err.errno not in FULL_DISK:
            raise
        where = Path(err.filename) if err.filename else Path.cwd()
        free = human_size(_free_bytes(where))
        print(f"error: the disk is full: writing {where} failed ({free} free there); free space there or pass an "
              "--output-dir on a bigger disk, then continue with --resume.", file=sys.stderr)
        raise SystemExit(2) from None


def sharded_batches(num_items: int, batch_size: int, accelerator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Evaluation batches of this process: items rank, rank + P, ... in batches, every process running the same
    number of batches (FSDP and DeepSpeed need each forward on every process); the padding items are repeats of item
    0 with weight 0."""
    procs = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    mine = torch.arange(rank, num_items, procs)
    per_process = math.ceil(num_items / procs)
    count = math.ceil(per_process / batch_size)
    for b in range(count):
        idx = mine[b * batch_size:(b + 1) * batch_size]
        weight = torch.ones(batch_size)
        if len(idx) < batch_size:
            weight[len(idx):] = 0
            idx = torch.cat([idx, torch.zeros(batch_size - len(idx), dtype=torch.long)])
        yield idx, weight


def reduce_sums(values: list[float], accelerator) -> list[float]:
    """Sums over processes (float64 on the device)."""
    t = torch.tensor(values, dtype=torch.float64, device=accelerator.device if accelerator else "cpu")
    if accelerator is not None and accelerator.num_processes > 1:
        t = accelerator.reduce(t, "sum")
    return t.tolist()
