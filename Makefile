# pushgate: `make run` sets up and serves the gateway on its embedded default (SQLite, local
# peers); `make test` sets up and runs the test suite. Both create .venv on first use; `make setup`
# (and so `make test`) also installs the npm-packaged test peers (Azurite) into node_modules/.
# Python packages come from the locks requirements.txt (runtime) and requirements-dev.txt (runtime,
# tests, lint), which pin the whole tree with hashes; people edit requirements.in and
# requirements-dev.in, then `make lock` writes the locks again (see the lock target).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NPM ?= npm

.PHONY: setup lock run test lint check bench bench-smoke clean

$(BIN)/.installed: requirements-dev.txt
	$(PYTHON) -c 'import sys; sys.exit("pushgate needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	@# An existing .venv is kept: re-created by another python3 after a lock change, it would
	@# mix that interpreter's standard library with the packages installed for the first one.
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	@command -v $(NPM) >/dev/null || { echo "pushgate's tests need Node.js and npm (for Azurite, the Azure Blob emulator): install them, e.g. apt-get install nodejs npm" >&2; exit 1; }
	$(NPM) ci --no-audit --no-fund
	touch $@

setup: $(BIN)/.installed node_modules/.installed

# Compile the locks from the .in files: requirements.txt from requirements.in, then
# requirements-dev.txt from requirements-dev.in, constrained to requirements.txt so both resolve to
# the same versions. The locks are for Python 3.11+ on Linux: run it with .venv on Python 3.11, the
# oldest supported (the resolver reads markers for .venv's Python); each pin carries the hashes of
# every file of its version, so the wheels of newer Pythons install too. Pins already in a lock
# stay unless an input asks otherwise; `make lock LOCK_ARGS=--upgrade` moves every package to its
# newest release, `make lock LOCK_ARGS='--upgrade-package NAME'` one package.
LOCK_ARGS ?=
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --strip-extras \
	--allow-unsafe --no-emit-index-url --no-emit-find-links $(LOCK_ARGS)

lock: $(BIN)/.installed
	$(PIP_COMPILE) --output-file requirements.txt requirements.in
	$(PIP_COMPILE) --output-file requirements-dev.txt requirements-dev.in

run: $(BIN)/.installed
	BIN=$(BIN) scripts/run-local.sh

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test

bench: setup
	$(BIN)/python bench/registration.py

# Every benchmark at its tiniest sizes: still runs, still verifies its results (figures not judged).
bench-smoke: setup
	$(BIN)/python bench/smoke.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
