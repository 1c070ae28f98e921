# The README's two commands: `make run` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# Stoplight Prism for the contract test (tests/test_contract_prism.py), pinned by its lock file.
PRISM := tests/contract/node_modules/.bin/prism

$(PRISM): tests/contract/package.json tests/contract/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd tests/contract && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; \
	else \
	  echo "npm not found: the Prism contract test will be skipped (install Node.js to run it)"; \
	fi

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev $(PRISM)

run: install
	$(BIN)/python -m smsdash.devserver

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff (lint and format), mypy over smsdash/, and import-linter's contracts (pyproject.toml).
lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy smsdash
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) instance .pytest_cache
