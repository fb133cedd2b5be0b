# Two commands set everything up on a fresh machine with Python 3.11+:
#   make up    - create .venv, install, run the local federation (ru, kz, uz)
#   make test  - create .venv, install, run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tools whose pins conflict with the project's, each in its own virtualenv from PyPI (kept out of git).
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed

.PHONY: up test test-full lint typecheck tools clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "medfed needs Python 3.11 or newer, found " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# checkov (tests/infra/test_checkov.py) and hatchling (the offline wheel build of the rollout rehearsal,
# docs/ops/ansible.md). If PyPI cannot be reached the tests that need them say so and are skipped.
$(TOOLS_STAMP):
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check 'checkov>=3.2,<4' 'hatchling>=1.25' && touch $(TOOLS_STAMP) \
		|| echo "checkov and hatchling could not be installed into $(TOOLS): the tests that need them will be skipped"

tools: $(TOOLS_STAMP)

up: $(STAMP)
	exec $(BIN)/medfed up $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck tools
	$(BIN)/pytest -m "not slow"

test-full: lint typecheck tools
	$(BIN)/pytest

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache .mypy_cache
