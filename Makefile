# `make run` serves the API on the embedded database; `make test` runs the whole suite.
# Both create .venv with Python 3.13 (from .python-version) and install what they need.

PYTHON_VERSION := $(shell cat .python-version)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(PYTHON_VERSION)
HOST ?= 127.0.0.1
PORT ?= 8000

# The first Python $(PYTHON_VERSION) found: python3.13 on PATH, then pyenv's, then python3.
FIND_PYTHON = for p in python$(PYTHON_VERSION) $$HOME/.pyenv/versions/$(PYTHON_VERSION)*/bin/python3 \
	/usr/local/bin/python$(PYTHON_VERSION) /usr/bin/python$(PYTHON_VERSION) python3; do \
	  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; v = "%d.%d" % sys.version_info[:2]; \
	    sys.exit(v != "$(PYTHON_VERSION)")' 2>/dev/null; then command -v $$p; exit 0; fi; done; exit 1

.PHONY: run test lint format bench-search bench-upload bench-borrow clean

$(STAMP): pyproject.toml
	@if [ ! -x $(BIN)/python ]; then \
	  python=$$($(FIND_PYTHON)) || { echo "Python $(PYTHON_VERSION) was not found: install it (e.g. 'pyenv install $(PYTHON_VERSION)') and retry." >&2; exit 1; }; \
	  echo "creating $(VENV) with $$python"; $$python -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded,dev]'
	@touch $@

run: $(STAMP)
	$(BIN)/library-api serve --host $(HOST) --port $(PORT)

# One worker per core, each with its own embedded database server and test database.
test: $(STAMP)
	$(BIN)/python -m pytest -n auto

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench-search: $(STAMP)
	$(BIN)/python bench/search.py

bench-upload: $(STAMP)
	$(BIN)/python bench/upload.py

bench-borrow: $(STAMP)
	$(BIN)/python bench/borrow.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache src/*.egg-info
