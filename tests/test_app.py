# Copyright 2026 The aft-transformers Authors. Licensed under the Apache License, Version 2.0.
"""The Gradio demo (demo/app.py) and its Space publisher (demo/publish.py), on the three shipped checkpoints.

The functions behind the tabs are checked against the models' own `generate` and forward; the served app through
gradio_client and through a real browser (Playwright driving Debian's chromium, headless); the publisher against the
loopback test Hub, after which the uploaded Space runs from its own files with the checkout out of reach.
"""

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from PIL import Image

from demo import publish as space_publish
from demo.app import Models, build_demo, classify, draw_samples, generate_text, to_fashion_mnist_look
from tests.helpers import HUB_VARIABLES, hub_env
from tests.hub_server import HubServer
from training.data_images import load_fashion_mnist
from training.train_pixels import sample_images

REPO_ROOT = Path(__file__).resolve().parent.parent
PROMPT = "The city of "
TEST_IMAGES = 8  # the first Fashion-MNIST test images


@pytest.fixture(scope="module")
def models():
    return Models.load()


@pytest.fixture(scope="module")
def fashion_images():
    """The first test images as the grey PIL pictures a user would upload, with their labels."""
    test = load_fashion_mnist().valid
    return [(Image.fromarray(test[i][0][0].numpy()), int(test[i][1])) for i in range(TEST_IMAGES)]


def greedy_text(models, prompt: str, max_new_tokens: int) -> str:
    """What the text model's own generate() gives, greedy, decoded after the prompt."""
    ids = models.tokenizer(prompt, return_tensors="pt").input_ids  # (1, T)
    out = models.text_model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=max_new_tokens, pad_token_id=0)  # (1, T + new)
    return prompt + models.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def top_class_of_forward(models, image) -> str:
    """The classifier's top class computed without demo.app: processor, forward, argmax."""
    with torch.no_grad():
        pixels = models.processor(images=image, return_tensors="pt").pixel_values  # (1, 1, 28, 28)
        return models.image_model.config.id2label[int(models.image_model(pixel_values=pixels).logits.argmax())]


# --------------------------------------------------------------------------------------------------------------------
# The functions behind the tabs
# --------------------------------------------------------------------------------------------------------------------


def test_the_stream_starts_at_the_prompt_and_grows(models):
    texts = list(generate_text(models.text_model, models.tokenizer, PROMPT, max_new_tokens=60, seed=3))
    assert texts[0] == PROMPT
    assert all(later.startswith(earlier) for earlier, later in zip(texts, texts[1:]))
    assert len(set(texts)) > 5, "the text arrived in fewer than 5 pieces: it is not streamed"
    assert len(texts[-1].encode()) == len(PROMPT) + 60  # bytes: the tokenizer is byte-level


def test_the_greedy_stream_equals_generate(models):
    texts = list(generate_text(models.text_model, models.tokenizer, PROMPT, max_new_tokens=80, do_sample=False,
                               temperature=0.1, top_k=3, seed=123))  # sampling settings must not leak into greedy
    assert texts[-1] == greedy_text(models, PROMPT, 80)


def test_a_seed_repeats_its_sample_and_another_seed_does_not(models):
    def sample(seed):
        return list(generate_text(models.text_model, models.tokenizer, PROMPT, max_new_tokens=40, seed=seed))[-1]

    assert sample(5) == sample(5)
    assert sample(5) != sample(6)


def test_the_continuation_stops_at_the_position_limit_and_a_too_long_prompt_is_refused(models):
    limit = models.text_model.config.max_position_embeddings
    prompt = "a" * (limit - 10)
    text = list(generate_text(models.text_model, models.tokenizer, prompt, max_new_tokens=100, do_sample=False))[-1]
    assert len(text.encode()) == limit
    with pytest.raises(ValueError, match=f"at most {limit - 1}"):
        next(generate_text(models.text_model, models.tokenizer, "a" * limit))
    with pytest.raises(ValueError, match="empty"):
        next(generate_text(models.text_model, models.tokenizer, ""))


def test_classify_gives_the_models_own_top_class(models, fashion_images):
    right = 0
    for image, label in fashion_images:
        scores = classify(models.image_model, models.processor, image)
        assert len(scores) == 5 and list(scores.values()) == sorted(scores.values(), reverse=True)
        assert 0.0 < sum(scores.values()) <= 1.0 + 1e-6
        assert next(iter(scores)) == top_class_of_forward(models, image)
        right += next(iter(scores)) == models.image_model.config.id2label[label]
    assert right >= TEST_IMAGES - 2, f"{right} of {TEST_IMAGES} right; the card says 86.8% top-1"


