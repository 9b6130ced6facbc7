# Two commands set everything up on a fresh machine:
#   make run   -> creates .venv (first time only), installs the pinned set, runs `dvc repro`
#   make test  -> same set-up, then the fast test tier on 2 worker processes (<= 3 minutes on 2 cores)
#   make docs  -> the documentation site (Sphinx + MyST) into docs/_build/html, warnings as errors
#   make test-all -> every test: slow real runs, integration (dvc repro, mlflow run) and the browser test of the
#                    MLflow UI (Chromium installed by scripts/setup-browser.sh when missing); what CI runs
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help run test test-all lint docs ui server server-stop browser bench clean

help:
	@echo "make run      - set up .venv and run the pipeline (dvc repro)"
	@echo "make test     - set up .venv and run the fast test tier (slow and integration tests excluded)"
	@echo "make test-all - every test, slow and integration included (what CI runs), then the linters"
	@echo "make docs     - the documentation site (Sphinx, warnings are errors) into docs/_build/html"
	@echo "make ui       - MLflow UI on http://127.0.0.1:5000 for this project's runs (prints the runs page URL)"
	@echo "make server   - team tracking server: PostgreSQL + mlflow server with login (.server/admin-password) on http://127.0.0.1:5001 (Ctrl-C stops)"
	@echo "make server-stop - stop the server that 'make server' runs"
	@echo "make browser  - install Debian's Chromium for the browser tests (make test-all does it)"
	@echo "make bench    - stage benchmarks (see benchmarks/RESULTS.md)"

# Reinstalls only when the lock or the package metadata changed. The pinned set goes in with uv (a PyPI wheel, pinned
# here): the same packages and versions as pip's install, the lock in 9-13 s instead of pip's 56 s with empty caches
# (benchmarks/RESULTS.md, "make run", 2026-12-05), ~3 s once uv's cache (~/.cache/uv) is warm. uv byte-compiles
# nothing; Python compiles the modules a stage imports on first use. --native-tls: the system's certificate store, as pip here. uv does not read
# pip's configuration (a lab's package mirror in pip.conf): where uv fails, pip installs the same set, and says so.
UV_PIN := uv==0.13.9
UV := $(BIN)/uv pip install --quiet --native-tls --python $(BIN)/python
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) $(UV_PIN)
	$(UV) -r requirements.lock || { echo "make: uv could not install requirements.lock (above); pip installs it"; \
		$(PIP) -r requirements.lock; }
	$(UV) --no-deps -e . || { echo "make: uv could not install mtt (above); pip installs it"; $(PIP) --no-deps -e .; }
	@touch $@

run: $(STAMP)
	$(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow and not integration"

# On pytest-xdist's two worker processes, as the fast tier: 15 min instead of 28 in one process (2026-12-05); every
# test that starts a server takes a free port, and the long integration tests carry their own timeouts
test-all: $(STAMP) browser
	$(BIN)/python -m pytest -n 2
	$(MAKE) lint
	$(MAKE) docs

# The documentation site: every warning (a broken link or cross-reference, an unknown param) is an error
docs: $(STAMP)
	$(BIN)/sphinx-build -n -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

ui: $(STAMP)
	$(BIN)/mtt ui

# The team tracking server (scripts/server.sh): PostgreSQL (installed by scripts/setup-postgres.sh when missing)
# and mlflow server with a proxied artifact store and MLflow's basic-auth app (every client logs in; the admin's
# password is generated into .server/admin-password), everything under .server/. In the foreground; options of
# mlflow server through SERVER_ARGS, e.g. make server SERVER_ARGS="--host 0.0.0.0 --allowed-hosts mlflow.lab.org:5001"
server: $(STAMP)
	bash scripts/server.sh start $(SERVER_ARGS)

server-stop:
	bash scripts/server.sh stop

# Debian's Chromium for the browser tests (only when missing)
browser:
	bash scripts/setup-browser.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_simulate.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
