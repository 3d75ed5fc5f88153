# aft-transformers. `make demo` and `make test` set up .venv on first use (CPU torch, pinned versions).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="-k ops -x"`.
PYTEST_ARGS ?=
FASHION_MNIST ?= /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: lint setup demo train demo-models train-pixels train-image pretrained pretrained-text pretrained-image \
	pretrained-pixels publish test bench-generation bench-operators bench-train-step clean

setup: $(STAMP)

# The constraints file pins the CPU build of torch (an unpinned torch pulls a 5 GB CUDA build) and the exact library
# versions the tests passed with; setup.cfg keeps the portable ranges.
$(STAMP): setup.cfg pyproject.toml constraints-cpu.txt
	@# Fashion-MNIST, the image trainers' embedded default, is a Debian package (30 MB, /usr/share/datasets).
	test -d $(FASHION_MNIST) || $(SUDO) apt-get install -y --no-install-recommends dataset-fashion-mnist \
		|| ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends dataset-fashion-mnist)
	@# Debian's chromium: the browser Playwright drives in the Gradio demo's test (tests/test_app.py).
	command -v chromium >/dev/null || $(SUDO) apt-get install -y --no-install-recommends chromium \
		|| ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints-cpu.txt -e '.[dev,train,tools,app,export]'
	touch $(STAMP)

# The main job, first contact with AFT: load the shipped checkpoints (pretrained/) through the Auto classes and
# pipelines, stream generated text, classify test images, draw garments with the pixel LM, and measure each model's
# metric again beside the recorded value (about 15 seconds on 2 cores).
demo: $(STAMP)
	$(PY) -m training.showcase

# Train a small AFT-local from scratch on the embedded Wikipedia text (about 4 minutes on 2 cores), evaluate bits
# per character, save runs/wiki-local/model with its card, and print a sample generated from it.
train: $(STAMP)
	$(PY) -m training.train_text --output-dir runs/wiki-local --overwrite-output-dir

# Reproduce a shipped checkpoint: the AFT run, its attention baseline on the same batches, the side-by-side speed
# benchmark, then pretrained/NAME (see the README for each one's wall time). RESUME=--resume continues cut runs.
RESUME ?=
define pretrained_recipe
	$(PY) -m training.train_$(1) --preset $(2) --output-dir runs/$(2)-aft --no-progress $(or $(RESUME),--overwrite-output-dir)
	$(PY) -m training.train_$(1) --preset $(2) --baseline $(3) --output-dir runs/$(2)-$(3) --no-progress $(or $(RESUME),--overwrite-output-dir)
	$(PY) -m benchmarks.side_by_side --preset $(2)
	$(PY) -m training.ship runs/$(2)-aft --baseline-run runs/$(2)-$(3) --name $(4) \
		--speed benchmarks/results/side_by_side_$(2).json
endef
pretrained-text: $(STAMP)
	$(call pretrained_recipe,text,wiki-local-4x256,gpt2,aft-local-wikipedia)
pretrained-image: $(STAMP)
	$(call pretrained_recipe,image,fashion-mnist-conv,vit,aft-conv-fashion-mnist)
pretrained-pixels: $(STAMP)
	$(call pretrained_recipe,pixels,fashion-mnist-pixels-local,gpt2,aft-local-fashion-mnist-pixels)
pretrained: pretrained-text pretrained-image pretrained-pixels

# Publish the three shipped checkpoints to HUB_ORG/<name> (token from HF_TOKEN or `hf auth login`).
publish: $(STAMP)
	@test -n "$(HUB_ORG)" || (echo "error: set HUB_ORG, e.g. make publish HUB_ORG=my-org" >&2; exit 2)
	for name in aft-local-wikipedia aft-conv-fashion-mnist aft-local-fashion-mnist-pixels; do \
		$(PY) -m training.publish pretrained/$$name $(HUB_ORG)/$$name || exit $$?; done

# The Gradio demo (demo/app.py: streamed text, image classification, pixel-LM samples) on http://127.0.0.1:APP_PORT.
APP_PORT ?= 7860
.PHONY: app publish-app
app: $(STAMP)
	$(PY) -m demo.app --port $(APP_PORT)

# Send the demo, with the three shipped checkpoints, to the Space SPACE (token from HF_TOKEN or `hf auth login`).
publish-app: $(STAMP)
	@test -n "$(SPACE)" || (echo "error: set SPACE, e.g. make publish-app SPACE=my-org/aft-demo" >&2; exit 2)
	$(PY) -m demo.publish $(SPACE)

# Build, save, reload and decode one small model of every variant (no training; about 10 s).
demo-models: $(STAMP)
	$(PY) -m training.demo

train-pixels: $(STAMP)
	$(PY) -m training.train_pixels --output-dir runs/fashion-mnist-pixels --overwrite-output-dir

train-image: $(STAMP)
	$(PY) -m training.train_image --output-dir runs/fashion-mnist-conv --overwrite-output-dir

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

# ruff (configured in pyproject.toml): pyflakes' checks, pycodestyle's errors and warnings, import order.
lint: $(STAMP)
	$(PY) -m ruff check .

# Generation speed and memory against GPT-2 (about 8 minutes on 2 cores); writes benchmarks/results/generation.*
bench-generation: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints-cpu.txt -e '.[dev,bench]'
	$(PY) -m benchmarks.generation --out benchmarks/results/generation

# The AFT operators against SDPA attention and aft-pytorch, T = 512 .. 16384 (about 15-30 minutes on 2 cores).
bench-operators: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints-cpu.txt -e '.[dev,bench]'
	$(PY) -m benchmarks.operators --out benchmarks/results/operators

# A training step of every causal AFT against GPT-2 (SDPA) and RWKV at T = 1024, 4096, 16384 (the README's table;
# about 25 minutes on 2 cores).
bench-train-step: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints-cpu.txt -e '.[dev,bench]'
	$(PY) -m benchmarks.train_step --lengths 1024 4096 16384 --out benchmarks/results/train_step

clean:
	rm -rf $(VENV) demo_output runs .pytest_cache