def test_a_drawing_or_a_dark_on_light_photo_is_seen_as_fashion_mnist_sees_it(models, fashion_images):
    image, _ = fashion_images[0]
    garment = torch.tensor(list(image.get_flattened_data()), dtype=torch.uint8).reshape(28, 28)
    photo = Image.fromarray((255 - garment).numpy()).convert("RGB")  # dark garment on white
    drawing = Image.merge("RGBA", [image, image, image, image.point(lambda v: 255 if v else 0)])  # strokes, clear
    expected = list(image.get_flattened_data())
    assert list(to_fashion_mnist_look(photo).get_flattened_data()) == expected
    assert list(to_fashion_mnist_look({"composite": drawing, "layers": []}).get_flattened_data()) == expected
    with pytest.raises(ValueError, match="upload a picture or draw"):
        to_fashion_mnist_look({"composite": None})


def test_draw_samples_are_the_trainers_samples_in_a_grid(models):
    shape = (1, 6, 5)  # a small, non-square canvas: 30 steps instead of 784, and rows and columns cannot swap
    images, grid = draw_samples(models.pixel_model, shape, count=3, seed=1)
    assert images.shape == (3, 1, 6, 5) and images.dtype == torch.uint8
    assert torch.equal(images, sample_images(models.pixel_model, 3, shape, 1))
    assert grid.size == (3 * (5 + 2) * 4, 1 * (6 + 2) * 4)  # 3 columns, 1 row, 2-pixel gaps, enlarged 4 times
    assert models.pixel_shape == (1, 28, 28)


