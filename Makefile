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

# The Node tools (Redocly CLI, openapi-typescript, tsc, dclint), pinned in its package-lock.json.
CLIENT := clients/typescript
NODE_MODULES := $(CLIENT)/node_modules/.package-lock.json
export REDOCLY_TELEMETRY := off
export REDOCLY_SUPPRESS_UPDATE_NOTICE := true

.PHONY: run test lint format lint-api lint-docker client openapi-snapshot \
	bench-search bench-upload bench-borrow clean

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
# The Node tools too when npm is there (without them the TypeScript client test is skipped).
test: $(STAMP)
	@if command -v npm >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(NODE_MODULES) || echo "npm ci failed: the TypeScript client test will be skipped" >&2; \
	fi
	$(BIN)/python -m pytest -n auto

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src
	$(BIN)/mypy tests

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

$(NODE_MODULES): $(CLIENT)/package.json $(CLIENT)/package-lock.json
	cd $(CLIENT) && npm ci --no-audit --no-fund

# Redocly's recommended rules on the committed OpenAPI document: no error, no warning.
lint-api: $(NODE_MODULES)
	cd $(CLIENT) && npx redocly lint --config ../../redocly.yaml --max-problems 50 ../../tests/openapi.json

# The Dockerfile (hadolint) and the compose file (dclint, with its schema); no Docker engine.
lint-docker: $(STAMP) $(NODE_MODULES)
	$(BIN)/hadolint Dockerfile
	cd $(CLIENT) && npx dclint --max-warnings 0 ../../docker-compose.yml

# TypeScript types from the committed document, and the client checked with them.
client: $(NODE_MODULES)
	cd $(CLIENT) && npm run --silent generate && npm run --silent typecheck

# After a deliberate change of the API: rewrite tests/openapi.json, then review its diff.
openapi-snapshot: $(STAMP)
	UPDATE_OPENAPI_SNAPSHOT=1 $(BIN)/python -m pytest -q \
		tests/test_openapi_contract.py -k snapshot

bench-search: $(STAMP)
	$(BIN)/python bench/search.py

bench-upload: $(STAMP)
	$(BIN)/python bench/upload.py

bench-borrow: $(STAMP)
	$(BIN)/python bench/borrow.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache src/*.egg-info \
		$(CLIENT)/node_modules $(CLIENT)/build artifacts
