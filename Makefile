# Switchboard's entry points: `make run` serves the demo, `make test` runs every test; `make help` lists all.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstalls only when pyproject.toml changes; lives in .venv so a fresh venv reinstalls.
STAMP := $(VENV)/.installed-stamp
# HOST/PORT: command line, then the environment, then .env, then the default.
ifeq ($(origin HOST),undefined)
HOST := $(shell $(PYTHON) scripts/with_dotenv.py --get HOST 127.0.0.1)
endif
ifeq ($(origin PORT),undefined)
PORT := $(shell $(PYTHON) scripts/with_dotenv.py --get PORT 8000)
endif
ARGS ?=
# seed_demo prints the URLs from these; settings.py's SITE_URL (links in e-mails, the widget snippet) too.
export HOST PORT

.DEFAULT_GOAL := help
.PHONY: help install run test lint bench

help: ## list the targets
	@echo "Switchboard: make <target>"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables: HOST=$(HOST) PORT=$(PORT) ACCESS_LOG=1 (run), ARGS='...' (extra pytest arguments for test),"
	@echo "           REQUIRE_SERVICES=1 (test: fail instead of skipping when PostgreSQL/Redis are missing)"

install: $(STAMP) ## create .venv and install the project with its dev tools

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: install ## migrate, seed the demo tenant (prints logins and API key), serve on HOST:PORT with daphne (ACCESS_LOG=1 logs requests)
	@mkdir -p var  # the SQLite file's directory: a fresh clone has none (var/ is gitignored)
	$(BIN)/python scripts/with_dotenv.py $(BIN)/python manage.py migrate --noinput
	$(BIN)/python scripts/with_dotenv.py $(BIN)/python manage.py seed_demo
	$(BIN)/python scripts/with_dotenv.py $(BIN)/python scripts/serve.py -b $(HOST) -p $(PORT) contactcenter.asgi:application

test: install ## whole suite on throwaway PostgreSQL + Redis when installed, then the embedded smoke pass
	$(BIN)/python scripts/run_tests.py -- $(ARGS)

lint: install ## ruff check, ruff format --check, mypy (runs all three, fails if any fails)
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/ruff format --check . || status=1; \
	$(BIN)/mypy contactcenter agents chat queueing channels_switch || status=1; \
	exit $$status

bench: install ## load benchmarks on throwaway PostgreSQL + Redis: live chat (ARGS='--quick'), relay + webhooks (RELAY_ARGS='--quick'), routing (ROUTING_ARGS='--quick')
	@status=0; \
	$(BIN)/python bench/chat_load.py $(ARGS) || status=1; \
	$(BIN)/python bench/relay_load.py $(RELAY_ARGS) || status=1; \
	$(BIN)/python bench/routing_load.py $(ROUTING_ARGS) || status=1; \
	exit $$status
