# robustlab: `make run` sets everything up and runs the default benchmark; `make test` tests it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: run test data lint format report bench clean-results help check-outputs clean-cache

help:
	@echo "make run     - set up .venv and the data set, then run the default benchmark (dvc repro)"
	@echo "make test    - set up, then run the test suite (unit tests + one smoke pipeline run)"
	@echo "make report  - regenerate figures and reports/index.html from existing tables"
	@echo "make bench   - time the smoke preset, the default benchmark and no-op reruns"
	@echo "make lint    - ruff check"
	@echo "make check-outputs - list damaged outputs that the next run would rebuild"
	@echo "make clean-cache   - empty the trained-model output cache (.snakemake/output-cache)"

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

# One `make run` at a time per checkout: a second one waits for the first to finish (without
# flock, DVC's lock makes it refuse instead).
RUN_LOCK := .dvc/tmp/make-run.lock

run: $(STAMP) data
	@if command -v flock >/dev/null; then \
	    mkdir -p $(dir $(RUN_LOCK)); \
	    flock -n $(RUN_LOCK) true || echo "make run: another 'make run' is running in this checkout; waiting for it to finish" >&2; \
	    flock $(RUN_LOCK) $(BIN)/dvc repro; \
	else $(BIN)/dvc repro; fi

test: $(STAMP) data
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check robustlab stages tests bench
	$(BIN)/ruff format --check robustlab stages tests bench

format: $(STAMP)
	$(BIN)/ruff format robustlab stages tests bench
	$(BIN)/ruff check --fix robustlab stages tests bench

# Redraw the figures and reports/index.html from the existing tables; --allowed-rules keeps
# every other job from running, even when its inputs changed (`make report CONFIG=presets/X.yaml`
# for a preset's grid).
report: $(STAMP)
	$(BIN)/snakemake reports/index.html --forcerun figures report --allowed-rules figures report \
	    $(if $(CONFIG),--configfile $(CONFIG))

bench: $(STAMP) data
	$(BIN)/python bench/pipeline_speed.py

check-outputs: $(STAMP)
	$(BIN)/python scripts/check-outputs --dry-run

clean-cache:
	rm -rf .snakemake/output-cache
