# The two commands of the Quick start: `make demo` and `make test`. Both bootstrap .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# axe-core for the browser tests' accessibility checks (npm, kept out of git).
AXE := tests/browser/.node/node_modules/axe-core/axe.min.js

.PHONY: demo test lint unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=25.1"
	$(BIN)/python -m pip install -q -e . --group dev
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/broadcaster demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

$(AXE):
	npm install --no-save --prefix tests/browser/.node axe-core@4 \
	  || echo "warning: could not install axe-core; the accessibility tests will skip" >&2

test: lint $(AXE)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/intake.py
	$(BIN)/python bench/fanout.py
	$(BIN)/python bench/web.py
	$(BIN)/python bench/channels.py
	$(BIN)/python bench/correction.py
	$(BIN)/python bench/triage.py
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-data
