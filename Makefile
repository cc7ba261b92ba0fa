# The README's two commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPOOL ?= demo-spool

.PHONY: run test lint typecheck pytest bench schema clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	test -d $(SPOOL) || $(BIN)/spoold init $(SPOOL)
	cp -R examples/. $(SPOOL)/inbox/
	@echo "spoold: results appear in $(SPOOL)/done/ (and failures in $(SPOOL)/failed/); Ctrl-C stops."
	$(BIN)/spoold run $(SPOOL)

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

schema: $(STAMP)
	$(BIN)/python -m spoold.manifest > docs/manifest.schema.json

clean:
	rm -rf $(VENV) $(SPOOL) .pytest_cache .mypy_cache .ruff_cache
