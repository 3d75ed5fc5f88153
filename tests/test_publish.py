# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""Publishing a checkpoint folder to a Hub (`training.publish`) and loading it back, against the local test Hub.

One tiny AFT-local checkpoint (weights, byte tokenizer, modeling code, a card with a measured metric, a PNG, results)
is published once with the command line; fresh processes with empty HF_HOMEs then load it by repo id, with this
package and with `trust_remote_code=True` without it. The other tests publish copies in-process.
"""

import hashlib
import json
import math
import shutil
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, constants
from PIL import Image

from modeling_aft import AFTByteTokenizer, AFTConfig, AFTForCausalLM
from tests.helpers import BLOCK_PACKAGE, HUB_VARIABLES, REPO, hub_env, one_line_error, randomize
from tests.hub_server import HubServer
from training import publish as publish_module
from training.model_card import write_model_card
from training.publish import PublishError, main, publish

REPO_ID = "tester/aft-tiny-local"
MESSAGE = "Publish the tiny AFT-local checkpoint"
TEXT = "AFT mixes tokens without attention: sums of exp(K + w) V."
CONFIG = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_heads=4, max_position_embeddings=64,
              local_window=4, position_bias_dim=8, hidden_dropout_prob=0.0)


# --------------------------------------------------------------------------------------------------------------------
# The checkpoint, the Hub, one published copy
# --------------------------------------------------------------------------------------------------------------------


def bits_per_byte(model: AFTForCausalLM, ids: torch.Tensor) -> float:
    """Next-byte cross-entropy in bits, in float64 from the logits (the card's metric, measured, not typed)."""
    with torch.no_grad():
        logits = model(ids).logits.double()  # (1, T, 256)
    log_probs = torch.log_softmax(logits[:, :-1], dim=-1)  # (1, T-1, 256)
    picked = log_probs.gather(-1, ids[:, 1:, None]).squeeze(-1)  # (1, T-1)
    return float(-picked.mean() / math.log(2))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An OUTPUT_DIR/model folder as the trainers write it, and what loading it back must give."""
    root = tmp_path_factory.mktemp("checkpoint")
    folder = root / "model"
    torch.manual_seed(0)
    model = randomize(AFTForCausalLM(AFTConfig.from_preset("cpu-text-local", **CONFIG))).eval()
    model.save_pretrained(folder)
    tokenizer = AFTByteTokenizer()
    tokenizer.save_pretrained(folder)
    ids = torch.tensor([tokenizer(TEXT)["input_ids"]])  # (1, T)
    bpc = bits_per_byte(model, ids)
    write_model_card(folder, task="causal-lm", config=model.config,
                     results=[{"type": "bpc", "name": "Bits per character", "value": bpc, "split": "test"}],
                     dataset={"name": "A fixed test sentence", "type": "fixed-sentence"},
                     training={"steps": 0, "seconds": 0.0}, sample=TEXT[:40])
    (folder / "results.json").write_text(json.dumps({"metrics": {"test/bpc": bpc}, "final_evaluation": True,
                                                     "training": {"steps": 0}}))
    Image.new("RGB", (8, 8), (200, 30, 30)).save(folder / "loss_curves.png")
    (folder / "samples").mkdir()
    (folder / "samples" / "sample-0.txt").write_text(TEXT)
    (folder / ".README.md.abc.tmp").write_text("a leftover of an interrupted write")  # hidden: must stay home
    with torch.no_grad():
        logits = model(ids).logits  # (1, T, 256)
    expected = root / "expected.pt"
    torch.save({"state_dict": model.state_dict(), "inputs": ids, "logits": logits}, expected)
    return dict(folder=folder, expected=expected, bpc=bpc, ids=ids[0].tolist())


@pytest.fixture(scope="module")
def hub():
    with HubServer(user="tester") as server:
        yield server


def folder_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


LOAD_SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    import torch
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    case = json.loads(sys.argv[1])
    remote = case["remote"]
    if not remote:
        import modeling_aft  # noqa: F401  (registers "aft" with the Auto classes)
    model = AutoModelForCausalLM.from_pretrained(case["repo_id"], trust_remote_code=remote or None).eval()
    tokenizer = AutoTokenizer.from_pretrained(case["repo_id"], trust_remote_code=remote or None)
    expected = torch.load(case["expected"])
    state = model.state_dict()
    with torch.no_grad():
        logits = model(expected["inputs"]).logits
    card = ModelCard.load(case["repo_id"])
    print(json.dumps({
        "model_module": type(model).__module__,
        "tokenizer_module": type(tokenizer).__module__,
        "keys_missing": sorted(set(expected["state_dict"]) - set(state)),
        "keys_extra": sorted(set(state) - set(expected["state_dict"])),
        "differing": sorted(
            key for key, value in expected["state_dict"].items()
            if key in state and (state[key].dtype != value.dtype or not torch.equal(state[key], value))
        ),
        "logits_equal": bool(torch.equal(logits, expected["logits"])),
        "ids": tokenizer(case["text"])["input_ids"],
        "card_metrics": [(r.metric_type, r.metric_value) for r in card.data.eval_results],
        "package_imported": "modeling_aft" in sys.modules,
    }))
    """
)


