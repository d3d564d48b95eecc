# The README's two commands: `make run` (the service on its embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck pytest smoke model clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy classifier contracts

pytest: $(STAMP)
	$(VENV)/bin/pytest

# Production-like: gunicorn, a worker and beat on PostgreSQL + Redis, the ARC client against the local ledger.
smoke: $(STAMP)
	bash deploy/smoke.sh

test: lint typecheck smoke pytest

# The service on its embedded defaults: SQLite, a private Redis, the local ledger, a funded demo bounty.
run: $(STAMP)
	bash scripts/run-local.sh

# Reproduces the committed default model from one command.
model: $(STAMP)
	$(PY) -m classifier train --out classifier/models/default.npz

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
