# One target per lifecycle step. Everything runs in .venv (Prefect 2.20, the course's), created on
# first use. PREFECT=3 runs the same targets on Prefect 3.9, in .venv-prefect3 with a stack of its own
# in .stack-prefect3 (a 2.20 server's database cannot go back once 3.9 has migrated it).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
PREFECT ?= 2
ifeq ($(PREFECT),3)
VENV := .venv-prefect3
REQUIREMENTS := requirements-prefect3.txt requirements-tools.txt
export STACK_DIR ?= $(CURDIR)/.stack-prefect3
else
VENV := .venv
REQUIREMENTS := requirements-dev.txt
endif
# The stack's folder: its env file is what a shell sources.
STACK := $(or $(STACK_DIR),$(CURDIR)/.stack)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
UV := $(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY)
# pip's notes about index folders this machine lacks are noise, not errors.
QUIET_PIP := { grep -v '^WARNING: Location' || true; }

.PHONY: venv stack stack-down sql demo gcp-check test test-prefect3 unit lint bench bench-backfill image clean

# uv (requirements-bootstrap.txt) installs the pinned stack: the same packages pip resolves, in
# seconds where pip's resolver takes five minutes per venv; compiled to bytecode as pip does, or
# every process would compile what it imports (Prefect: 4 s more each) where PYTHONDONTWRITEBYTECODE
# is set. The project itself (nyctaxi and the local stack) goes in editable, so imports work from
# any folder; the BigQuery emulator's DuckDB needs its spatial extension installed once, offline.
$(STAMP): $(wildcard requirements*.txt) pyproject.toml
	@echo "Installing the pinned stack into $(VENV) ($(REQUIREMENTS): Prefect $(PREFECT), the Google clients, the emulators, PostgreSQL): a minute the first time."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-bootstrap.txt 2>&1 | $(QUIET_PIP)
	$(UV) $(foreach r,$(REQUIREMENTS),-r $(r))
	$(UV) --no-deps --no-build-isolation -e .
	$(PY) -c "from duckdb_extensions import import_extension; import_extension('spatial')"
	touch $@

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
	source $(STACK)/env && $(PY) flows/parameterized_flow.py --months 1 2 --year 2021 --color yellow
	source $(STACK)/env && $(PY) flows/etl_gcs_to_bq.py --months 1 2 --year 2021 --color yellow
	source $(STACK)/env && for m in 1 2; do $(PY) flows/etl_web_to_postgres.py --year 2021 --month $$m --color yellow; done
	source $(STACK)/env && $(PY) stack/show.py

## Check the Google Cloud set-up the saved blocks name, before the first run (blocks/gcp_check.py).
gcp-check: $(STAMP)
	$(PY) blocks/gcp_check.py

## The test suite: unit tests and end-to-end tests, on TEST_WORKERS workers (pytest-xdist), each
## with a private stack of its own; a test file runs whole on one worker (its module fixtures once).
TEST_WORKERS ?= 3
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

## The same suites on Prefect 3.9 (its own venv; the stack then runs a 3.9 server): what runs on both
## runtimes, plus what only 3.9 has. Tests of Prefect 2's agents and infrastructure blocks are deselected.
test-prefect3:
	$(MAKE) test PREFECT=3

## The unit tests only: no server is started; seconds.
unit: $(STAMP)
	$(PY) -m pytest tests/unit

## ruff (settings in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .

## The benchmark (not part of the tests): full-size months, on a private stack; about 45 minutes.
bench: $(STAMP)
	$(MAKE) venv PREFECT=3  # part 7 runs the same flows on Prefect 3.9 beside 2.20
	$(UV) -r requirements-bench.txt  # part 8's peers
	$(PY) bench/bench.py

## The whole backfill (62 full-size months) against raw tools: about 25 minutes, 35 GB of free disk
## (checked first); the generated months are kept in ~/.cache/nyctaxi-bench (NYC_TLC_BENCH_CACHE).
bench-backfill: $(STAMP)
	$(PY) bench/bench.py --only full-backfill

clean: stack-down
	@# The other runtime's stack too, before its folder goes.
	@if [ -x .venv-prefect3/bin/python ] && [ -d .stack-prefect3 ]; then \
		STACK_DIR=$(CURDIR)/.stack-prefect3 .venv-prefect3/bin/python stack/ctl.py down; fi
	rm -rf .stack .stack-prefect3 data
