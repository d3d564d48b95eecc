# The README's two commands: `make run` (the service on its embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Every package .venv gets, pinned with the sha256 of each of its files on PyPI: the service, the dev extra,
# pip itself. production.lock has the same pins without the dev extra (for the Dockerfile and hosts).
# `make lock` writes both.
LOCK := requirements/dev.lock
PRODUCTION_LOCK := requirements/production.lock
# uv (writes the locks) and pip-audit (`make audit`) live in a venv of their own, never in .venv.
TOOLS := .cache/tools
UV_VERSION := 0.13.9
PIP_AUDIT_VERSION := 2.10.1
# Not a dependency of the service, yet locked too: the pip that installs the rest (25.3: CVE-2025-8869).
LOCK_ALSO := pip>=25.3
# The one machine kind the locks are resolved for; the hashes cover every file of each pinned release.
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-unknown-linux-gnu
# `make lock` keeps the current pins where pyproject.toml still allows them; to move them:
# make lock LOCK_FLAGS=--upgrade, or LOCK_FLAGS='--upgrade-package django'.
LOCK_FLAGS ?=
COMPILE = $(TOOLS)/bin/uv pip compile --quiet --no-config --index-url https://pypi.org/simple $(LOCK_TARGET) \
	--generate-hashes --custom-compile-command 'make lock'

.PHONY: run test lint typecheck pytest smoke model clean lock audit

# Only what the lock names, each file checked against its hash; then the project itself, which has no hash,
# without its dependencies and built by the locked setuptools; pip check fails when pyproject.toml asks for a
# package the lock lacks (run `make lock`).
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

$(TOOLS)/.installed: Makefile
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet 'uv==$(UV_VERSION)' 'pip-audit==$(PIP_AUDIT_VERSION)'
	touch $@

# From PyPI only, whatever indexes pip is configured with: uv reads no pip configuration.
lock: $(TOOLS)/.installed
	printf '%s\n' '$(LOCK_ALSO)' | $(COMPILE) $(LOCK_FLAGS) --extra dev -o $(LOCK) pyproject.toml -
	printf '%s\n' '$(LOCK_ALSO)' | $(COMPILE) -c $(LOCK) -o $(PRODUCTION_LOCK) pyproject.toml -

# Known advisories for every pinned package, from PyPI: needs the network; not part of `make test`.
# --strict fails when a package cannot be looked up, rather than passing it unchecked.
audit: $(TOOLS)/.installed
	$(TOOLS)/bin/pip-audit --strict --disable-pip --require-hashes -r $(LOCK)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy classifier contracts bounty

# pytest and smoke run through scripts/test-services.sh: the PostgreSQL and Redis on their usual ports when
# they answer, otherwise private ones it starts (and installs) and stops afterwards. `make test` starts them
# once for both: the inner calls find them answering.
pytest: $(STAMP)
	bash scripts/test-services.sh $(VENV)/bin/pytest

# Production-like: gunicorn, a worker and beat on PostgreSQL + Redis, the ARC client against the local ledger.
smoke: $(STAMP)
	bash scripts/test-services.sh bash deploy/smoke.sh

test: lint typecheck
	bash scripts/test-services.sh $(MAKE) --no-print-directory smoke pytest

# The service on its embedded defaults: SQLite, a private Redis, the local ledger, a funded demo bounty.
run: $(STAMP)
	bash scripts/run-local.sh

# Reproduces the committed default model from one command.
model: $(STAMP)
	$(PY) -m classifier train --out classifier/models/default.npz

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
