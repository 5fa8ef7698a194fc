# Everything runs from a local virtual environment, created on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: install demo test unit integration lint typecheck bench bench-core reliability schemas clean

install: $(STAMP)

# The C fast path is compiled by the editable install: rebuilt when its sources change.
$(STAMP): pyproject.toml hatch_build.py $(wildcard processor/native/*.c processor/native/*.h)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tmf-events demo

# The README's test command: static checks, deploy checks (their tools install into .tools/),
# then every pytest layer (the deploy tests ran in deploy-check already).
test: lint typecheck deploy-check
	@if [ -f scripts/prometheus.sh ]; then bash scripts/prometheus.sh; fi
	$(BIN)/pytest -q --ignore=tests/deploy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

schemas: $(STAMP)
	$(BIN)/python -m processor.dev.schemagen

bench-core: $(STAMP)
	$(BIN)/python bench/core.py

reliability: $(STAMP)
	RELIABILITY_PROFILE=long $(BIN)/pytest -q tests/reliability

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist processor/_native*.so

-include Makefile.deploy
-include Makefile.bench
