# `make run` starts ctlens's main job, `make test` runs every check.
# Each creates .venv when missing and installs what it needs (idempotent).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ctlens-installed
# The web viewer's NiiVue module, installed by npm from web/package-lock.json and served from /static/vendor.
VENDOR := src/ctlens/api/static/vendor
VIEWER := $(VENDOR)/niivue.js
DATA ?= ../shared/data
export CTLENS_DATA_DIR ?= $(abspath $(DATA))

.PHONY: run test lint venv viewer bench clean fuzz

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

# No CDN at run time: npm installs the pinned @niivue/niivue, its ES module bundle is copied next to the page.
# Without npm the rest still builds; the page then says the viewer is missing and the browser tests skip.
$(VIEWER): web/package-lock.json web/package.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix web --no-audit --no-fund --loglevel=error && \
		mkdir -p $(VENDOR) && \
		cp web/node_modules/@niivue/niivue/dist/index.js $(VIEWER).tmp && mv $(VIEWER).tmp $(VIEWER); \
	else \
		echo "ctlens: npm not found: the web viewer (NiiVue) is not installed; install Node.js + npm and run make again"; \
	fi

viewer: $(VIEWER)

venv: $(STAMP) $(VIEWER)

run: $(STAMP) $(VIEWER)
	$(BIN)/ctlens serve --create-key

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

test: lint $(VIEWER)
	$(BIN)/python -m pytest -n 2 src tests

# Fuzz every reader FUZZ_SECONDS each (docs/fuzzing.md); corpus and findings go to CTLENS_FUZZ_DIR (/tmp/ctlens-fuzz).
# FUZZ_ENGINE=atheris for coverage-guided mutation (installs atheris; hypothesis alone needs nothing more).
FUZZ_SECONDS ?= 60
FUZZ_ENGINE ?= hypothesis
fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet --only-binary=atheris coverage $(if $(filter atheris,$(FUZZ_ENGINE)),atheris)
	$(BIN)/python scripts/fuzz.py --seconds $(FUZZ_SECONDS) --engine $(FUZZ_ENGINE)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_io.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache web/node_modules $(VENDOR)
