# The README's two commands: `make run` and `make test`. Everything else is optional.
#
# Installs come from the lock files (pip-compile output with hashes), never from the
# newest versions of the day: requirements-dev.lock for this checkout (runtime, dev
# tools and the build backend), requirements.lock for servers. `make lock` updates
# them after a change of pyproject.toml; `make lock-upgrade` moves every pin to the
# newest release (docs/operations.md, "Installing from the lock").
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_LOCK := requirements-dev.lock
LOCK := requirements.lock
SPOOL ?= demo-spool
PIP_COMPILE = $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --all-build-deps \
	--strip-extras --no-emit-index-url --no-emit-find-links

.PHONY: run test test-slow check lint typecheck imports pytest system-check wheel-check lock lock-upgrade bench schema clean

# --require-hashes --no-deps: exactly what the lock names, nothing resolved today.
# --no-build-isolation: the editable install builds with the locked setuptools.
$(STAMP): $(DEV_LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# WeasyPrint's system libraries: says what to apt-get install when one is missing.
system-check: $(STAMP)
	$(BIN)/python -m spoold.ops.doctor --system

run: $(STAMP) system-check
	test -d $(SPOOL) || $(BIN)/spoold init $(SPOOL)
	cp -R examples/. $(SPOOL)/inbox/
	@echo "spoold: results appear in $(SPOOL)/done/ (and failures in $(SPOOL)/failed/); Ctrl-C stops."
	$(BIN)/spoold run $(SPOOL)

test: $(STAMP) lint typecheck imports pytest

# The fast inner loop (under a minute): static checks and the in-process tests. The
# tests that start daemons, workers or servers (marked `processes`) run in `make test`;
# the long ones (marked `slow`: big documents, corpora, shared-storage mounts, the
# flood and crash-point matrix) in `make test-slow`. CI runs `make test` and `make test-slow`.
check: $(STAMP) lint typecheck imports
	$(BIN)/pytest -q -n auto -m "not processes and not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The package layers of docs/architecture.md, as contracts in pyproject.toml.
imports: $(STAMP)
	$(BIN)/lint-imports

# In parallel: most of the time is spent waiting on daemons and their workers starting,
# so more processes than cores (6 instead of 4 was measured no faster: 467 against
# 449 s of pytest on a fresh clone).
PYTEST_WORKERS ?= 4
SLOW_WORKERS ?= 4
pytest: $(STAMP)
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/pytest -q -n $(SLOW_WORKERS) -m slow $(PYTEST_ARGS)

# The wheel, installed from the lock into a fresh venv, converts a document.
wheel-check: $(STAMP)
	PYTHON=$(PYTHON) BUILD_PYTHON=$(BIN)/python .ci/wheel-check

lock: $(STAMP)
	$(PIP_COMPILE) --extra dev -o $(DEV_LOCK) pyproject.toml
	$(PIP_COMPILE) -c $(DEV_LOCK) -o $(LOCK) pyproject.toml

lock-upgrade: $(STAMP)
	$(PIP_COMPILE) --upgrade --extra dev -o $(DEV_LOCK) pyproject.toml
	$(PIP_COMPILE) -c $(DEV_LOCK) -o $(LOCK) pyproject.toml

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

schema: $(STAMP)
	$(BIN)/python -m spoold.spool.manifest > docs/manifest.schema.json

clean:
	rm -rf $(VENV) $(SPOOL) .pytest_cache .mypy_cache .ruff_cache
