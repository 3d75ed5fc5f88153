# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Publish a checkpoint folder written by the trainers (OUTPUT_DIR/model) to the Hugging Face Hub, as one commit.

    python -m training.publish runs/text/model my-org/aft-local-wiki --private --commit-message "First run"
    python -m training.publish runs/text/model my-org/aft-local-wiki --revision experiments --dry-run

The folder must hold config.json, the weights (*.safetensors) and its model card (README.md); everything else in it
(modeling code, tokenizer or image processor, loss_curves.png, results.json, samples) goes up too, hidden files and
caches excepted. The repo is created if missing (public unless --private), --revision names a branch (created from
main if new), and all files arrive in one commit. If the card's loading recipes still name the placeholder
`path/to/<model name>` (the card was written before the repo id was known), the uploaded README.md names REPO_ID
instead; the folder itself is never modified.

The token comes from where huggingface_hub looks for it: the HF_TOKEN variable, then the saved login
(`hf auth login`). It is never printed, logged or written anywhere, and a file that contains it is refused. HF_ENDPOINT
selects another Hub (an organisation's own), --endpoint overrides it. A Hub without Xet storage also needs
HF_HUB_DISABLE_XET=1 (huggingface_hub uploads through Xet whenever the hf_xet package is installed).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx2  # huggingface_hub's HTTP client: its HTTPError covers refusals (HfHubHTTPError) and network failures
from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, constants, get_token
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import validate_repo_id

REQUIRED = {"config.json": "the model's config", "README.md": "the model card"}
WEIGHTS_PATTERN = "*.safetensors"
SKIPPED_FOLDERS = {"__pycache__"}
SCAN_LIMIT = 256 * 1024 * 1024  # bigger files are weight shards; a token there would be noise, not a leak
CHUNK = 1024 * 1024
COMMIT_OID = re.compile(r"[0-9a-fA-F]{40}")


class PublishError(RuntimeError):
    """The Hub refused a step (or no token was found); the message never holds the token."""


@dataclass(frozen=True)
class UploadFile:
    path_in_repo: str
    local: Path
    size: int


# --------------------------------------------------------------------------------------------------------------------
# What goes up
# --------------------------------------------------------------------------------------------------------------------


def check_folder(folder: Path) -> None:
    """Refuse a folder that is not a Hugging Face checkpoint folder, naming what is missing."""
    if not folder.is_dir():
        raise FileNotFoundError(f"FOLDER={str(folder)!r} is not a folder; pass an OUTPUT_DIR/model folder of a run.")
    missing = [f"{name} ({what})" for name, what in REQUIRED.items() if not (folder / name).is_file()]
    if not any(path.is_file() for path in folder.glob(WEIGHTS_PATTERN)):
        missing.append(f"{WEIGHTS_PATTERN} (the weights)")
    if missing:
        raise FileNotFoundError(
            f"FOLDER={str(folder)!r} lacks {', '.join(missing)}; publish the OUTPUT_DIR/model folder the trainers "
            "write (a training checkpoint-N folder first needs converting to a Hugging Face folder)."
        )


def collect_files(folder: Path) -> list[UploadFile]:
    """Every file to upload, sorted; hidden entries (temporary files, .cache, .git) and __pycache__ stay home."""
    files = []
    root = folder.resolve()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") or part in SKIPPED_FOLDERS for part in relative.parts) or not path.is_file():
            continue
        if not path.resolve().is_relative_to(root):
            raise ValueError(
                f"{relative.as_posix()} in FOLDER={str(folder)!r} links outside the folder; copy the file into the "
                "folder or remove the link."
            )
        files.append(UploadFile(relative.as_posix(), path, path.stat().st_size))
    return files


def contains(path: Path, needle: bytes) -> bool:
    """Whether the file holds `needle`, read in chunks that overlap by len(needle) - 1 bytes."""
    tail = b""
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            if needle in tail + chunk:
                return True
            tail = chunk[-(len(needle) - 1):] if len(needle) > 1 else b""
    return False


def refuse_token_in_files(files: list[UploadFile], token: str | None) -> None:
    if not token:
        return
    for item in files:
        if item.size <= SCAN_LIMIT and contains(item.local, token.encode()):
            raise ValueError(
                f"{item.path_in_repo} contains your Hub token; remove it from the file before publishing (and revoke "
                "the token if the file was shared)."
            )


def card_for_repo(folder: Path, repo_id: str) -> bytes | None:
    """The card with its loading recipes pointed at `repo_id`, or None when it already names a repo (or has no
    model-index name to find the placeholder by)."""
    text = (folder / "README.md").read_text(encoding="utf-8")
    try:
        model_name = ModelCard(text, ignore_metadata_errors=True).data.model_name
    except ValueError:
        return None
    placeholder = f'"path/to/{model_name}"'  # what write_model_card puts into from_pretrained(...) without repo_id
    if not model_name or placeholder not in text:
        return None
    return text.replace(placeholder, f'"{repo_id}"').encode("utf-8")


def listing(files: list[UploadFile], card: bytes | None) -> list[dict]:
    """Paths and the sizes that will arrive (the rewritten card's, where there is one)."""
    return [{"path": item.path_in_repo, "size": len(card) if card and item.path_in_repo == "README.md" else item.size}
            for item in files]


def resolve_endpoint(endpoint: str | None) -> str:
    """--endpoint, else HF_ENDPOINT as it is now (not as it was when huggingface_hub was imported), else the Hub."""
    chosen = endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    if not re.match(r"https?://[^/\s]+", chosen):
        raise ValueError(f"endpoint={chosen!r} is not an http(s) URL; pass e.g. https://huggingface.co.")
    return chosen.rstrip("/")


def check_revision(revision: str | None) -> None:
    if revision is None:
        return
    if not revision.strip() or COMMIT_OID.fullmatch(revision) or revision.startswith("refs/"):
        raise ValueError(
            f"revision={revision!r} is not a branch name; pass a branch (e.g. 'main' or 'experiments'): commits go "
            "to branches, not to commits, tags or pull requests."
        )


# --------------------------------------------------------------------------------------------------------------------
# Talking to the Hub
# --------------------------------------------------------------------------------------------------------------------


def redact(text: str, token: str | None) -> str:
    return text.replace(token, "<token>") if token else text


def hub_step(step: str, token: str | None, call, *args, **kwargs):
    """Run one Hub call; a refusal or a network failure becomes a PublishError naming the step, without the token."""
    try:
        return call(*args, **kwargs)
    except (httpx2.HTTPError, OSError) as error:  # HfHubHTTPError is both; hf_xet raises ConnectionError
        hint = ""
        if "xet" in str(error).lower():
            hint = " (this Hub seems to take no Xet uploads: run again with HF_HUB_DISABLE_XET=1)"
        raise PublishError(redact(f"{step} failed: {error}{hint}", token)) from error


def check_token(repo_id: str, endpoint: str | None = None) -> str:
    """Before a long run that ends with a push: the Hub at `endpoint` (default HF_ENDPOINT) accepts the token, the
    token may write, and its user is `repo_id`'s namespace or a member of it (not read-only). Returns the user name;
    raises PublishError naming the fix (never the token). A fine-grained token's scopes are not checked here."""
    endpoint = resolve_endpoint(endpoint)
    token = get_token()
    if not token:
        raise PublishError("no Hub token found; set HF_TOKEN or log in with `hf auth login` (a write token).")
    try:
        info = HfApi(endpoint=endpoint).whoami(token)
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        first = redact(str(error), token).strip().splitlines()[0]
        if status == 401:
            raise PublishError(f"the Hub at {endpoint} refused the token ({first}); set HF_TOKEN to a valid write "
                               "token or log in again with `hf auth login --force`.") from None
        raise PublishError(f"checking the token at {endpoint} failed ({first}); try again later.") from None
    except (httpx2.HTTPError, OSError) as error:  # no network, a wrong HF_ENDPOINT: the push would fail the same way
        raise PublishError(redact(f"the Hub at {endpoint} cannot be reached ({type(error).__name__}: {error}); check "
                                  "the network and HF_ENDPOINT, or train without --push-to-hub and publish later "
                                  "with python -m training.publish.", token)) from None
    user = info.get("name", "?")
    access = (info.get("auth") or {}).get("accessToken") or {}
    if access.get("role") == "read":
        raise PublishError(f"the token of {user} is read-only; create a write token (or a fine-grained one that may "
                           "write to the repo) and set HF_TOKEN to it.")
    namespace = repo_id.split("/")[0] if "/" in repo_id else user
    orgs = {org.get("name"): org.get("roleInOrg") for org in info.get("orgs") or []}
    if namespace != user and namespace not in orgs:
        raise PublishError(f"{user} (the token's user) is not {namespace!r} nor a member of it (orgs: "
                           f"{', '.join(sorted(orgs)) or 'none'}); use {user}/{repo_id.split('/')[-1]}, an org of "
                           f"yours, or that namespace's token.")
    if orgs.get(namespace) == "read":
        raise PublishError(f"{user} may only read in the org {namespace!r}; ask for write access or use another "
                           "namespace.")
    return user


def token_owner(api: HfApi, token: str) -> str:
    """Who the token belongs to; asking first makes a refused token fail before anything is created."""
    return hub_step("checking the token (whoami)", token, api.whoami)["name"]


def open_repo(api: HfApi, repo_id: str, private: bool, revision: str, token: str) -> tuple[str, bool]:
    """Create the repo if missing and the branch if new; refuse to send a --private upload into a public repo."""
    url = hub_step(f"creating {repo_id}", token, api.create_repo, repo_id, private=private, exist_ok=True)
    info = hub_step(f"reading {repo_id}", token, api.model_info, repo_id)
    if private and not info.private:
        raise PublishError(
            f"{repo_id} already exists and is public, but --private was asked for; make it private on the Hub first "
            "or publish under another repo id."
        )
    if revision != "main":
        hub_step(f"creating branch {revision!r}", token, api.create_branch, repo_id, branch=revision, exist_ok=True)
    return str(url), bool(info.private)


# --------------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------------


def publish(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    dry_run: bool = False,
    endpoint: str | None = None,
) -> dict:
    """Upload `folder` to the Hub repo `repo_id` as one commit and return what happened.

    Args:
        folder: an OUTPUT_DIR/model folder (config.json, *.safetensors and README.md are required).
        repo_id: `namespace/name`, or `name` for the token owner's namespace.
        private: create the repo private; refused if the repo already exists and is public.
        revision: the branch to commit to (created from main if new); default main.
        commit_message: the commit's summary; default "Upload <folder name> with training.publish".
        dry_run: only check the folder and list what would be uploaded; nothing is contacted, no token is needed.
        endpoint: the Hub's URL; default HF_ENDPOINT, else https://huggingface.co.

    Returns:
        `{"repo_id", "repo_url", "endpoint", "revision", "private", "commit_message", "commit_url", "commit_oid",
        "card_rewritten", "dry_run", "files": [{"path", "size"}, ...]}` (URL and oid are None in a dry run).
    """
    folder = Path(folder)
    validate_repo_id(repo_id)
    check_revision(revision)
    endpoint = resolve_endpoint(endpoint)
    check_folder(folder)
    files = collect_files(folder)
    token = get_token()
    refuse_token_in_files(files, token)
    card = card_for_repo(folder, repo_id)
    result = dict(repo_id=repo_id, repo_url=None, endpoint=endpoint, revision=revision or "main", private=private,
                  commit_message=commit_message or f"Upload {folder.resolve().name} with training.publish",
                  commit_url=None, commit_oid=None, card_rewritten=card is not None, dry_run=dry_run,
                  files=listing(files, card))
    if not dry_run:
        upload(folder, files, result, token)
    return result


def upload(folder: Path, files: list[UploadFile], result: dict, token: str | None) -> None:
    """The Hub half of `publish`: check the token, open the repo and branch, commit; fills in `result`."""
    if not token:
        raise PublishError("no Hub token found; set HF_TOKEN or log in with `hf auth login` (a write token).")
    api = HfApi(endpoint=result["endpoint"])
    owner = token_owner(api, token)
    repo_id, revision = result["repo_id"], result["revision"]
    if "/" not in repo_id:  # `name` means `owner/name`, as on the Hub
        repo_id = f"{owner}/{repo_id}"
    card = card_for_repo(folder, repo_id)
    repo_url, is_private = open_repo(api, repo_id, result["private"], revision, token)
    operations = [
        CommitOperationAdd(item.path_in_repo, card if card and item.path_in_repo == "README.md" else str(item.local))
        for item in files
    ]
    commit = hub_step(f"committing to {repo_id} ({revision})", token, api.create_commit, repo_id, operations,
                      commit_message=result["commit_message"], revision=revision)
    result.update(repo_id=repo_id, repo_url=repo_url, private=is_private, commit_url=commit.commit_url,
                  commit_oid=commit.oid, files=listing(files, card))


# --------------------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------------------


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def report(result: dict) -> str:
    total = sum(item["size"] for item in result["files"])
    verb = "would upload" if result["dry_run"] else "uploaded"
    lines = [f"{verb} {len(result['files'])} files ({human_size(total)}) to {result['repo_id']} "
             f"(branch {result['revision']}) at {result['endpoint']}:"]
    lines += [f"  {human_size(item['size']):>10}  {item['path']}" for item in result["files"]]
    if result["card_rewritten"]:
        lines.append("  README.md: loading recipes point at the repo id (the folder's own card is unchanged)")
    if not result["dry_run"]:
        visibility = "private" if result["private"] else "public"
        lines.append(f"commit {result['commit_oid']} ({visibility} repo): {result['commit_url']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.publish",
        description=__doc__.split("\n\n")[0],
        epilog="The token comes from HF_TOKEN or the saved login (`hf auth login`); there is no --token option.",
    )
    parser.add_argument("folder", metavar="FOLDER", help="the OUTPUT_DIR/model folder of a training run")
    parser.add_argument("repo_id", metavar="REPO_ID", help="namespace/name on the Hub (name alone: your namespace)")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--revision", metavar="BRANCH", help="branch to commit to, created from main if new")
    parser.add_argument("--commit-message", metavar="MSG", help="the commit's summary")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded; contact nothing")
    parser.add_argument("--endpoint", metavar="URL", help="the Hub's URL (default: HF_ENDPOINT, else huggingface.co)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = publish(args.folder, args.repo_id, private=args.private, revision=args.revision,
                         commit_message=args.commit_message, dry_run=args.dry_run, endpoint=args.endpoint)
    except (PublishError, ValueError, OSError) as error:
        # Only the message, redacted: a traceback could show arguments of the HTTP layer.
        print(f"error: {redact(str(error), get_token())}", file=sys.stderr)
        return 1
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
