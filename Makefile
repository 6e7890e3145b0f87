# qfjobs: `make run` serves the API with a worker, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help install run test lint format typecheck check bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install qfjobs with its dev tools

run: install  ## start Redis if needed, migrate, run the API on :5000 with one worker
	scripts/ensure-redis-server
	$(BIN)/python -m qfjobs.devstack

test: install  ## run the whole test suite (SQLite; PostgreSQL too with QFJOBS_TEST_DATABASE_URL)
	scripts/ensure-redis-server
	$(BIN)/pytest

lint: install  ## ruff lint and format check
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install  ## mypy --strict on the package
	$(BIN)/mypy

check: lint typecheck test  ## everything CI runs

format: install  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:  ## remove the virtualenv and caches (keeps instance/)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
