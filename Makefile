# One target per lifecycle step. Everything runs in .venv, created on first use.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pip's notes about index folders this machine lacks are noise, not errors.
QUIET_PIP := { grep -v '^WARNING: Location' || true; }

.PHONY: venv stack stack-down sql demo test test-prefect3 unit lint bench image clean

# Prefect 3.9: the same flows and tests in a venv of their own (make test-prefect3).
VENV3 := .venv-prefect3
PY3 := $(VENV3)/bin/python
STAMP3 := $(VENV3)/.installed

# $(1): the venv, $(2): its requirement files. The project itself (nyctaxi and the local stack) goes in
# editable, so imports work from any folder; the BigQuery emulator's DuckDB needs its spatial extension
# installed once, offline.
define install_venv
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install -q $(foreach r,$(2),-r $(r)) 2>&1 | $(QUIET_PIP)
	$(1)/bin/python -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | $(QUIET_PIP)
	$(1)/bin/python -c "from duckdb_extensions import import_extension; import_extension('spatial')"
	touch $(1)/.installed
endef

$(STAMP): requirements.txt requirements-tools.txt requirements-dev.txt pyproject.toml
	@echo "Installing the pinned stack into $(VENV) (Prefect 2.20, the Google clients, the emulators, PostgreSQL): a few minutes the first time."
	$(call install_venv,$(VENV),requirements-dev.txt)

$(STAMP3): requirements-prefect3.txt requirements-tools.txt pyproject.toml
	@echo "Installing the Prefect 3.9 stack into $(VENV3) (requirements-prefect3.txt and the same tools): a few minutes the first time."
	$(call install_venv,$(VENV3),requirements-prefect3.txt requirements-tools.txt)

venv: $(STAMP)

## Start the local stack (Prefect server, GCS emulator, release mirror) and save its blocks.
stack: $(STAMP)
	$(PY) stack/ctl.py up

## Stop what `make stack` (and `make image`) started.
stack-down:
	@if [ -x $(PY) ]; then $(PY) stack/ctl.py down; fi
	@if [ -f .stack/podman/service.pid ]; then bash stack/container/engine.sh down; fi

## psql on the local stack's PostgreSQL, as the flows' role: the tables the flows loaded.
## `make sql SQL="select count(*) from yellow_tripdata"` runs one statement.
sql: $(STAMP)
	@$(PY) stack/ctl.py sql $(if $(SQL),-c "$(SQL)")

## The `zoom` image from ./Dockerfile, with podman behind a Docker API socket (no Docker engine
## needed; the base image is built offline). Prints the DOCKER_HOST for the agent.
image: $(STAMP)
	bash stack/container/engine.sh up
	bash stack/container/engine.sh image

## The course's flows for yellow 2021 months 1 and 2, end to end on the local stack:
## web -> lake -> GCS, GCS -> BigQuery, web -> Postgres; then the row counts in each.
demo: stack
	@echo "The local mirror serves months generated in the TLC's format: 100,000 rows each by default; after make stack-down, NYC_TLC_MIRROR_ROWS=full make stack serves the real sizes."
	source .stack/env && $(PY) flows/parameterized_flow.py --months 1 2 --year 2021 --color yellow
	source .stack/env && $(PY) flows/etl_gcs_to_bq.py --months 1 2 --year 2021 --color yellow
	source .stack/env && for m in 1 2; do $(PY) flows/etl_web_to_postgres.py --year 2021 --month $$m --color yellow; done
	source .stack/env && $(PY) stack/show.py

## The test suite: unit tests and end-to-end tests on a private stack of its own.
test: $(STAMP)
	$(PY) -m pytest

## The same suites on Prefect 3.9 (its own venv; the stack then runs a 3.9 server): what runs on both
## runtimes, plus what only 3.9 has. Tests of Prefect 2's agents and infrastructure blocks are deselected.
test-prefect3: $(STAMP3)
	$(PY3) -m pytest

## The unit tests only: no server is started; seconds.
unit: $(STAMP)
	$(PY) -m pytest tests/unit

## ruff (settings in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .

## The benchmark (not part of the tests): full-size months, on a private stack; about 45 minutes.
bench: $(STAMP)
	$(PY) bench/bench.py

clean: stack-down
	rm -rf .stack data
