# pushgate: `make run` sets up and serves the gateway on its embedded default (SQLite, local
# peers); `make test` sets up and runs the test suite. Both create .venv on first use; `make setup`
# (and so `make test`) also installs the npm-packaged test peers (Azurite) into node_modules/.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NPM ?= npm

.PHONY: setup run test lint check bench bench-smoke clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -c 'import sys; sys.exit("pushgate needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	@command -v $(NPM) >/dev/null || { echo "pushgate's tests need Node.js and npm (for Azurite, the Azure Blob emulator): install them, e.g. apt-get install nodejs npm" >&2; exit 1; }
	$(NPM) ci --no-audit --no-fund
	touch $@

setup: $(BIN)/.installed node_modules/.installed

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
