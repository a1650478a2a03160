# One entry point for tooling: what a developer runs, what .ci/run runs, what the
# README shows.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck schema bench setup services clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## Run vecron on the embedded default with the example job repository (Ctrl-C stops it).
run: $(STAMP)
	$(BIN)/vecron validate jobs-example
	$(BIN)/vecron up jobs-example

## Start what the tests need, then run the whole suite.
test: $(STAMP)
	scripts/test-services.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check vecron tests benchmarks
	$(BIN)/ruff format --check vecron tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

## Regenerate schemas/job.schema.json from the models.
schema: $(STAMP)
	$(BIN)/vecron schema > schemas/job.schema.json

bench: $(STAMP)
	$(BIN)/python benchmarks/validate_bench.py
	$(BIN)/python benchmarks/sync_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
