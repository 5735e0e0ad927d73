# sockcli developer entry points. Every target builds its own virtual environment in .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv demo test lint unit clean

help:
	@echo "make demo   - create $(VENV), start a hub, a listener and a sender, show messages flowing"
	@echo "make test   - create $(VENV), install sockcli with its test extras, lint, type-check, run the suite"
	@echo "make lint   - ruff and mypy (strict) only"
	@echo "make clean  - remove $(VENV) and build artefacts"

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("sockcli needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check sockcli tests
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint unit

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache .hypothesis
