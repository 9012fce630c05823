# mssweb — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test test-browser lint format setup migrate seed clean help

help:
	@echo "make run    set up, migrate, seed a demo and serve http://127.0.0.1:8000 (with worker and beat)"
	@echo "make test   set up and run the whole test suite"
	@echo "make lint   ruff check and format check"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mssweb needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

run: export DJANGO_DEBUG ?= true
run: $(STAMP)
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py seed_demo
	$(BIN)/python -m mssweb.devstack

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-browser: $(STAMP)
	MSSWEB_NO_SKIP=1 $(BIN)/python -m pytest -m browser $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf var/test var/celery-broker var/celerybeat-schedule*
