# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Publish the Gradio demo to a Hugging Face Space, as one commit.

    python -m demo.publish my-org/aft-demo                  # `make publish-app SPACE=my-org/aft-demo`
    python -m demo.publish my-org/aft-demo --private --dry-run

The Space gets a self-contained copy: app.py, README.md (the Space card: sdk gradio) and requirements.txt from demo/;
the three checkpoints of pretrained/ under models/<name>/ (weights, config, card and the modeling code that
trust_remote_code=True runs), which app.py finds next to itself; and the few project modules app.py imports to draw
with the pixel LM (training/train_pixels.py and what it imports, modeling_aft/), so that the Space draws with the same
sampler as the trainer. To serve models from Hub repos instead, set the Space variables AFT_TEXT_MODEL,
AFT_IMAGE_MODEL and AFT_PIXEL_MODEL to their repo ids (the folders uploaded here are then unused).

The token comes from HF_TOKEN or the saved login (`hf auth login`) and is never printed; a file holding it is
refused. HF_ENDPOINT or --endpoint selects another Hub; one without Xet storage also needs HF_HUB_DISABLE_XET=1.
Errors are one line `error: ...` and exit status 2.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, get_token
from huggingface_hub.utils import validate_repo_id

from training.publish import (
    PublishError,
    UploadFile,
    check_folder,
    collect_files,
    hub_step,
    human_size,
    redact,
    refuse_token_in_files,
    resolve_endpoint,
    token_owner,
)

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
SPACE_FILES = ("app.py", "README.md", "requirements.txt")
MODELS = ("aft-local-wikipedia", "aft-conv-fashion-mnist", "aft-local-fashion-mnist-pixels")
# app.py imports the pixel sampler from here; what it imports in turn is found by reading the sources (the trainers'
# imports change as the project grows; tests/test_app.py runs the uploaded Space with the checkout out of reach).
ENTRY_MODULE = "training.train_pixels"


def training_modules(entry: str = ENTRY_MODULE) -> list[Path]:
    """The files of `training` that importing `entry` can load: its package's __init__ and every training module
    named by an import statement, followed from file to file (imports inside functions too: a superset is harmless,
    a missing module would break the Space). modeling_aft goes up whole."""
    seen: dict[str, Path] = {}
    todo = ["training", entry]
    while todo:
        name = todo.pop()
        if name in seen or name.split(".")[0] != "training":
            continue
        module_file = f"{name.replace('.', '/')}.py"
        path = REPO_ROOT / "training" / "__init__.py" if name == "training" else REPO_ROOT / module_file
        if not path.is_file():
            continue  # a name imported from a module (`from training.x import y`), not a module itself
        seen[name] = path
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                # training/ is flat, so a relative import (level 1) is always relative to the package itself
                base = (f"training.{node.module}" if node.module else "training") if node.level else node.module or ""
                todo.append(base)
                todo += [f"{base}.{alias.name}" for alias in node.names]
    return sorted(seen.values())


def space_files(pretrained: Path = REPO_ROOT / "pretrained") -> list[UploadFile]:
    """Every file of the Space, as (path in the Space, local file, size), in upload order."""
    files = [UploadFile(name, HERE / name, (HERE / name).stat().st_size) for name in SPACE_FILES]
    code = training_modules() + sorted((REPO_ROOT / "modeling_aft").glob("*.py"))
    files += [UploadFile(path.relative_to(REPO_ROOT).as_posix(), path, path.stat().st_size) for path in code]
    for name in MODELS:
        folder = pretrained / name
        check_folder(folder)
        files += [UploadFile(f"models/{name}/{item.path_in_repo}", item.local, item.size)
                  for item in collect_files(folder)]
    return files


def publish_space(space_id: str, *, private: bool = False, endpoint: str | None = None, dry_run: bool = False,
                  pretrained: Path = REPO_ROOT / "pretrained", commit_message: str | None = None) -> dict:
    """Upload the demo to the Space `space_id` (created with sdk gradio if missing) and return what happened:
    `{"space_id", "url", "endpoint", "private", "commit_oid", "commit_url", "dry_run", "files": [(path, size)]}`."""
    validate_repo_id(space_id)
    endpoint = resolve_endpoint(endpoint)
    files = space_files(pretrained)
    token = get_token()
    refuse_token_in_files(files, token)
    result = dict(space_id=space_id, url=None, endpoint=endpoint, private=private, commit_oid=None, commit_url=None,
                  dry_run=dry_run, files=[(item.path_in_repo, item.size) for item in files])
    if dry_run:
        return result
    if not token:
        raise PublishError("no Hub token found; set HF_TOKEN or log in with `hf auth login` (a write token).")
    api = HfApi(endpoint=endpoint, token=token)
    owner = token_owner(api, token)
    if "/" not in space_id:  # `name` means `owner/name`, as on the Hub
        space_id = f"{owner}/{space_id}"
    url = hub_step(f"creating the Space {space_id}", token, api.create_repo, space_id, repo_type="space",
                   space_sdk="gradio", private=private, exist_ok=True)
    info = hub_step(f"reading the Space {space_id}", token, api.space_info, space_id)
    if private and not info.private:
        raise PublishError(f"the Space {space_id} already exists and is public, but --private was asked for; make "
                           "it private on the Hub first or publish under another name.")
    operations = [CommitOperationAdd(item.path_in_repo, str(item.local)) for item in files]
    commit = hub_step(f"committing to the Space {space_id}", token, api.create_commit, space_id, operations,
                      repo_type="space", commit_message=commit_message or "Upload the AFT demo with demo.publish")
    result.update(space_id=space_id, url=str(url), private=bool(info.private), commit_oid=commit.oid,
                  commit_url=commit.commit_url)
    return result


def report(result: dict) -> str:
    total = sum(size for _, size in result["files"])
    verb = "would upload" if result["dry_run"] else "uploaded"
    lines = [f"{verb} {len(result['files'])} files ({human_size(total)}) to the Space {result['space_id']} at "
             f"{result['endpoint']}:"]
    lines += [f"  {human_size(size):>10}  {path}" for path, size in result["files"]]
    if not result["dry_run"]:
        visibility = "private" if result["private"] else "public"
        lines.append(f"commit {result['commit_oid']} ({visibility} Space): {result['url']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demo.publish", description=__doc__.split("\n\n")[0],
                                epilog="The token comes from HF_TOKEN or `hf auth login`; there is no --token option.")
    p.add_argument("space_id", metavar="SPACE_REPO_ID", help="namespace/name of the Space (name alone: yours)")
    p.add_argument("--private", action="store_true", help="create the Space private")
    p.add_argument("--endpoint", metavar="URL", help="the Hub's URL (default: HF_ENDPOINT, else huggingface.co)")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded; contact nothing")
    p.add_argument("--commit-message", metavar="MSG", help="the commit's summary")
    args = p.parse_args(argv)
    try:
        result = publish_space(args.space_id, private=args.private, endpoint=args.endpoint, dry_run=args.dry_run,
                               commit_message=args.commit_message)
    except (PublishError, ValueError, OSError) as error:
        # Only the message, redacted: a traceback could show arguments of the HTTP layer.
        print(f"error: {redact(str(error), get_token())}".splitlines()[0], file=sys.stderr)
        return 2
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
