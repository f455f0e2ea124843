# Each target sets up what it needs on a fresh machine: a virtualenv in .venv with the
# pinned requirements, reinstalled only when a requirements file changes.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOME_DIR ?= .bridge/demo

# The console's browser tests drive Debian's Chromium; a fresh machine gets it from Debian's packages.
CHROMIUM := /usr/bin/chromium
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint typecheck unit bench clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)  ## the main job: the sample scenario on the embedded defaults
	rm -rf $(HOME_DIR)
	$(PY) -m flows --home $(HOME_DIR) demo

test: lint typecheck unit  ## everything CI runs

lint: $(STAMP)
	$(PY) -m ruff check .

typecheck: $(STAMP)
	$(PY) -m mypy

unit: $(STAMP) $(CHROMIUM)
	$(PY) -m pytest

$(CHROMIUM):
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
	  || ($(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

bench: $(STAMP)
	$(PY) bench/cpl_parse.py
	$(PY) bench/console_render.py
	$(PY) bench/event_reads.py

clean:
	rm -rf $(VENV) .bridge .mypy_cache .ruff_cache .pytest_cache
