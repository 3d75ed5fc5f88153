# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""EleutherAI's lm-evaluation-harness on AFT folders, offline, with the project's own tasks
(training/lm_eval_tasks/), and its results into a model card's model-index.

    python -m training.eval_harness make-data                 # (re)write the tasks' jsonl from the Wikipedia test split
    python -m training.eval_harness run FOLDER [--tasks aft_wikipedia_bpb,aft_wikipedia_continuation] [--limit N]
        [--batch-size 8] [--max-length N] [--output results.json] [--write-card]
    python -m training.eval_harness card FOLDER results.json   # lm-eval's results into FOLDER/README.md's model-index

`run` is the recipe

    lm_eval --model hf --model_args pretrained=FOLDER,trust_remote_code=True,max_length=N \\
        --tasks aft_wikipedia_bpb --include_path training/lm_eval_tasks --batch_size 8

with N chosen for the variant. HFLM takes the first of n_positions, max_position_embeddings, n_ctx in the config as the
longest input. That is right for AFT-full and AFT-local (position-bias tables of max_position_embeddings rows) and
for any model with position embeddings, but AFT-simple and AFT-conv read any length: their config still holds
max_position_embeddings (unused), so HFLM would cut their documents into windows they do not need. For them N is
NO_LIMIT_LENGTH, so each document is read whole (pass a number, not "auto", as the batch size: HFLM's batch-size probe
allocates a (batch, N) tensor).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
from pathlib import Path

from training.atomic import atomic_file, atomic_write_text

TASKS_DIR = Path(__file__).resolve().parent / "lm_eval_tasks"
DATA_DIR = TASKS_DIR / "data"
DEFAULT_TASKS = ("aft_wikipedia_bpb", "aft_wikipedia_continuation")
# "No limit" as one number HFLM can use: documents up to a million bytes are read in one window.
NO_LIMIT_LENGTH = 2**20
CONTINUATION_ITEMS = 200
CONTEXT_CHARS = 120  # the opening the model reads (title included), cut at a space
CONTINUATION_WORDS = 6
SOURCE_NAME = "lm-evaluation-harness"


# ------------------------------------------------------------------------------------------------------------------
# The tasks' data
# ------------------------------------------------------------------------------------------------------------------


def wikipedia_test_articles() -> list[str]:
    """The test split's articles as training.data_text builds them ("title\\n\\nextract", sorted by title, the same
    title hash and fractions as load_text's defaults): load_text joins exactly these with blank lines."""
    from training import data_text

    articles = data_text._read_wikipedia(data_text.wikipedia_json_path())
    valid, test = 0.05, 0.05  # load_text's defaults
    return [data_text._format_article(title, articles[title]) for title in sorted(articles)
            if valid <= data_text._title_fraction(title) < valid + test]


def continuation_items(articles: list[str], count: int = CONTINUATION_ITEMS, seed: int = 0) -> list[dict]:
    """Multiple-choice items: an article's opening, its next CONTINUATION_WORDS words, and the words at the same
    place in three other articles."""
    cuts = []
    for text in articles:
        space = text.find(" ", CONTEXT_CHARS)
        words = text[space:].split(" ") if space > 0 else []
        if len(words) > CONTINUATION_WORDS + 1 and "\n" not in " ".join(words[: CONTINUATION_WORDS + 1]):
            cuts.append((text[:space], " ".join(words[: CONTINUATION_WORDS + 1])))  # words[0] == "": a leading space
    rng = random.Random(seed)
    items = []
    for index, (context, truth) in enumerate(cuts[:count]):
        others = [cuts[i][1] for i in rng.sample([i for i in range(len(cuts)) if i != index], 3)]
        label = rng.randrange(4)
        choices = others[:label] + [truth] + others[label:]
        items.append({"context": context, "choices": choices, "label": label})
    return items


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Temporary name, then rename: a task never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "w") as file:
        for row in rows:
            file.write(json.dumps(row, ensure_ascii=False) + "\n")


def make_data(out: Path = DATA_DIR) -> dict[str, int]:
    articles = wikipedia_test_articles()
    items = continuation_items(articles)
    write_jsonl(out / "wikipedia_test.jsonl", [{"text": text} for text in articles])
    write_jsonl(out / "wikipedia_continuations.jsonl", items)
    return {"articles": len(articles), "continuation_items": len(items)}


# ------------------------------------------------------------------------------------------------------------------
# Running the harness
# ------------------------------------------------------------------------------------------------------------------


def harness_max_length(config) -> int:
    """The longest input to report to HFLM: the position limit of full/local (or of position embeddings), else none."""
    from training.finetune import position_limit

    limit = position_limit(config)
    return NO_LIMIT_LENGTH if limit is None else int(limit)


def model_args(folder: Path, max_length: int | None = None) -> str:
    import importlib

    from transformers import AutoConfig

    importlib.import_module("modeling_aft")  # registers "aft": a folder without auto_map loads too
    length = max_length or harness_max_length(AutoConfig.from_pretrained(folder))
    return f"pretrained={folder},trust_remote_code=True,max_length={length}"


