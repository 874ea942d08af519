# webprof: two commands, run as root from a clone (see README.md).
#   make up     set up the machine, then start the dashboard and a local collector
#   make test   set up the machine, then lint and run the whole test suite
#
#   make up HOST=0.0.0.0 PORT=8000     listen elsewhere (passed as --host/--port)
#   make test PYTEST_ARGS='-m unit'    extra pytest arguments
#   make test PG=0                     skip the second run against a throwaway PostgreSQL

SHELL := /bin/bash
VENV := .venv
HOST ?=
PORT ?=
PYTEST_ARGS ?=
# 1: after the SQLite run, run the web tier again on a throwaway PostgreSQL (CI: always).
PG ?= 1

UP_ARGS := $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

.DEFAULT_GOAL := help
.PHONY: help setup up test lint doctor

help:
	@echo "make up      set up (as root) and start webprof: dashboard + local collector"
	@echo "             HOST=... PORT=... choose where the dashboard listens"
	@echo "make test    set up (as root), run ruff and the whole pytest suite"
	@echo "             PYTEST_ARGS='-m unit' (markers: unit, web, e2e, bpf)"
	@echo "             then the web tier again on a throwaway PostgreSQL"
	@echo "             (scripts/pgtest.sh); PG=0 skips that run (quick local iterations)"
	@echo "make setup   only the set-up (scripts/setup.sh)"
	@echo "make doctor  check this machine's eBPF support (webprof doctor)"

setup:
	@bash scripts/setup.sh

up: setup
	exec $(VENV)/bin/webprof up $(UP_ARGS)

# eBPF tests that cannot run must fail here, not skip.
test: export WEBPROF_REQUIRE_BPF := 1
# Tests must not write keys or tokens into a real installation's data directory.
test: export WEBPROF_DATA_DIR := $(shell mktemp -d /tmp/webprof-test.XXXXXX)
test: setup
	$(VENV)/bin/ruff check .
	env -u DATABASE_URL $(VENV)/bin/python -m pytest $(PYTEST_ARGS)
# The database-dependent tier again on PostgreSQL. pgtest.sh sets DATABASE_URL, removes
# its cluster whatever happens and exits with pytest's status. PYTEST_ARGS apply here
# too, but the last -m wins, so this run always selects the web tier.
ifneq ($(PG),0)
	bash scripts/pgtest.sh $(VENV)/bin/python -m pytest $(PYTEST_ARGS) -m web
endif

lint: setup
	$(VENV)/bin/ruff check .

doctor: setup
	$(VENV)/bin/webprof doctor
