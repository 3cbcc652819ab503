# The few verbs people type. Each sets up what it needs, idempotently.
PYTHON ?= python3
VENV := .venv
DOCKROLL := $(VENV)/bin/dockroll

.PHONY: demo test chaos lint format bench bench-promote bench-zero-downtime bench-canary bench-cli bench-ui bench-edge bench-fleet venv dev-up dev-down clean

$(VENV)/.installed: pyproject.toml
	PYTHON=$(PYTHON) bash scripts/bootstrap.sh
	@touch $@

venv: $(VENV)/.installed

dev-up: venv
	$(DOCKROLL) dev up --with router --with postgres

dev-down: venv
	$(DOCKROLL) dev down

demo: dev-up
	bash scripts/demo.sh

test: dev-up
	$(VENV)/bin/pytest -q

# Seeded faults mid-rollout under load; CHAOS_SEED=N replays a run's rounds.
chaos: dev-up
	$(VENV)/bin/pytest -q -s -m chaos tests/chaos

# Every benchmark; each prints its table and fails when it misses its target.
BENCHES := bench-promote bench-zero-downtime bench-canary bench-cli bench-ui bench-edge bench-fleet

bench: $(BENCHES)

bench-promote: dev-up
	$(VENV)/bin/python bench/promote/run.py

bench-zero-downtime: dev-up
	$(VENV)/bin/python bench/zero-downtime/run.py

bench-canary: dev-up
	$(VENV)/bin/python bench/canary/run.py

bench-cli: dev-up
	$(VENV)/bin/python bench/cli/run.py

bench-ui: dev-up
	$(VENV)/bin/python bench/ui/run.py

bench-edge: dev-up
	$(VENV)/bin/python bench/edge/run.py

bench-fleet: dev-up
	$(VENV)/bin/python bench/fleet/run.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