@pytest.fixture(scope="module")
def published(checkpoint, hub, tmp_path_factory):
    """Publish with the command line, then load in two fresh processes at once (with and without the package)."""
    root = tmp_path_factory.mktemp("published")
    before = folder_digest(checkpoint["folder"])
    first_request = len(hub.requests)
    command = [sys.executable, "-m", "training.publish", str(checkpoint["folder"]), REPO_ID, "--commit-message",
               MESSAGE]
    run = subprocess.run(command, cwd=REPO, env=hub_env(hub, root / "publish_home", hub.token),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    publish_requests = hub.requests[first_request:]
    loads = {}
    for remote in (False, True):
        script = root / f"load_{remote}.py"
        script.write_text((BLOCK_PACKAGE if remote else "") + LOAD_SCRIPT)
        case = dict(repo_id=REPO_ID, remote=remote, expected=str(checkpoint["expected"]), text=TEXT)
        # No token: the repo is public, and a download must not need one. Run from tmp so that the checkout is not
        # on sys.path (the remote-code process must use the downloaded code).
        loads[remote] = subprocess.Popen([sys.executable, str(script), json.dumps(case)], cwd=root,
                                         env=hub_env(hub, root / f"home_{remote}", None), stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
    outputs = {remote: process.communicate(timeout=300) for remote, process in loads.items()}
    for remote, process in loads.items():
        assert process.returncode == 0, f"remote={remote}:\n{outputs[remote][0]}\n{outputs[remote][1][-4000:]}"
    return dict(run=run, requests=publish_requests, root=root, folder_before=before,
                loads={remote: json.loads(out.strip().splitlines()[-1]) for remote, (out, _) in outputs.items()},
                load_outputs=outputs)


# --------------------------------------------------------------------------------------------------------------------
# The round trip
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("remote", [False, True], ids=["with-package", "trust-remote-code"])
def test_from_pretrained_by_repo_id_gives_the_same_weights_and_logits(published, checkpoint, remote):
    loaded = published["loads"][remote]
    assert loaded["keys_missing"] == [] and loaded["keys_extra"] == []
    assert loaded["differing"] == [], "weights changed on the way through the Hub"
    assert loaded["logits_equal"]
    assert loaded["ids"] == checkpoint["ids"]
    if remote:
        # The repo's own code ran, and this package was never imported.
        assert loaded["model_module"].startswith("transformers_modules.")
        assert loaded["tokenizer_module"].startswith("transformers_modules.")
        assert not loaded["package_imported"]
    else:
        assert loaded["model_module"].startswith("modeling_aft.")


def test_the_card_on_the_hub_holds_the_measured_metric(published, checkpoint, hub):
    for remote in (False, True):  # as ModelCard.load(repo_id) read it in the fresh processes
        assert published["loads"][remote]["card_metrics"] == [["bpc", checkpoint["bpc"]]]
    card = hub.files(REPO_ID)["README.md"].decode()
    assert ModelCard(card).data.eval_results[0].metric_value == checkpoint["bpc"]
    # The uploaded card's loading recipes name the repo; the folder's own card is left as it was.
    assert f'from_pretrained("{REPO_ID}")' in card and "path/to/" not in card
    assert "path/to/" in (checkpoint["folder"] / "README.md").read_text()


def test_the_folder_arrives_as_one_commit_with_the_message(published, checkpoint, hub):
    folder = checkpoint["folder"]
    assert folder_digest(folder) == published["folder_before"], "publishing modified the folder"
    history = hub.history(REPO_ID)
    assert [commit.title for commit in history] == [MESSAGE, "initial commit"]
    files = hub.files(REPO_ID)
    local = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert set(files) == local - {".README.md.abc.tmp"} | {".gitattributes"}
    for path in local - {".README.md.abc.tmp", "README.md"}:
        assert files[path] == (folder / path).read_bytes(), path
    # Weights and the PNG went through the LFS batch API and the storage host; text went inline.
    assert hub.lfs_paths(REPO_ID) == {"model.safetensors", "loss_curves.png"}
    assert any(r.host == "storage" and r.method == "PUT" for r in published["requests"])
    out = published["run"].stdout
    assert f"uploaded {len(local) - 1} files" in out and history[0].oid in out
    assert all(f"  {path}" in out for path in local - {".README.md.abc.tmp"})


def test_the_token_is_sent_to_the_hub_only_and_appears_in_no_output_or_file(published, checkpoint, hub):
    token = hub.token
    requests = published["requests"]
    assert {r.auth for r in requests if r.host == "hub" and r.path != "/api/agent-harnesses"} == {"valid"}
    assert {r.auth for r in requests if r.host == "storage"} == {"missing"}  # signed URLs, as to S3
    assert all(r.status < 400 for r in requests), [r for r in requests if r.status >= 400]
    assert hub.unknown == []
    outputs = [published["run"].stdout, published["run"].stderr]
    outputs += [text for pair in published["load_outputs"].values() for text in pair]
    assert not any(token in text for text in outputs)
    for root in (checkpoint["folder"], published["root"]):  # the folder, every HF_HOME, the load scripts
        for path in root.rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), path
    assert not any(token.encode() in stored for stored in hub.stored_bytes())


# --------------------------------------------------------------------------------------------------------------------
# Options and refusals (in-process)
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def hub_login(hub, monkeypatch, tmp_path):
    """This process as a logged-in user of the test Hub (constants read at import are patched too)."""
    for key in HUB_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_TOKEN", hub.token)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_saved_token"))
    return hub


