# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""A small in-memory Hugging Face Hub for the tests: the HTTP endpoints `huggingface_hub` 2.4 calls to create model
repos, commit to them (regular and LFS files) and download from them, served on 127.0.0.1 from a thread.

    python -m tests.hub_server --port 8765 --token hf_local_test      # by hand, until Ctrl-C

    with HubServer(token="hf_...") as hub:
        env = {"HF_ENDPOINT": hub.endpoint, "HF_TOKEN": hub.token, "HF_HUB_DISABLE_XET": "1"}
        ...  # huggingface_hub / transformers in this or another process
        hub.files("tester/aft-tiny")  # {path: bytes} at the head of main
        hub.requests                  # every request seen, with its authorization state and status

Two listeners stand in for the Hub's two kinds of hosts. The API host (`hub.endpoint`) answers the API, the LFS batch
API and `/resolve/`; it wants `authorization: Bearer <token>` for every write and for private repos, and answers 401
to any other token. The storage host (another port, so another origin) stands in for the LFS bucket and its CDN: LFS
uploads are PUT there through signed URLs the batch API hands out, and `/resolve/` redirects LFS downloads there, so
the client drops the token when it leaves the Hub, as it does with the real CDN.

Xet is never advertised (no `X-Xet-Hash` header, no `xetHash` in tree entries), so downloads use plain HTTP. For
uploads huggingface_hub picks xet on its own whenever `hf_xet` is installed, without asking the server: clients must
run with `HF_HUB_DISABLE_XET=1` (a xet token request lands in `hub.unknown`).

Only what the tests use is implemented (model and Space repos, branches, no pull requests, no tags). A Space is kept
under the key `spaces/<namespace>/<name>` (`hub.files("spaces/tester/demo")`), the prefix its URLs carry. An endpoint
the server does not know answers 404 and is recorded in `hub.unknown`, so that a new client call shows up as a failing
test, not as a silently wrong answer. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, quote, unquote, urlsplit

# What the Hub writes into a new repo: which files git keeps in LFS (the Hub's own list, shortened).
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.gz", "*.h5", "*.joblib", "*.model", "*.msgpack", "*.npy",
        "*.npz", "*.onnx", "*.parquet", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.safetensors", "*.tar", "*.tgz",
        "*.xz", "*.zip", "*.zst", "*tfevents*",
    )
)
REGULAR_FILE_LIMIT = 10 * 1024 * 1024  # larger files must go through LFS, as on the Hub
NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
REPO = rf"(?P<repo>{NAME}/{NAME})"
SEGMENT = r"[^/]+"
COMMIT_OID = re.compile(r"[0-9a-f]{40}")
INVALID_TOKEN_MESSAGE = "Invalid credentials in Authorization header"  # huggingface_hub matches this text


