# The two commands the README starts with: `make demo` and `make test`.
# Each creates .venv (Python 3.11+) and installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= .cdp-demo

.PHONY: demo test lint bench screenshots clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-runtime

demo: $(VENV)/.installed-runtime
	$(BIN)/cdp --data-dir $(DATA) demo --fresh

test: $(VENV)/.installed-dev
	bash tests/browser/install-chromium.sh  # Debian's chromium for tests/browser (once)
	$(BIN)/python -m pytest -n 4 -q  # 4 workers on 2 cores: most tests wait on brokers and servers

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench.run_all

screenshots: $(VENV)/.installed-dev  # docs/console/*.png from the demo shop in headless Chromium
	bash tests/browser/install-chromium.sh
	bash tests/browser/install-fonts.sh  # a Japanese font, for the Japanese screenshots
	$(BIN)/python -m tests.browser.screenshots

clean:
	rm -rf $(VENV) $(DATA)