def copy_of(checkpoint, tmp_path, name="model") -> Path:
    folder = tmp_path / name
    shutil.copytree(checkpoint["folder"], folder)
    return folder


def test_dry_run_lists_the_files_and_contacts_nothing(checkpoint, hub_login, tmp_path):
    seen = len(hub_login.requests)
    # A fresh process, token and endpoint set: not even huggingface_hub's own first-request lookups may happen.
    command = [sys.executable, "-m", "training.publish", str(checkpoint["folder"]), "tester/never-created",
               "--dry-run", "--private"]
    run = subprocess.run(command, cwd=REPO, env=hub_env(hub_login, tmp_path / "home", hub_login.token),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert len(hub_login.requests) == seen
    assert hub_login.token not in out + run.stderr
    assert "would upload" in out and ".README.md.abc.tmp" not in out
    result = publish(checkpoint["folder"], "tester/never-created", dry_run=True)
    assert len(hub_login.requests) == seen
    sizes = {item["path"]: item["size"] for item in result["files"]}
    folder = checkpoint["folder"]
    assert sizes["model.safetensors"] == (folder / "model.safetensors").stat().st_size
    assert sizes["samples/sample-0.txt"] == (folder / "samples" / "sample-0.txt").stat().st_size
    assert result["card_rewritten"] and result["commit_oid"] is None
    assert all(f"  {path}" in out for path in sizes)


def test_private_repo_on_a_new_branch_gets_new_commits(checkpoint, hub_login, tmp_path):
    folder = copy_of(checkpoint, tmp_path)
    first = publish(folder, "aft-private", private=True, revision="experiments", commit_message="first")
    assert first["repo_id"] == "tester/aft-private" and first["private"]  # a bare name lands in the token's namespace
    repo = hub_login.repo("tester/aft-private")
    assert repo.private and repo.branches["experiments"] == first["commit_oid"]
    assert [c.title for c in hub_login.history("tester/aft-private")] == ["initial commit"]  # main untouched
    (folder / "results.json").write_text('{"metrics": {}, "final_evaluation": false, "training": {}}')
    second = publish(folder, "tester/aft-private", private=True, revision="experiments", commit_message="second")
    assert second["commit_oid"] != first["commit_oid"]
    history = hub_login.history("tester/aft-private", "experiments")
    assert [c.title for c in history] == ["second", "first", "initial commit"]
    assert history[0].parent == first["commit_oid"]
    on_branch = hub_login.files("tester/aft-private", "experiments")
    assert on_branch["results.json"] == (folder / "results.json").read_bytes()
    assert hub_login.files("tester/aft-private", first["commit_oid"])["results.json"] == (
        checkpoint["folder"] / "results.json").read_bytes()
    # Private: invisible without the token, readable with it.
    url = hub_login.resolve_url("tester/aft-private", "config.json", "experiments")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url)
    assert refused.value.code == 401
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {hub_login.token}"})
    assert urllib.request.urlopen(request).read() == (folder / "config.json").read_bytes()


