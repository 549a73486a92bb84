# The README's commands. Each works from a fresh clone: `make run`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck unit clean

install: $(STAMP)

# Reinstall when the dependency list changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/authority init
	$(BIN)/authority demo
	$(BIN)/authority serve --host 127.0.0.1 --port 8000

lint: install
	$(BIN)/ruff check authority tests bench migrations/env.py
	$(BIN)/ruff format --check authority tests bench migrations/env.py

typecheck: install
	$(BIN)/mypy

# Every test, on SQLite and (when reachable; always in CI) PostgreSQL.
test: install lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
