# The commands a developer needs. `make run` and `make test` work on a fresh clone.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: help install dashboard run test test-unit lint check-deploy format bench contract kafka-start kafka-stop clean

help:
	@echo "make run    start Kafka and the four services, restarting any that exits (Ctrl-C stops everything)"
	@echo "            REPLICAS=N runs N processes of each (PostgreSQL *_DATABASE_URL needed when N > 1)"
	@echo "make test   unit, integration and end-to-end tests on real Kafka, SQLite and PostgreSQL"
	@echo "make lint   ruff and mypy"
	@echo "make check-deploy   docker-compose.yml and deploy/kubernetes/ checked offline"
	@echo "make bench  benchmarks; results in tests/benchmarks/README.md (SUITE=faults: the fault suite, longer)"

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed; install python3.11 and run make PYTHON=python3.11"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing Python dependencies into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/.installed

# The dashboard and the widget (dashboard/, TypeScript): `npm ci` when the lock file changes,
# `npm run build` when a source changes; dist/.built is the stamp. The gateway serves dist/.
DASHBOARD_SOURCES := $(shell find dashboard/src -type f 2>/dev/null) dashboard/index.html \
	dashboard/vite.config.ts dashboard/vite.widget.config.ts dashboard/tsconfig.json

dashboard/node_modules/.installed: dashboard/package.json dashboard/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js 20+) is needed to build the dashboard"; exit 2; }
	@echo "installing the dashboard's npm dependencies (package-lock.json) ..."
	@cd dashboard && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

dashboard/dist/.built: dashboard/node_modules/.installed $(DASHBOARD_SOURCES)
	@echo "building the dashboard and the widget ..."
	@cd dashboard && npm run --silent build
	@touch $@

dashboard: dashboard/dist/.built

# REPLICAS=N: N processes of every service (`helpdesk run --replicas N`; PostgreSQL only).
run: install dashboard
	@bash deploy/run.sh $(if $(REPLICAS),--replicas $(REPLICAS))

test: install dashboard
	@bash deploy/test.sh

test-unit: install
	@$(BIN)/pytest tests/unit -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

check-deploy: install
	@bash deploy/check-deploy.sh

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# `make bench SUITE=faults` (or pipeline, updates, ...) runs one suite.
bench: install
	@bash deploy/test.sh --bench $(if $(SUITE),--suite $(SUITE))

contract: install
	@$(BIN)/helpdesk contract --output docs/asyncapi.json

kafka-start:
	@bash deploy/kafka/kafka.sh start

kafka-stop:
	@bash deploy/kafka/kafka.sh stop

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache dashboard/dist
