# The two set-up commands of the README: `make demo` and `make test`.
# Both create the virtualenv and install the project on a fresh machine first.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/nervenbahn demo --reset

test: $(STAMP) lint
	$(BIN)/pytest -n 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/nervenbahn schemas check

bench: $(STAMP)
	$(BIN)/python benchmarks/append.py

clean:
	rm -rf $(VENV) .nervenbahn .pytest_cache .ruff_cache .hypothesis