def run(folder: Path, tasks: list[str], limit: int | None = None, batch_size: int = 8,
        max_length: int | None = None, metadata: dict | None = None) -> dict:
    """lm_eval.simple_evaluate on FOLDER with the project's tasks; returns lm-eval's results dictionary."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no config.json; pass a model folder written by save_pretrained.")
    if max_length is not None and max_length < 1:
        raise ValueError(f"--max-length={max_length} must be at least 1 (or leave it out for the variant's).")
    manager = TaskManager(include_path=str(TASKS_DIR))
    unknown = [task for task in tasks if task not in manager.all_tasks]
    if unknown:
        raise ValueError(f"unknown lm-eval task(s) {unknown}; the project's are {list(DEFAULT_TASKS)}.")
    output = simple_evaluate(model="hf", model_args=model_args(folder, max_length), tasks=tasks, limit=limit,
                             batch_size=batch_size, task_manager=manager, metadata=metadata, device="cpu",
                             log_samples=False)
    return {"results": output["results"], "configs": {name: {"max_length": harness_max_length_used(output)}
                                                    for name in output["results"]},
            "limit": limit, "model_args": output["config"]["model_args"]}


def harness_max_length_used(output: dict) -> int | None:
    for part in str(output["config"]["model_args"]).split(","):
        if part.startswith("max_length="):
            return int(part.split("=", 1)[1])
    return None


# ------------------------------------------------------------------------------------------------------------------
# Into the model card
# ------------------------------------------------------------------------------------------------------------------

METRIC_NAMES = {"bits_per_byte": "Bits per byte (lm-eval)", "byte_perplexity": "Byte perplexity (lm-eval)",
                "word_perplexity": "Word perplexity (lm-eval)", "acc": "Accuracy (lm-eval)",
                "acc_norm": "Accuracy, length-normalised (lm-eval)"}


def card_entries(results: dict) -> list:
    """One EvalResult per (task, metric) of lm-eval's results; stderr entries are skipped."""
    from huggingface_hub import EvalResult

    entries = []
    for task, metrics in sorted(results["results"].items()):
        for key, value in sorted(metrics.items()):
            metric, _, _filter = key.partition(",")
            if metric not in METRIC_NAMES or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            entries.append(EvalResult(
                task_type="text-generation", dataset_type=task, dataset_name=f"{task} (training/lm_eval_tasks)",
                dataset_split="test", metric_type=metric, metric_value=float(value), metric_name=METRIC_NAMES[metric],
                metric_args={"max_length": results["configs"].get(task, {}).get("max_length"),
                             "limit": results.get("limit")},
                source_name=SOURCE_NAME, source_url="https://github.com/EleutherAI/lm-evaluation-harness",
            ))
    return entries


def write_card_results(folder: Path, results: dict) -> int:
    """Merge the results into FOLDER/README.md's model-index: an entry of the same task and metric is replaced, the
    card's own entries (the trainer's bpc) are kept. Returns how many entries were written."""
    from huggingface_hub import ModelCard

    path = folder / "README.md"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; write the card first (training.model_card / training.ship).")
    card = ModelCard.load(path)
    new = card_entries(results)
    if not new:
        raise ValueError("the results hold no metric for the card (bits_per_byte, byte/word perplexity, acc).")
    replaced = {(e.dataset_type, e.metric_type) for e in new}
    kept = [e for e in card.data.eval_results or [] if (e.dataset_type, e.metric_type) not in replaced]
    card.data.eval_results = kept + new
    if not card.data.model_name:
        card.data.model_name = folder.resolve().name
    atomic_write_text(path, str(card))
    return len(new)


# ------------------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("make-data", help="write the tasks' jsonl from the Wikipedia test split")
    data.add_argument("--out", type=Path, default=DATA_DIR)
    runner = commands.add_parser("run", help="run lm-eval's HFLM on a folder with the project's tasks")
    runner.add_argument("folder", type=Path)
    runner.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    runner.add_argument("--limit", type=int, default=None, help="the first N documents of each task")
    runner.add_argument("--batch-size", type=int, default=8)
    runner.add_argument("--max-length", type=int, default=None, help="override the variant's length limit")
    runner.add_argument("--output", type=Path, default=None, help="write the results JSON here")
    runner.add_argument("--write-card", action="store_true", help="also merge them into FOLDER/README.md")
    card = commands.add_parser("card", help="merge a results JSON into FOLDER/README.md's model-index")
    card.add_argument("folder", type=Path)
    card.add_argument("results", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # the tasks' data is local; nothing is downloaded
    try:
        if args.command == "make-data":
            print(json.dumps(make_data(args.out)))
        elif args.command == "run":
            if args.limit is not None and args.limit < 1:
                raise ValueError(f"--limit={args.limit} must be at least 1 (or leave it out for all documents).")
            results = run(args.folder, [t.strip() for t in args.tasks.split(",") if t.strip()], args.limit,
                          args.batch_size, args.max_length)
            print(json.dumps(results["results"], indent=2))
            if args.output:
                args.output.parent.mkdir(parents=True, exist_ok=True)
                args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
            if args.write_card:
                print(f"wrote {write_card_results(args.folder, results)} lm-eval results into {args.folder}/README.md")
        else:
            if not args.results.is_file():
                raise FileNotFoundError(f"{args.results} does not exist; write it with `run ... --output FILE`.")
            results = json.loads(args.results.read_text(encoding="utf-8"))
            print(f"wrote {write_card_results(args.folder, results)} lm-eval results into {args.folder}/README.md")
    except (ValueError, OSError, KeyError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
