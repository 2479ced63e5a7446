# Two entry points (see README "Quick start"): `make run` and `make test`.
# Both create .venv with Python 3.11 and install the project into it first.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)


.PHONY: run test test-duckdb install install-test chromium demo bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'

# Browser tests drive Debian's chromium (a test tool's own browser download fails offline).
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

demo: install
	$(BIN)/workbench demo

run: demo
	$(BIN)/workbench serve --port $(PORT)

# Two passes: everything on a DuckDB file, then the store-backed tests on a throwaway
# PostgreSQL cluster (.ci/test_postgres.sh installs Debian's postgresql when missing).
test: install-test chromium
	$(BIN)/python -m pytest
	.ci/test_postgres.sh $(BIN)/python

test-duckdb: install-test chromium
	$(BIN)/python -m pytest

bench: $(BIN)/python
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/w1_logging.py
	$(BIN)/python bench/w2_search.py
	$(BIN)/python bench/w5_pages.py
	$(BIN)/python bench/w6_shap.py
	$(BIN)/python bench/w7_fairness.py
	$(BIN)/python bench/w3_w4_drift.py
	$(BIN)/python bench/w8_audit_verify.py
	$(BIN)/python bench/w9_approvals.py
	$(BIN)/python bench/w10_reports.py
	$(BIN)/python bench/w11_protection.py