def test_private_is_refused_for_an_existing_public_repo(checkpoint, hub_login, tmp_path):
    folder = copy_of(checkpoint, tmp_path)
    publish(folder, "tester/aft-public", commit_message="public")
    with pytest.raises(PublishError, match="already exists and is public"):
        publish(folder, "tester/aft-public", private=True, commit_message="meant to be private")
    assert [c.title for c in hub_login.history("tester/aft-public")] == ["public", "initial commit"]


@pytest.mark.parametrize("missing", ["model.safetensors", "config.json", "README.md"])
def test_a_folder_without_weights_config_or_card_is_refused(checkpoint, hub_login, tmp_path, capsys, missing):
    folder = copy_of(checkpoint, tmp_path)
    (folder / missing).unlink()
    seen = len(hub_login.requests)
    with pytest.raises(FileNotFoundError, match=missing.replace("model", r"\*")):
        publish(folder, "tester/refused")
    assert main([str(folder), "tester/refused"]) == 1
    assert missing.replace("model", "*") in capsys.readouterr().err
    assert len(hub_login.requests) == seen


def test_a_wrong_token_is_refused_and_not_shown(checkpoint, hub_login, monkeypatch, capsys):
    wrong = "hf_wrong_" + "x" * 30
    monkeypatch.setenv("HF_TOKEN", wrong)
    seen = len(hub_login.requests)
    assert main([str(checkpoint["folder"]), "tester/never-created"]) == 1
    captured = capsys.readouterr()
    assert "whoami" in captured.err and wrong not in captured.err + captured.out
    assert [(r.auth, r.status) for r in hub_login.requests[seen:] if r.path == "/api/whoami-v2"] == [("invalid", 401)]
    with pytest.raises(KeyError):
        hub_login.repo("tester/never-created")


def test_no_token_is_refused_and_the_saved_login_is_used(checkpoint, hub_login, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(PublishError, match="HF_TOKEN"):
        publish(checkpoint["folder"], "tester/saved-login")
    saved = tmp_path / "token"
    saved.write_text(hub_login.token)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(saved))
    result = publish(checkpoint["folder"], "tester/saved-login")
    assert hub_login.repo("tester/saved-login").branches["main"] == result["commit_oid"]


def test_a_file_holding_the_token_is_refused(checkpoint, hub_login, tmp_path):
    folder = copy_of(checkpoint, tmp_path)
    (folder / "notes.txt").write_text(f"launched with HF_TOKEN={hub_login.token}\n")
    seen = len(hub_login.requests)
    with pytest.raises(ValueError, match="notes.txt contains your Hub token") as refused:
        publish(folder, "tester/leaky")
    assert hub_login.token not in str(refused.value)
    assert len(hub_login.requests) == seen


def closed_port_url() -> str:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_endpoint_overrides_HF_ENDPOINT_and_an_unreachable_hub_is_a_clear_error(checkpoint, hub_login, monkeypatch):
    dead = closed_port_url()
    monkeypatch.setenv("HF_ENDPOINT", dead)
    result = publish(checkpoint["folder"], "tester/by-endpoint", endpoint=hub_login.endpoint)
    assert result["endpoint"] == hub_login.endpoint
    assert hub_login.repo("tester/by-endpoint").branches["main"] == result["commit_oid"]
    with pytest.raises(PublishError, match="checking the token") as failed:
        publish(checkpoint["folder"], "tester/unreachable")  # HF_ENDPOINT, read at call time
    assert hub_login.token not in str(failed.value)


@pytest.mark.parametrize("revision", ["a" * 40, "refs/pr/1"])
def test_a_revision_that_is_not_a_branch_is_refused(checkpoint, hub_login, revision):
    with pytest.raises(ValueError, match="not a branch name"):
        publish(checkpoint["folder"], "tester/x", revision=revision, dry_run=True)


def test_help_names_every_option(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert all(option in out for option in ("--private", "--revision", "--commit-message", "--dry-run", "--endpoint"))
    assert "--token" not in out.replace("no --token option", "")


# --------------------------------------------------------------------------------------------------------------------
# The test Hub itself
# --------------------------------------------------------------------------------------------------------------------


def test_the_test_hub_answers_401_to_a_wrong_or_missing_token_on_writes(hub):
    create = f"{hub.endpoint}/api/repos/create"
    body = json.dumps({"name": "nope"}).encode()
    for headers in ({}, {"Authorization": "Bearer hf_not_the_token"}):
        request = urllib.request.Request(create, data=body, headers={"Content-Type": "application/json", **headers})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request)
        assert refused.value.code == 401
    with pytest.raises(KeyError):
        hub.repo("tester/nope")
    assert publish_module.redact(f"x {hub.token} y", hub.token) == "x <token> y"


