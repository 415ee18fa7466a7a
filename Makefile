# Entry points: make run, make test, make lint, make bench.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint format bench clean

install: $(STAMP) $(VENV)/bin/hive-pdeathsig

# The agent programs' parent-death signal at a fraction of setpriv's cost (agents/runners/process.py
# uses setpriv when no C compiler could build it).
$(VENV)/bin/hive-pdeathsig: agents/runners/pdeathsig.c $(STAMP)
	cc -O2 -static -o $@ $< 2>/dev/null || cc -O2 -o $@ $< || echo "no C compiler: agent programs start through setpriv"

$(STAMP): requirements/base.txt requirements/dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: install
	$(VENV)/bin/hive up

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(VENV)/bin/hive bench $(BENCH_ARGS)

clean:
	rm -rf var/ .pytest_cache
