# The runbook's everyday commands. `make help` lists them; every target works from a fresh clone.
#
#   make phase1 APP_DIR=~/src/app     run phase 1 against your app repository
#   make test                         the whole test suite (engine tests skip without a Docker engine)

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.PHONY: help install provision test test-fast lint phase1 docs

VENV := .venv
STAMP := $(VENV)/.install-stamp
IMAGES_ENV := .work/images.env
# The first Python that is 3.11 or newer (override: make install PYTHON=/path/to/python3.12).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
# Extra arguments: make test ARGS="-k compose", make phase1 ARGS="--dry-run"
ARGS ?=
# Test workers (pytest-xdist): one per core and one more, since the suite waits (on containers, kernels,
# sockets, image builds, which take turns) as well as computes. Two per core was faster still on 2 cores, but
# the timing-sensitive tests (a droplet container's boot, JupyterLab in a browser) then failed now and then.
# auto = one per core; 0 runs the tests in this process, one after another. What runs together on one
# worker (the notebooks, an engine module's tests) is conftest.py's work_unit.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))
PARALLEL := -n $(TEST_WORKERS)

# Export the service images chosen by `scripts/provision.sh images` (POSTGRES_IMAGE=..., REDIS_IMAGE=...),
# unless the environment already sets them.
define load_images_env
if [[ -f $(IMAGES_ENV) ]]; then \
	while IFS='=' read -r key value; do \
		[[ -z "$$key" || "$$key" == \#* ]] && continue; \
		[[ -n "$${!key:-}" ]] || export "$$key=$$value"; \
	done < $(IMAGES_ENV); \
fi
endef

help: ## list the targets
	@echo "usage: make TARGET [APP_DIR=...] [ARGS=...]"
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z0-9-]+):.*## (.*)/  \1\t\2/' | expand -t 14

install: $(STAMP) ## create .venv (Python 3.11+) and install the runbook with its dev tools

$(STAMP): pyproject.toml
	@if [[ ! -x $(VENV)/bin/python ]]; then \
		if [[ -z "$(PYTHON)" ]]; then \
			echo "make install: no Python 3.11 or newer found (install python3.11, or make install PYTHON=...)" >&2; \
			exit 1; \
		fi; \
		echo "creating $(VENV) with $(PYTHON)"; \
		$(PYTHON) -m venv $(VENV); \
		$(VENV)/bin/python -m pip install -q --upgrade pip; \
	fi
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	@touch $@

provision: ## Docker engine, compose plugin and service images (scripts/provision.sh; the browser: provision.sh browser)
	scripts/provision.sh engine compose images

test: install ## run the tests on one worker per core and one more, the slowest 15 listed (ARGS="-k ..." to choose; TEST_WORKERS=0: serially)
	@$(load_images_env); rc=0; $(VENV)/bin/pytest $(PARALLEL) --durations=15 $(ARGS) || rc=$$?; \
	if [[ $$rc -eq 5 ]]; then echo "make test: pytest collected no tests (exit code 5): nothing was tested" >&2; fi; \
	exit $$rc

test-fast: install ## the inner loop (under 2 minutes): the unit tests, then the smoke tests (runner, compose)
	@$(load_images_env); $(VENV)/bin/pytest $(PARALLEL) --durations=5 tests/unit $(ARGS) \
		&& $(VENV)/bin/pytest $(PARALLEL) --durations=5 -m smoke tests/integration $(ARGS)

lint: install ## ruff check, ruff format --check, and the package's import contracts (lint-imports)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

phase1: install ## run phase 1 (APP_DIR=your app repository; default: a copy of the sample app in .work/)
	scripts/provision.sh engine compose images
	@$(load_images_env); \
	$(if $(APP_DIR),export RUNBOOK_APP_DIR="$(abspath $(APP_DIR))";,\
	eval "$$($(VENV)/bin/python -m helpers.runner.sampleapp prepare --allow-commit --export)";) \
	if [[ ! -x $(VENV)/bin/runbook ]]; then \
		echo "make phase1: $(VENV)/bin/runbook is missing (helpers.runner.cli not installed?): run make install" >&2; exit 1; \
	fi; \
	$(VENV)/bin/runbook run phase1 $(ARGS)

docs: install ## build the site into site/ (mkdocs --strict), with real outputs when Docker answers: phase 1 run, phase 2 rehearsed
	@$(load_images_env); $(VENV)/bin/python -m helpers.docsite reference-run --if-engine
	@if docker info >/dev/null 2>&1; then $(MAKE) --no-print-directory docs-rehearsal; \
	else echo "no phase-2 rehearsal run: no Docker engine answers; the phase-2 pages show the notebooks without outputs"; fi
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# Phase 2 for the site: one rehearsal run against the stand-ins (helpers.docsite may not import the
# rehearsal, so make runs it), then its run folders published as rehearsal outputs. The workspace stays
# in $(DOCS_REHEARSAL) until the next `make docs` (its secrets file lets the tests check the site).
DOCS_REHEARSAL := .work/docs/rehearsal
.PHONY: docs-rehearsal
docs-rehearsal: install ## rehearse phase 2 once against the stand-ins and publish its outputs for the site
	STANDIN_QUIET=1 scripts/standins/build.sh droplet node
	@$(load_images_env); rm -rf $(DOCS_REHEARSAL); rc=0; \
	$(VENV)/bin/python -m helpers.rehearse phase2 --runs 1 --no-operations --keep --workdir $(DOCS_REHEARSAL) || rc=$$?; \
	$(VENV)/bin/python -m helpers.docsite publish-rehearsal $(DOCS_REHEARSAL) || rc=$$?; \
	exit $$rc

.PHONY: rehearse-phase2
rehearse-phase2: install ## rehearse phase 2 locally against the stand-ins, twice (ARGS="--to 2.8", "--keep"; docs/rehearsal.md)
	scripts/provision.sh engine compose images registry
	STANDIN_QUIET=1 scripts/standins/build.sh droplet node
	@$(load_images_env); $(VENV)/bin/python -m helpers.rehearse phase2 $(ARGS)

.PHONY: benchmark
benchmark: install ## time phase 1 (5 rounds), the phase-2 rehearsal and the healthchecks: benchmarks/*.md, README's tables
	scripts/provision.sh engine compose images registry
	STANDIN_QUIET=1 scripts/standins/build.sh droplet node
	@$(load_images_env); $(VENV)/bin/python benchmarks/phase1.py $(ARGS)
	@$(load_images_env); $(VENV)/bin/python benchmarks/phase2.py
	$(VENV)/bin/python benchmarks/record.py
	@$(load_images_env); $(VENV)/bin/python benchmarks/healthcheck.py
