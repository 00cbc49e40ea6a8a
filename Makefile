# The two commands a new user runs: `make demo` and `make test`.
# Each creates .venv on first use and installs what it needs: `make demo` the CLI extra,
# `make test` everything (the dev extra), plus .venv-floor with the oldest redis-py we support.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.demo-stamp
DEV_STAMP := $(VENV)/.dev-stamp

# The redis-py floor, read from pyproject.toml's `redis[hiredis]>=X` (declared there once).
REDIS_FLOOR := $(shell sed -n 's/^ *"redis\[hiredis\]>=\([0-9.]*\)",*$$/\1/p' pyproject.toml)
# The suite's processes (pytest-xdist): each worker starts its own servers. 3 keeps a 2-core
# machine busy while one worker waits on a server; 0 runs it in one process.
PYTEST_WORKERS ?= 3
FLOOR_VENV := .venv-floor
FLOOR_STAMP := $(FLOOR_VENV)/.installed-stamp
# A representative part of the suite, run again on the floor: connect(), the kernel's guards,
# read batching and cache-aside on standalone and Cluster (and Sentinel for connect()), both
# faces.
FLOOR_TESTS := tests/async_/test_connection.py tests/sync/test_connection.py \
	tests/async_/test_cache_aside.py tests/sync/test_cache_aside.py tests/test_redis_compat.py \
	tests/async_/test_kernel.py tests/sync/test_kernel.py \
	tests/async_/test_read_batching.py tests/sync/test_read_batching.py

.PHONY: demo test test-floor lint typecheck sync check-sync bench clean python-version

python-version:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "redkit needs Python 3.11 or newer")'

$(BIN)/python: | python-version
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[cli]'
	@touch $(DEMO_STAMP)

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(DEV_STAMP)

$(FLOOR_STAMP): pyproject.toml Makefile | python-version
	@test -n "$(REDIS_FLOOR)" || { echo "no redis[hiredis]>=X floor found in pyproject.toml"; exit 1; }
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOOR_VENV)/bin/python -m pip install --quiet -e '.[test]' 'redis[hiredis]==$(REDIS_FLOOR)'
	@touch $(FLOOR_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/redkit demo

## The whole suite: generated-code drift, lint, types, then the tests on the bundled
## Valkey and, when Debian's redis-server is installed, on Redis as well; then a
## representative part on the oldest redis-py redkit supports.
test: $(DEV_STAMP) check-sync lint typecheck
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS)
	@if command -v redis-server >/dev/null 2>&1; then \
		echo "== again on $$(redis-server --version | cut -d' ' -f1-3) =="; \
		REDKIT_TEST_SERVER=redis $(BIN)/python -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS); \
	else echo "redis-server not installed: suite ran on the bundled Valkey only"; fi
	@$(MAKE) --no-print-directory test-floor

test-floor: $(FLOOR_STAMP)
	@echo "== connection and cache-aside tests on redis-py $$($(FLOOR_VENV)/bin/python -c 'import redis; print(redis.__version__)') (the floor) =="
	$(FLOOR_VENV)/bin/python -m pytest -q -p no:cacheprovider $(FLOOR_TESTS)

check-sync: $(DEV_STAMP)
	$(BIN)/python scripts/gen_sync.py --check

sync: $(DEV_STAMP)
	$(BIN)/python scripts/gen_sync.py

lint: $(DEV_STAMP)
	$(BIN)/ruff check
	$(BIN)/ruff format --check

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

bench: $(DEV_STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(FLOOR_VENV) build *.egg-info src/*.egg-info