# --------------------------------------------------------------------------------------------------------------------
# The trainers' --push-to-hub
# --------------------------------------------------------------------------------------------------------------------

TINY_TRAIN = ["--seq-len", "32", "--batch-size", "4", "--max-steps", "4", "--warmup-steps", "1", "--eval-every", "4",
              "--save-every", "4", "--eval-bytes", "512", "--skip-final-eval", "--sample-bytes", "8", "--no-progress",
              "--no-tensorboard", "--config-overrides",
              "num_hidden_layers=1,hidden_size=16,intermediate_size=32,position_bias_dim=4,max_position_embeddings=32,"
              "local_window=4"]


def test_the_text_trainer_pushes_its_final_folder_with_the_card(hub_login, tmp_path, fresh_accelerate_state):
    from training import train_text

    out = tmp_path / "run"
    metrics = train_text.main(["--output-dir", str(out), "--push-to-hub", "tester/pushed-by-trainer", *TINY_TRAIN])
    files = hub_login.files("tester/pushed-by-trainer", "main")
    assert {"config.json", "model.safetensors", "README.md", "modeling_aft.py", "tokenizer_config.json"} <= set(files)
    card = files["README.md"].decode()
    assert 'from_pretrained("tester/pushed-by-trainer"' in card  # the loading recipes name the repo
    assert f"value: {metrics['bpc']}" in card  # the measured metric in the model-index
    assert (out / "model" / "README.md").read_text() == card
    assert files["model.safetensors"] == (out / "model" / "model.safetensors").read_bytes()


def test_push_to_hub_without_a_token_stops_before_training(hub_login, tmp_path, monkeypatch, capsys,
                                                            fresh_accelerate_state):
    from training import train_text

    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(SystemExit) as exit_info:
        train_text.main(["--output-dir", str(tmp_path / "run"), "--push-to-hub", "tester/x", *TINY_TRAIN])
    assert exit_info.value.code == 2
    assert "no Hub token" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def refused_before_training(argv, tmp_path, capsys) -> str:
    from training import train_text

    err = one_line_error(train_text.main, ["--output-dir", str(tmp_path / "run"), *argv, *TINY_TRAIN], capsys)
    assert not (tmp_path / "run").exists(), "training started"
    return err


def test_push_to_hub_with_a_token_the_hub_refuses_stops_before_training(hub_login, tmp_path, monkeypatch, capsys,
                                                                        fresh_accelerate_state):
    wrong = "hf_" + "w" * 34
    monkeypatch.setenv("HF_TOKEN", wrong)
    err = refused_before_training(["--push-to-hub", "tester/x"], tmp_path, capsys)
    assert f"the Hub at {hub_login.endpoint} refused the token" in err and "HF_TOKEN" in err
    assert wrong not in err
    assert [r.path for r in hub_login.requests if r.auth == "invalid"][-1] == "/api/whoami-v2"


def test_push_to_hub_into_a_namespace_the_token_cannot_write_stops_before_training(hub_login, tmp_path, monkeypatch,
                                                                                   capsys, fresh_accelerate_state):
    from tests.hub_server import json_reply

    err = refused_before_training(["--push-to-hub", "someone-else/x"], tmp_path, capsys)
    assert "tester (the token's user) is not 'someone-else' nor a member of it" in err and "tester/x" in err

    def read_only(auth, **_):
        return json_reply({"type": "user", "name": "tester", "orgs": [{"name": "lab", "roleInOrg": "read"}],
                           "auth": {"type": "access_token", "accessToken": {"displayName": "ro", "role": "read"}}})

    monkeypatch.setattr(hub_login.hub, "whoami", read_only)
    assert "the token of tester is read-only" in refused_before_training(["--push-to-hub", "tester/x"], tmp_path,
                                                                         capsys)


def test_push_to_hub_with_the_hub_out_of_reach_stops_before_training(hub_login, tmp_path, monkeypatch, capsys,
                                                                    fresh_accelerate_state):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    err = refused_before_training(["--push-to-hub", "tester/x"], tmp_path, capsys)
    assert f"the Hub at {endpoint} cannot be reached" in err and "python -m training.publish" in err
    assert hub_login.token not in err
