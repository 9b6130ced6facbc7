# Two commands set everything up on a fresh machine:
#   make run   -> creates .venv (first time only), installs the pinned set, runs `dvc repro`
#   make test  -> same set-up, then the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help run test test-all lint ui bench clean

help:
	@echo "make run      - set up .venv and run the pipeline (dvc repro)"
	@echo "make test     - set up .venv and run the tests (slow ones excluded)"
	@echo "make test-all - all tests, slow ones included"
	@echo "make ui       - MLflow UI on http://127.0.0.1:5000 for this project's runs"
	@echo "make bench    - stage benchmarks (see benchmarks/RESULTS.md)"

# Reinstalls only when the lock or the package metadata changed.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

run: $(STAMP)
	$(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "slow or not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_simulate.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
