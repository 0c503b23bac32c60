# The two commands of the Quick start: `make demo` and `make test`. Both bootstrap .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# axe-core for the browser tests' accessibility checks (npm, kept out of git).
AXE := tests/browser/.node/node_modules/axe-core/axe.min.js

.PHONY: demo test lint unit chaos bench clean

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

# Fault injection (tests/chaos, marked `chaos`, left out of `make test`): each scenario prints
# its figures (-s) and asserts their bounds; with the 3-process kill -9 scale-out test, about
# two minutes on 2 cores.
chaos: $(STAMP)
	$(BIN)/pytest -q -s -m chaos

# Every bench/*.py in turn, then the Summary section of bench/RESULTS.md (about 20 min).
bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-data
