# practice-bridge: `make test` runs the whole suite, `make run` runs Synapse and the bridge.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# make run WORKERS=1: Synapse with workers (PostgreSQL and Redis), in a data folder of its own.
DATA ?= $(if $(WORKERS),data-workers,data)

.PHONY: install test lint format openapi run bench example-config clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[homeserver,test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -ra $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy bridge appservice config registration synapse-modules/practice_bridge_synapse

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

openapi: $(STAMP)
	$(PY) -m appservice.api.document

run: $(STAMP)
	$(VENV)/bin/practice-bridge local --data $(DATA) $(if $(DEMO),--demo,) $(if $(WORKERS),--workers,)

bench: $(STAMP)
	$(PY) bench/run_all.py $(BENCH_ARGS)

example-config: $(STAMP)
	$(PY) -m config.example

clean:
	rm -rf $(VENV) $(DATA) data-workers .pytest_cache .mypy_cache .ruff_cache
