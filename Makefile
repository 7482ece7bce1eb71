# zerog: `make demo` runs the main job against a local devnet; `make test` runs what CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-tools test-fast lint demo bench soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

# Lint, then test-tools' step, then pytest (tests/run_suite.py).
test: install
	$(BIN)/python tests/run_suite.py

# Every external tool the tests drive (Debian's Prometheus packages, the pinned TS SDK):
# installed when missing, quick when present. `make test` runs the same step first.
test-tools: install
	$(BIN)/python tools/test_tools.py ensure

test-fast: install
	$(BIN)/pytest -q -m "not interop and not promtool and not slow"

lint: install
	$(BIN)/ruff check zerog_cli tests bench tools
	$(BIN)/ruff format --check zerog_cli tests bench tools
	$(BIN)/mypy

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash tools/demo.sh

bench: install
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/merkle.py
	$(BIN)/python bench/transfer.py

soak: install
	ZEROG_SOAK=1 $(BIN)/pytest -q tests/reliability

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .cache