# --------------------------------------------------------------------------------------------------------------------
# The served app: gradio_client and a real browser
# --------------------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(models):
    demo = build_demo(models).queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def test_gradio_client_generates_and_classifies(served, models, fashion_images, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(served, verbose=False)
    assert {"/generate", "/classify", "/classify_drawing", "/draw"} <= set(client.view_api(print_info=False,
                                                                                         return_format="dict")
                                                                         ["named_endpoints"])
    text = client.predict(PROMPT, 50, 0.8, 40, 1.0, False, 0, api_name="/generate")
    assert text == greedy_text(models, PROMPT, 50)
    image, _ = fashion_images[1]
    image.save(tmp_path / "garment.png")
    label = client.predict(handle_file(str(tmp_path / "garment.png")), api_name="/classify")
    assert label["label"] == top_class_of_forward(models, image)
    # A drawing arrives as the sketchpad's value: light strokes over a transparent layer, the composite as a file.
    garment, _ = fashion_images[0]
    strokes = garment.point(lambda v: 255 if v else 0)
    drawing = Image.merge("RGBA", [garment, garment, garment, strokes]).resize((280, 280), Image.NEAREST)
    drawing.save(tmp_path / "drawing.png")
    editor = {"background": None, "layers": [], "composite": handle_file(str(tmp_path / "drawing.png"))}
    label = client.predict(editor, api_name="/classify_drawing")
    assert label["label"] == top_class_of_forward(models, to_fashion_mnist_look(drawing))


def chromium_path() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if found is None:
        pytest.fail("Debian's chromium is not installed (the browser test drives it through Playwright): run "
                    "`make setup`, or `apt-get install -y --no-install-recommends chromium`.")
    return found


# Records every value the output box takes, from before the click until the stream ends, in the page itself.
WATCH_OUTPUT = """() => {
    window.seen = [];
    const box = document.querySelector('#output textarea');
    const poll = () => { if (window.seen.at(-1) !== box.value) window.seen.push(box.value); };
    window.watcher = setInterval(poll, 5);
}"""


def test_a_browser_streams_text_and_classifies_an_uploaded_picture(served, models, fashion_images, tmp_path):
    from playwright.sync_api import sync_playwright

    image, _ = fashion_images[0]
    picture = tmp_path / "ankle-boot.png"
    image.resize((112, 112), Image.NEAREST).save(picture)
    prompt, new = "The history of ", 200
    expected = greedy_text(models, prompt, new)
    with sync_playwright() as playwright:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []  # chromium refuses to run as root inside its sandbox
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(served)
            page.fill("#prompt textarea", prompt)
            page.get_by_label("Sample (off: greedy)").uncheck()
            page.evaluate(WATCH_OUTPUT)
            page.click("#generate")
            page.wait_for_function(f"document.querySelector('#output textarea').value.length >= {len(expected)}",
                                   timeout=30_000)
            time.sleep(0.2)
            seen = [text for text in page.evaluate("() => { clearInterval(window.watcher); return window.seen; }")
                    if text]
            assert seen[-1] == expected
            assert seen[0].startswith(prompt) and len(seen[0]) < len(expected)
            assert len(seen) >= 3, f"the page showed {len(seen)} values: the text did not grow while generated"
            assert all(later.startswith(earlier) for earlier, later in zip(seen, seen[1:]))

            page.get_by_role("tab", name="Classify (AFT-conv)").click()
            page.set_input_files("#upload input[type=file]", str(picture))
            page.wait_for_selector("#upload img")
            page.click("#classify")
            top = page.wait_for_selector("#label [data-testid=label-output-value]", timeout=20_000)
            assert top.inner_text().strip() == top_class_of_forward(models, image.resize((112, 112), Image.NEAREST))
            shot = tmp_path / "app.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
        finally:
            browser.close()


# --------------------------------------------------------------------------------------------------------------------
# Publishing to a Space
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with HubServer(user="tester") as server:
        for key in HUB_VARIABLES:
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("HF_TOKEN", server.token)
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # read at import; this Hub takes no Xet
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_saved_token"))
        yield server


# Runs in the downloaded Space with nothing of the checkout importable: the Space's own files must be enough. The
# model classes come from the Space's modeling_aft/ (imported with the pixel sampler; transformers 5 prefers a
# registered class to a folder's copy of the same code, even with trust_remote_code=True).
RUN_SPACE = textwrap.dedent(
    """
    import inspect
    import sys
    import app
    from pathlib import Path
    models = app.Models.load()
    here = Path.cwd().resolve()
    outside = [name for name, module in sys.modules.items() if name.split(".")[0] in ("training", "modeling_aft")
               and not Path(module.__file__).resolve().is_relative_to(here)]
    assert not outside, f"imported from outside the Space: {outside}"
    for model in (models.text_model, models.image_model, models.pixel_model):
        assert Path(inspect.getfile(type(model))).resolve().is_relative_to(here), inspect.getfile(type(model))
    print(list(app.generate_text(models.text_model, models.tokenizer, "The city of ", 30, do_sample=False))[-1])
    """
)


def test_publish_sends_a_space_that_runs_from_its_own_files(hub, models, capsys, tmp_path):
    assert space_publish.main(["tester/aft-demo", "--private"]) == 0
    out, err = capsys.readouterr()
    assert hub.token not in out + err and "commit" in out and "error" not in err  # err: upload progress bars
    files = hub.files("spaces/tester/aft-demo")
    for name in space_publish.SPACE_FILES:
        assert files[name] == (REPO_ROOT / "demo" / name).read_bytes()
    for name in space_publish.MODELS:
        for local in (REPO_ROOT / "pretrained" / name).iterdir():
            assert files[f"models/{name}/{local.name}"] == local.read_bytes()
    assert "models/aft-local-wikipedia/model.safetensors" in hub.lfs_paths("spaces/tester/aft-demo")
    assert hub.repo("spaces/tester/aft-demo").private and hub.unknown == []
    card = files["README.md"].decode()
    assert "sdk: gradio" in card and "app_file: app.py" in card and "sdk_version: 6.31.0" in card
    assert "gradio==6.31.0" in files["requirements.txt"].decode()  # the Space's gradio is the one the card names

    space = tmp_path / "space"
    for path, data in files.items():
        (space / path).parent.mkdir(parents=True, exist_ok=True)
        (space / path).write_bytes(data)
    env = hub_env(hub, tmp_path / "hf_home", token=None)
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH="")
    for variable in ("AFT_TEXT_MODEL", "AFT_IMAGE_MODEL", "AFT_PIXEL_MODEL"):
        env.pop(variable, None)
    run = subprocess.run([sys.executable, "-c", RUN_SPACE], cwd=space, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == greedy_text(models, PROMPT, 30)


def test_publish_errors_are_one_line_without_the_token(hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_token_for_the_test")
    assert space_publish.main(["tester/aft-demo"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and err.count("\n") == 1 and "hf_wrong_token_for_the_test" not in out + err
    monkeypatch.delenv("HF_TOKEN")
    assert space_publish.main(["tester/aft-demo"]) == 2
    assert "no Hub token found" in capsys.readouterr().err
    assert space_publish.main(["not a repo id"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert hub.hub.repos == {}  # nothing was created


def test_a_dry_run_lists_the_space_and_contacts_nothing(hub, capsys):
    assert space_publish.main(["tester/aft-demo", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for path in ("app.py", "requirements.txt", "training/train_pixels.py", "modeling_aft/ops.py",
                 "models/aft-conv-fashion-mnist/model.safetensors"):
        assert f"  {path}\n" in out + "\n"
    assert hub.requests == []


def test_make_app_serves_on_loopback_port_7860_by_default():
    dry = subprocess.run(["make", "-n", "app"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
    assert "-m demo.app --port 7860" in dry
    from demo.app import parse_args

    args = parse_args([])
    assert (args.host, args.port) == ("127.0.0.1", 7860) or "GRADIO_SERVER_PORT" in os.environ


def test_a_model_path_that_is_no_folder_is_one_error_line(capsys):
    from demo.app import main

    assert main(["--text-model", "/nonexistent/aft-local-wikipedia"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--text-model or AFT_TEXT_MODEL" in err
