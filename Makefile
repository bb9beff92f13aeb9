# Quick start: `make train` (set up + train on the built-in synthetic cards), `make test`.
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# pip prints a warning per unreachable extra index on this kind of machine; keep the output readable.
PIP_QUIET := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: setup train test cockpit bench clean

# `make train` needs only the training core (torch, torchvision, numpy, pillow): a fresh clone starts
# training after that install; the cockpit, the Google clients and the test tools come with `make setup`.
CORE_STAMP := $(VENV)/.core-installed-stamp

$(CORE_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e . 2>&1 | $(PIP_QUIET)
	$(BIN)/python -c "import torch, torchvision"   # fail here, not mid-run
	touch $(CORE_STAMP)

$(STAMP): $(CORE_STAMP)
	$(BIN)/pip install -q -e '.[cockpit,gcs,serve,test]' 2>&1 | $(PIP_QUIET)
	$(BIN)/python -c "import textual, starlette, uvicorn, orjson, pybase64"   # fail here, not mid-run
	touch $(STAMP)

setup: $(STAMP)

train: $(CORE_STAMP)
	$(BIN)/python -m core.train --preset local

cockpit: setup
	$(BIN)/psa-cockpit presets/local.toml

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf outputs .pytest_cache
