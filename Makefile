# robustlab: `make run` sets everything up and runs the default benchmark; `make test` tests it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test data lint format report bench clean-results help

help:
	@echo "make run     - set up .venv and the data set, then run the default benchmark (dvc repro)"
	@echo "make test    - set up, then run the test suite (unit tests + one smoke pipeline run)"
	@echo "make report  - regenerate figures and reports/index.html from existing tables"
	@echo "make bench   - time the smoke preset, the default benchmark and no-op reruns"
	@echo "make lint    - ruff check"

$(STAMP): pyproject.toml requirements.lock requirements-nodeps.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@
	@echo "environment ready in $(VENV)"

data: $(STAMP)
	@scripts/install-data

run: $(STAMP) data
	$(BIN)/dvc repro

test: $(STAMP) data
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check robustlab stages tests bench
	$(BIN)/ruff format --check robustlab stages tests bench

format: $(STAMP)
	$(BIN)/ruff format robustlab stages tests bench
	$(BIN)/ruff check --fix robustlab stages tests bench

report: $(STAMP)
	$(BIN)/snakemake --forcerun figures report

bench: $(STAMP) data
	$(BIN)/python bench/pipeline_speed.py
