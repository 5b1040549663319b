# The two set-up commands of the README: `make demo` and `make test`.
# Both create the virtualenv and install the project on a fresh machine first.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench scale chaos screenshots clean bytecode

# The official AsyncAPI JSON Schemas (npm @asyncapi/specs, pinned in package-lock.json), which
# tests/bus/test_asyncapi.py validates `nervenbahn asyncapi` against.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch node_modules/.installed

# Debian's Chromium, which the browser tests (tests/web) drive with Playwright: Playwright cannot
# download a browser of its own here. We run as root (CI too, from a clean clone); a machine
# that has `chromium` already installs nothing.
CHROMIUM := .chromium.installed
$(CHROMIUM):
	command -v chromium || (apt-get update && apt-get install -y chromium)
	touch $(CHROMIUM)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(MAKE) --no-print-directory bytecode
	touch $(STAMP)

# The project's modules compiled, as pip compiles a wheel's at install; an editable install does
# not. Where PYTHONDONTWRITEBYTECODE is set (this machine, many container images) every command
# would otherwise compile about 60 modules again at start: 200 ms of the CLI's 0.5 s (issue 17).
# A module edited since is recompiled in memory at import, as before.
bytecode:
	$(BIN)/python -m compileall -q domain projections connectors schemas bus nervenbahn

demo: $(STAMP)
	$(BIN)/nervenbahn demo --reset

# Three workers on two cores: the suite waits much of its time on brokers, servers and
# subprocesses (two workers kept the cores 70 % busy). Measured on a fresh clone, one run
# each, 2026-12-07: 1,050 s with two, 916 s with three. (Three were once slower, 23.8 min
# against 20.6, when every worker built the web tests' site and ran a browser of its own;
# the browser tests are one xdist group since.)
test: $(STAMP) node_modules/.installed $(CHROMIUM) lint
	$(BIN)/pytest -n 3 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/nervenbahn schemas check

# The fault suite (issue 12): `serve` killed, its broker gone, poison on the bus, …; one table
# of figures at the end. Not in CI (short versions of some scenarios are ordinary tests).
chaos: $(STAMP)
	$(BIN)/pytest -m chaos -n 0 -s tests/chaos tests/scale

# The web app's screenshots in docs/screenshots/, taken by the browser tests (docs/web.md).
screenshots: $(STAMP) node_modules/.installed $(CHROMIUM)
	NERVENBAHN_SCREENSHOTS=1 $(BIN)/pytest -n 0 tests/web

# Every benchmark, one combined table of the performance goals and benchmarks/out/results.json
# (benchmarks/README.md); about 5 minutes on 2 cores. `make scale`: the store at 30 thousand,
# 300 thousand and 1 million events (about 15 minutes). Neither is part of CI.
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

scale: $(STAMP)
	$(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) node_modules $(CHROMIUM) .nervenbahn .pytest_cache .ruff_cache .hypothesis
