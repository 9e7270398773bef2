# The two commands: `make demo` and `make test`. Both create .venv when it is missing and
# install Redline with every dependency pinned by constraints.txt.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.redline-installed

.PHONY: demo test lint typecheck bench-quick clean-data

$(STAMP): constraints.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/redline demo

# The import layers first (pyproject's [tool.importlinter]), then the suite: a real PostgreSQL is
# started for the run (tools/with-postgres.sh) and stopped afterwards.
test: $(STAMP)
	$(VENV)/bin/lint-imports
	tools/with-postgres.sh $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench-quick: $(STAMP)
	$(PY) benchmarks/data.py --quick

clean-data:
	rm -rf redline_data