class HubError(Exception):
    """An HTTP error answer: status, message (JSON `error` and `X-Error-Message`), optional `X-Error-Code`."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


# --------------------------------------------------------------------------------------------------------------------
# Repos in memory
# --------------------------------------------------------------------------------------------------------------------


def git_blob_oid(data: bytes) -> str:
    """The id git gives a blob: sha1 over a header and the content (what the Hub reports as a file's `oid`)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class Blob:
    """One file's content; an LFS file is stored in git as its pointer, whose blob id is the file's git `oid`."""

    data: bytes
    lfs: bool
    sha256: str
    oid: str
    pointer_size: int

    @classmethod
    def make(cls, data: bytes, lfs: bool) -> "Blob":
        sha256 = hashlib.sha256(data).hexdigest()
        pointer = lfs_pointer(sha256, len(data)) if lfs else b""
        return cls(data, lfs, sha256, git_blob_oid(pointer if lfs else data), len(pointer))

    def entry_oid(self) -> str:
        """The oid the preupload endpoint compares with the client's: sha256 for LFS files, the git oid otherwise."""
        return self.sha256 if self.lfs else self.oid


@dataclass(frozen=True)
class Commit:
    oid: str
    parent: str | None
    title: str
    description: str
    date: str
    files: dict[str, Blob]


@dataclass
class Repo:
    repo_id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit:
        """A branch name or a full commit oid, as the Hub accepts them in URLs."""
        oid = self.branches.get(revision, revision)
        if oid not in self.commits:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commits[oid]

    def history(self, commit: Commit) -> Iterator[Commit]:
        while commit is not None:
            yield commit
            commit = self.commits.get(commit.parent) if commit.parent else None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def lfs_patterns(files: dict[str, Blob]) -> list[str]:
    attributes = files.get(".gitattributes")
    if attributes is None:
        return []
    lines = (line.split() for line in attributes.data.decode("utf-8", "replace").splitlines())
    return [words[0] for words in lines if words and "filter=lfs" in words[1:]]


def wants_lfs(path: str, size: int, sample: bytes, patterns: list[str]) -> bool:
    """The Hub's rule: LFS for tracked patterns, for binary content (a NUL byte in the sample) and for big files."""
    name = path.rsplit("/", 1)[-1]
    tracked = any(fnmatch.fnmatch(path if "/" in pattern else name, pattern) for pattern in patterns)
    return tracked or size >= REGULAR_FILE_LIMIT or b"\0" in sample


# --------------------------------------------------------------------------------------------------------------------
# The Hub's answers
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class Request:
    """One request as the server saw it (`auth` is "valid", "missing" or "invalid"), for the tests to inspect."""

    host: str
    method: str
    path: str
    query: str
    auth: str
    status: int = 0


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(obj: Any, status: int = 200, content_type: str = "application/json") -> Reply:
    return Reply(status, json.dumps(obj).encode(), {"Content-Type": content_type})


class Hub:
    """The state and the endpoint functions; `HubServer` puts it on the network."""

    def __init__(self, token: str, user: str):
        self.token, self.user = token, user
        self.endpoint = self.storage = ""  # set once the listeners have their ports
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[Request] = []
        self.unknown: list[str] = []
        self.lock = threading.RLock()
        self.secret = secrets.token_bytes(32)  # signs storage URLs; never leaves the process
        self.counter = itertools.count()

    # --- helpers ----------------------------------------------------------------------------------------------------

    def repo(self, repo_id: str, auth: str) -> Repo:
        """The repo if this caller may read it; a private repo looks missing without the token, as on the Hub."""
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and auth != "valid"):
            raise HubError(401, "Repository not found", "RepoNotFound")
        return repo

    def sign(self, verb: str, sha256: str) -> str:
        return hmac.new(self.secret, f"{verb}:{sha256}".encode(), hashlib.sha256).hexdigest()

    def storage_url(self, verb: str, sha256: str) -> str:
        return f"{self.storage}/{verb}/{sha256}?signature={self.sign(verb, sha256)}"

    def check_signature(self, verb: str, sha256: str, query: dict) -> None:
        given = query.get("signature", [""])[0]
        if not hmac.compare_digest(given, self.sign(verb, sha256)):
            raise HubError(403, "Request has expired or its signature does not match")

    def new_commit(self, repo: Repo, parent: Commit | None, title: str, description: str, files: dict) -> Commit:
        # A counter in the hash: two commits with the same content still get different oids, as git's dates do.
        digest = hashlib.sha1(
            json.dumps(
                [parent.oid if parent else None, title, description, sorted((p, b.oid) for p, b in files.items()),
                 next(self.counter)]
            ).encode()
        )
        commit = Commit(digest.hexdigest(), parent.oid if parent else None, title, description, now(), files)
        repo.commits[commit.oid] = commit
        return commit

    def file_entry(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict:
        blob = commit.files[path]
        entry = {"type": "file", "oid": blob.oid, "size": len(blob.data), "path": path}
        if blob.lfs:
            entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": blob.pointer_size}
        if expand:
            entry["lastCommit"] = self.last_commit(repo, commit, path)
        return entry

    def folder_entry(self, commit: Commit, path: str) -> dict:
        inside = sorted((p, b.oid) for p, b in commit.files.items() if p.startswith(path + "/"))
        return {"type": "directory", "oid": hashlib.sha1(json.dumps(inside).encode()).hexdigest(), "size": 0,
                "path": path}

    def last_commit(self, repo: Repo, commit: Commit, path: str) -> dict:
        """The newest commit in the history that changed `path`."""
        found = commit
        for older in repo.history(commit):
            if older.files.get(path) != commit.files.get(path):
                break
            found = older
        return {"id": found.oid, "title": found.title, "date": found.date}

    # --- account and repos ------------------------------------------------------------------------------------------

    def whoami(self, auth: str, **_: Any) -> Reply:
        return json_reply({
            "type": "user", "id": "0" * 24, "name": self.user, "fullname": "Test User", "isPro": False,
            "orgs": [], "auth": {"type": "access_token", "accessToken": {"displayName": "tests", "role": "write"}},
        })

    def agent_harnesses(self, **_: Any) -> Reply:
        # huggingface_hub fetches this registry (anonymously) to describe the calling agent in its user agent.
        return json_reply({"standardEnvVars": [], "harnesses": {}})

    def create_repo(self, body: bytes, **_: Any) -> Reply:
        payload = json.loads(body or b"{}")
        if payload.get("type") not in (None, "model", "space"):
            raise HubError(400, f"repo type {payload.get('type')!r}: the test Hub keeps model and Space repos only")
        if payload.get("type") == "space" and not payload.get("sdk"):
            raise HubError(400, "A Space needs its sdk (gradio, docker or static)")
        name, namespace = payload.get("name") or "", payload.get("organization") or self.user
        repo_id = f"{namespace}/{name}"
        if not re.fullmatch(f"{NAME}/{NAME}", repo_id):
            raise HubError(400, f"Invalid repo name {repo_id!r}")
        if payload.get("type") == "space":  # a Space lives beside a model of the same name, as on the Hub
            repo_id = f"spaces/{repo_id}"
        url = f"{self.endpoint}/{repo_id}"
        if repo_id in self.repos:
            return json_reply({"error": "You already created this model repo", "url": url}, status=409)
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        repo = Repo(repo_id, private, now())
        initial = self.new_commit(repo, None, "initial commit", "",
                                  {".gitattributes": Blob.make(DEFAULT_GITATTRIBUTES.encode(), lfs=False)})
        repo.branches["main"] = initial.oid
        self.repos[repo_id] = repo
        return json_reply({"url": url, "name": repo_id, "id": initial.oid[:24]})

    def model_info(self, auth: str, repo: str, query: dict, rev: str = "main", **_: Any) -> Reply:
        hub_repo = self.repo(repo, auth)
        commit = hub_repo.resolve(unquote(rev))
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for path, blob in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=len(blob.data), blobId=blob.oid)
                if blob.lfs:
                    sibling["lfs"] = {"size": len(blob.data), "sha256": blob.sha256, "pointerSize": blob.pointer_size}
            siblings.append(sibling)
        return json_reply({
            "_id": hashlib.sha1(repo.encode()).hexdigest()[:24], "id": repo, "modelId": repo,
            "author": repo.split("/")[0], "sha": commit.oid, "lastModified": commit.date,
            "createdAt": hub_repo.created_at, "private": hub_repo.private, "gated": False, "disabled": False,
            "downloads": 0, "likes": 0, "tags": [], "siblings": siblings, "spaces": [],
            "usedStorage": sum(len(blob.data) for blob in commit.files.values()),
        })

    def refs(self, auth: str, repo: str, query: dict, **_: Any) -> Reply:
        hub_repo = self.repo(repo, auth)
        branches = [{"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid}
                    for name, oid in sorted(hub_repo.branches.items())]
        refs: dict[str, Any] = {"branches": branches, "converts": [], "tags": []}
        if query.get("include_prs"):
            refs["pullRequests"] = []
        return json_reply(refs)

    def create_branch(self, auth: str, repo: str, branch: str, body: bytes, **_: Any) -> Reply:
        hub_repo = self.repo(repo, auth)
        branch = unquote(branch)
        if COMMIT_OID.fullmatch(branch) or not re.fullmatch(r"[A-Za-z0-9._/-]+", branch) or ".." in branch:
            raise HubError(400, f"Invalid branch name {branch!r}")
        if branch in hub_repo.branches:
            raise HubError(409, "Reference already exists")
        start = json.loads(body or b"{}").get("startingPoint") or "main"
        hub_repo.branches[branch] = hub_repo.resolve(start).oid
        return json_reply({})

    def branch_head(self, hub_repo: Repo, rev: str) -> Commit:
        branch = unquote(rev)
        if branch not in hub_repo.branches:
            raise HubError(404, f"Invalid rev id: {branch} (commits go to an existing branch)", "RevisionNotFound")
        return hub_repo.resolve(branch)

    # --- uploads ----------------------------------------------------------------------------------------------------

    def validate_yaml(self, body: bytes, **_: Any) -> Reply:
        content = json.loads(body or b"{}").get("content", "")
        if content.startswith("---") and content.count("\n---") < 1:
            return json_reply({"errors": [{"message": "metadata block is not closed by ---"}]}, status=400)
        return json_reply({"errors": [], "warnings": []})

    def preupload(self, auth: str, repo: str, rev: str, body: bytes, query: dict, **_: Any) -> Reply:
        hub_repo = self.repo(repo, auth)
        if query.get("create_pr"):
            raise HubError(400, "The test Hub has no pull requests")
        commit = self.branch_head(hub_repo, rev)
        patterns = lfs_patterns(commit.files)
        answers = []
        for item in json.loads(body).get("files", []):
            path, size, sample = item["path"], int(item["size"]), base64.b64decode(item["sample"])
            existing = commit.files.get(path)
            answers.append({
                "path": path,
                "uploadMode": "lfs" if wants_lfs(path, size, sample, patterns) else "regular",
                "shouldIgnore": False,
                "oid": existing.entry_oid() if existing else None,
            })
        return json_reply({"files": answers, "commitOid": commit.oid})

    def lfs_batch(self, auth: str, repo: str, body: bytes, **_: Any) -> Reply:
        self.repo(repo, auth)
        payload = json.loads(body)
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, "The test Hub takes basic LFS uploads only")
        objects = []
        for item in payload.get("objects", []):
            oid, size = item["oid"], int(item["size"])
            stored = self.lfs_objects.get(oid)
            if stored is not None and len(stored) != size:
                objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "size mismatch"}})
            elif stored is not None:
                objects.append({"oid": oid, "size": size})  # no actions: already uploaded
            else:
                objects.append({
                    "oid": oid, "size": size, "authenticated": True,
                    "actions": {
                        "upload": {"href": self.storage_url("upload", oid)},
                        "verify": {"href": f"{self.endpoint}/{repo}.git/info/lfs/objects/verify"},
                    },
                })
        return json_reply({"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")

    def lfs_verify(self, auth: str, repo: str, body: bytes, **_: Any) -> Reply:
        self.repo(repo, auth)
        item = json.loads(body)
        stored = self.lfs_objects.get(item.get("oid", ""))
        if stored is None or len(stored) != item.get("size"):
            raise HubError(404, f"LFS object {item.get('oid')} was not uploaded")
        return json_reply({"success": True})

    def commit(self, auth: str, repo: str, rev: str, body: bytes, query: dict, **_: Any) -> Reply:
        hub_repo = self.repo(repo, auth)
        if query.get("create_pr"):
            raise HubError(400, "The test Hub has no pull requests")
        head = self.branch_head(hub_repo, rev)
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The commit payload must start with its header line")
        header = lines[0]["value"]
        if header.get("parentCommit") and header["parentCommit"] not in (head.oid, head.oid[:7]):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for line in lines[1:]:
            self.apply(files, line["key"], line["value"])
        commit = self.new_commit(hub_repo, head, header.get("summary", ""), header.get("description", ""), files)
        hub_repo.branches[unquote(rev)] = commit.oid
        return json_reply({"success": True, "commitOid": commit.oid, "commitUrl": f"{self.endpoint}/{repo}/commit/"
                           f"{commit.oid}", "hookOutput": "", "pullRequestUrl": None})

    def apply(self, files: dict[str, Blob], key: str, value: dict) -> None:
        """One line of the ndjson commit payload; a regular file that should be in LFS is refused, as on the Hub."""
        path = value.get("path", "")
        if key == "file":
            data = base64.b64decode(value["content"])
            if wants_lfs(path, len(data), data[:512], lfs_patterns(files)):
                raise HubError(400, f"Your push was rejected: {path} must be uploaded with LFS")
            files[path] = Blob.make(data, lfs=False)
        elif key == "lfsFile":
            data = self.lfs_objects.get(value.get("oid", ""))
            if data is None or ("size" in value and len(data) != value["size"]):
                raise HubError(422, f"LFS object for {path} ({value.get('oid')}) was not uploaded")
            files[path] = Blob.make(data, lfs=True)
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            for name in [name for name in files if name.startswith(path.rstrip("/") + "/")]:
                del files[name]
        else:
            raise HubError(400, f"The test Hub cannot apply commit operation {key!r}")

    # --- listing ----------------------------------------------------------------------------------------------------

    def tree(self, auth: str, repo: str, rev: str, query: dict, path: str | None = None, **_: Any) -> Reply:
        hub_repo = self.repo(repo, auth)
        commit = hub_repo.resolve(unquote(rev))
        base = unquote(path or "").strip("/")
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        expand = query.get("expand", ["false"])[0].lower() == "true"
        prefix = base + "/" if base else ""
        inside = sorted(p for p in commit.files if p.startswith(prefix))
        if base and not inside:
            raise HubError(404, f"{base} does not exist on {rev}", "EntryNotFound",
                           {"X-Repo-Commit": commit.oid})
        entries, folders = [], set()
        for name in inside:
            parts = name[len(prefix):].split("/")
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append(self.file_entry(hub_repo, commit, name, expand))
        entries += [self.folder_entry(commit, folder) for folder in sorted(folders)]
        return json_reply(sorted(entries, key=lambda entry: (entry["type"] == "file", entry["path"])))

    def paths_info(self, auth: str, repo: str, rev: str, body: bytes, **_: Any) -> Reply:
        hub_repo = self.repo(repo, auth)
        commit = hub_repo.resolve(unquote(rev))
        form = parse_qs(body.decode())
        expand = form.get("expand", ["false"])[0].lower() == "true"
        entries = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in commit.files:
                entries.append(self.file_entry(hub_repo, commit, path, expand))
            elif any(name.startswith(path + "/") for name in commit.files):
                entries.append(self.folder_entry(commit, path))
        return json_reply(entries)

    # --- downloads --------------------------------------------------------------------------------------------------

    def resolve(self, auth: str, repo: str, rev: str, path: str, headers: dict, **_: Any) -> Reply:
        hub_repo = self.repo(repo, auth)
        commit = hub_repo.resolve(unquote(rev))
        blob = commit.files.get(unquote(path))
        if blob is None:
            raise HubError(404, f"Entry not found: {unquote(path)}", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        base = {"X-Repo-Commit": commit.oid, "ETag": f'"{blob.oid}"', "Accept-Ranges": "bytes"}
        if blob.lfs:
            # As the Hub does for LFS files: a redirect to the storage host, the file's identity in X-Linked-*.
            return Reply(302, b"", {**base, "Location": self.storage_url("objects", blob.sha256),
                                    "X-Linked-Etag": f'"{blob.sha256}"', "X-Linked-Size": str(len(blob.data))})
        return ranged(blob.data, headers, {**base, "Content-Type": "text/plain; charset=utf-8"})

    # --- the storage host -------------------------------------------------------------------------------------------

    def put_object(self, sha256: str, body: bytes, query: dict, **_: Any) -> Reply:
        self.check_signature("upload", sha256, query)
        if hashlib.sha256(body).hexdigest() != sha256:
            raise HubError(400, f"The uploaded content does not hash to {sha256}")
        self.lfs_objects[sha256] = body
        return Reply(200, b"", {"ETag": f'"{hashlib.md5(body).hexdigest()}"'})

    def get_object(self, sha256: str, query: dict, headers: dict, **_: Any) -> Reply:
        self.check_signature("objects", sha256, query)
        data = self.lfs_objects.get(sha256)
        if data is None:
            raise HubError(404, "NoSuchKey")
        return ranged(data, headers, {"ETag": f'"{sha256}"', "Content-Type": "application/octet-stream"})


def error_reply(error: HubError) -> Reply:
    """The Hub's error shape: JSON `error`, and the headers huggingface_hub maps to its exception classes."""
    reply = json_reply({"error": error.message}, status=error.status)
    reply.headers["X-Error-Message"] = error.message.encode("ascii", "replace").decode()
    if error.code:
        reply.headers["X-Error-Code"] = error.code
    reply.headers.update(error.headers)
    return reply


def ranged(data: bytes, headers: dict, extra: dict[str, str]) -> Reply:
    """The whole body, or the single `Range: bytes=a-[b]` asked for (huggingface_hub resumes downloads so)."""
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", headers.get("range", "").strip())
    if not match:
        return Reply(200, data, extra)
    start = int(match.group(1))
    end = min(int(match.group(2)), len(data) - 1) if match.group(2) else len(data) - 1
    if start >= len(data):
        return Reply(416, b"", {"Content-Range": f"bytes */{len(data)}"})
    return Reply(206, data[start:end + 1], {**extra, "Content-Range": f"bytes {start}-{end}/{len(data)}"})


# Method, path pattern (on the raw, still percent-encoded path), function name, and whether the token is required.
API_ROUTES: list[tuple[tuple[str, ...], str, str, bool]] = [
    (("GET",), r"/api/whoami-v2", "whoami", True),
    (("GET",), r"/api/agent-harnesses", "agent_harnesses", False),
    (("POST",), r"/api/repos/create", "create_repo", True),
    (("POST",), r"/api/validate-yaml", "validate_yaml", True),
    (("GET",), rf"/api/(?P<kind>models|spaces)/{REPO}", "model_info", False),
    (("GET",), rf"/api/(?P<kind>models|spaces)/{REPO}/revision/(?P<rev>{SEGMENT})", "model_info", False),
    (("GET",), rf"/api/(?P<kind>models|spaces)/{REPO}/refs", "refs", False),
    (("POST",), rf"/api/(?P<kind>models|spaces)/{REPO}/branch/(?P<branch>{SEGMENT})", "create_branch", True),
    (("POST",), rf"/api/(?P<kind>models|spaces)/{REPO}/preupload/(?P<rev>{SEGMENT})", "preupload", True),
    (("POST",), rf"/api/(?P<kind>models|spaces)/{REPO}/commit/(?P<rev>{SEGMENT})", "commit", True),
    (("GET",), rf"/api/(?P<kind>models|spaces)/{REPO}/tree/(?P<rev>{SEGMENT})(?:/(?P<path>.*))?", "tree", False),
    (("POST",), rf"/api/(?P<kind>models|spaces)/{REPO}/paths-info/(?P<rev>{SEGMENT})", "paths_info", False),
    (("POST",), rf"/(?:(?P<kind>spaces)/)?{REPO}\.git/info/lfs/objects/batch", "lfs_batch", True),
    (("POST",), rf"/(?:(?P<kind>spaces)/)?{REPO}\.git/info/lfs/objects/verify", "lfs_verify", True),
    (("GET", "HEAD"), rf"/(?:(?P<kind>spaces)/)?{REPO}/resolve/(?P<rev>{SEGMENT})/(?P<path>.+)", "resolve", False),
]
STORAGE_ROUTES: list[tuple[tuple[str, ...], str, str, bool]] = [
    (("PUT",), r"/upload/(?P<sha256>[0-9a-f]{64})", "put_object", False),
    (("GET", "HEAD"), r"/objects/(?P<sha256>[0-9a-f]{64})", "get_object", False),
]


# --------------------------------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------------------------------


def make_handler(hub: Hub, host: str, routes: list) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects; every answer carries its Content-Length

        def do_GET(self) -> None:
            self.dispatch()

        do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the tests read hub.requests instead

        def read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    chunk = self.rfile.read(size)
                    self.rfile.readline()  # the CRLF after each chunk
                    if size == 0:
                        return b"".join(chunks)
                    chunks.append(chunk)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def auth_state(self) -> str:
            value = self.headers.get("Authorization")
            if value is None:
                return "missing"
            return "valid" if hmac.compare_digest(value, f"Bearer {hub.token}") else "invalid"

        def dispatch(self) -> None:
            body = self.read_body()  # always drained, so that the kept-alive connection stays in step
            url = urlsplit(self.path)
            record = Request(host, self.command, url.path, url.query, self.auth_state())
            try:
                reply = self.answer(record, url.path, parse_qs(url.query), body)
            except HubError as error:
                reply = error_reply(error)
            record.status = reply.status
            with hub.lock:
                hub.requests.append(record)
            self.send(reply)

        def answer(self, record: Request, path: str, query: dict, body: bytes) -> Reply:
            function, arguments, needs_token = self.route(path)
            if host == "hub" and record.auth == "invalid":
                raise HubError(401, INVALID_TOKEN_MESSAGE)
            if needs_token and record.auth != "valid":
                raise HubError(401, "You must be authenticated with a write token to do this")
            headers = {key.lower(): value for key, value in self.headers.items()}
            with hub.lock:
                return function(auth=record.auth, body=body, query=query, headers=headers, **arguments)

        def route(self, path: str) -> tuple[Callable[..., Reply], dict, bool]:
            for methods, pattern, name, needs_token in routes:
                match = re.fullmatch(pattern, path)
                if match and self.command in methods:
                    arguments = {key: value for key, value in match.groupdict().items() if value is not None}
                    if arguments.pop("kind", "models") == "spaces":  # a Space's key carries the URL's prefix
                        arguments["repo"] = f"spaces/{arguments['repo']}"
                    return getattr(hub, name), arguments, needs_token
            with hub.lock:
                hub.unknown.append(f"{host} {self.command} {path}")
            raise HubError(404, f"The test Hub has no endpoint {self.command} {path}")

        def send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            headers = {"Content-Type": "application/octet-stream", **reply.headers}
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

    return Handler


class HubServer:
    """The Hub on two free ports of 127.0.0.1, serving from daemon threads until `stop()` (or the `with` ends)."""

    def __init__(self, token: str | None = None, user: str = "tester", port: int = 0):
        self.hub = Hub(token or f"hf_test_{secrets.token_hex(16)}", user)
        self.servers = [
            ThreadingHTTPServer(("127.0.0.1", host_port), make_handler(self.hub, host, routes))
            for host, host_port, routes in (("hub", port, API_ROUTES), ("storage", 0, STORAGE_ROUTES))
        ]
        for server in self.servers:
            server.daemon_threads = True
        self.hub.endpoint, self.hub.storage = (f"http://127.0.0.1:{s.server_address[1]}" for s in self.servers)
        self.threads: list[threading.Thread] = []

    def start(self) -> "HubServer":
        for server in self.servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # --- for the tests ----------------------------------------------------------------------------------------------

    @property
    def token(self) -> str:
        return self.hub.token

    @property
    def endpoint(self) -> str:
        return self.hub.endpoint

    @property
    def requests(self) -> list[Request]:
        with self.hub.lock:
            return list(self.hub.requests)

    @property
    def unknown(self) -> list[str]:
        with self.hub.lock:
            return list(self.hub.unknown)

    def repo(self, repo_id: str) -> Repo:
        with self.hub.lock:
            if repo_id not in self.hub.repos:
                raise KeyError(f"{repo_id} is not on the test Hub; it has {sorted(self.hub.repos)}")
            return self.hub.repos[repo_id]

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """Path -> content at a branch or commit."""
        with self.hub.lock:
            return {path: blob.data for path, blob in self.repo(repo_id).resolve(revision).files.items()}

    def lfs_paths(self, repo_id: str, revision: str = "main") -> set[str]:
        with self.hub.lock:
            return {path for path, blob in self.repo(repo_id).resolve(revision).files.items() if blob.lfs}

    def history(self, repo_id: str, revision: str = "main") -> list[Commit]:
        """The commits reachable from a branch, newest first."""
        with self.hub.lock:
            repo = self.repo(repo_id)
            return list(repo.history(repo.resolve(revision)))

    def stored_bytes(self) -> Iterator[bytes]:
        """Everything the server keeps: file contents, LFS objects, commit messages, repo and branch names."""
        with self.hub.lock:
            yield from self.hub.lfs_objects.values()
            for repo in self.hub.repos.values():
                yield repo.repo_id.encode()
                yield " ".join(repo.branches).encode()
                for commit in repo.commits.values():
                    yield f"{commit.title}\n{commit.description}".encode()
                    yield from (blob.data for blob in commit.files.values())

    def resolve_url(self, repo_id: str, path: str, revision: str = "main") -> str:
        return f"{self.endpoint}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted, for a publish round trip by hand."""
    parser = argparse.ArgumentParser(prog="python -m tests.hub_server", description=main.__doc__)
    parser.add_argument("--port", type=int, default=8765, help="port of the API host (0: any free one)")
    parser.add_argument("--token", help="the token the server accepts (default: a new random one, printed)")
    parser.add_argument("--user", default="tester", help="the token owner's name")
    args = parser.parse_args(argv)
    with HubServer(token=args.token, user=args.user, port=args.port) as server:
        print(f"test Hub at {server.endpoint} (user {args.user!r}); clients need HF_ENDPOINT={server.endpoint} "
              "HF_HUB_DISABLE_XET=1 and HF_TOKEN=<the token>", flush=True)
        if not args.token:
            print(f"generated throwaway token: {server.token}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
