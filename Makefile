# foundry-gateway. `make demo` runs it locally; `make test` runs every check. Both install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CONFIG ?= examples/gateway.yaml

.PHONY: install lint typecheck unit test demo run clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy gateway token_sidecar tests scripts

unit: install
	$(PY) -m pytest tests/unit -q

test: lint typecheck
	$(PY) -m pytest -q

demo: install
	$(PY) scripts/demo.py

run: install
	$(PY) -m gateway --config $(CONFIG)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
