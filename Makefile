# The two commands: `make demo` and `make test`. Both bootstrap .venv on first use.
PYTHON ?= $(shell for p in python3.12 python3.11 python3; do command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(0 if (3,11) <= sys.version_info[:2] <= (3,12) else 1)' && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test

.PHONY: demo test lint bench clean venv browser prometheus

# Debian's Chromium for the console's browser test; skipped when present, when not root or
# without apt-get (the test then skips, saying why).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && { apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
	       || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; }; } \
	  || echo "note: chromium not installed; the browser test will skip"; }

# Debian's Prometheus for promtool (the alert rules' checks and unit tests); same rules as above.
prometheus:
	@command -v promtool >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && { apt-get install -y -q prometheus >/dev/null 2>&1 \
	       || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q prometheus >/dev/null 2>&1; }; } \
	  || echo "note: prometheus not installed; the alert-rule tests will skip"; }

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or 3.12 is required (Bytewax 0.21.1 has no wheels for other versions)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/brokerflow demo $(ARGS)

test: $(STAMP) browser prometheus
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/brokerflow bench $(ARGS)

clean:
	rm -rf $(VENV) .brokerflow .pytest_cache
