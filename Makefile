# `make run` starts ctlens's main job, `make test` runs every check.
# Each creates .venv when missing and installs what it needs (idempotent).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ctlens-installed
DATA ?= ../shared/data
export CTLENS_DATA_DIR ?= $(abspath $(DATA))

.PHONY: run test lint venv bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch is pinned to the CPU build first (an unpinned torch pulls a multi-GB CUDA build);
# Debian's chromium, chromedriver and redis-server for the browser and Redis tests: scripts/system-deps.sh.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[all]'
	@bash scripts/system-deps.sh
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/ctlens serve --create-key

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -n 2 src tests

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_io.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
