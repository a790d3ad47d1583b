# loraforge: `make run` serves on the embedded defaults, `make test` checks everything.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck imports pytest bench bench-ml clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -e '.[ml,celery,s3,dev]'  # every extra: the tests use them all
	touch $(STAMP)

run: install
	$(BIN)/loraforge serve

lint: install
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

typecheck: install
	$(BIN)/mypy

imports: install
	$(BIN)/lint-imports

pytest: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test: lint typecheck imports pytest

bench: install
	$(BIN)/python -m benchmarks.ingest

bench-ml: install
	$(BIN)/python -m benchmarks.ml

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
