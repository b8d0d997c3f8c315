# `make demo` and `make test` work on a fresh machine: they create .venv and install everything.
# TORCH_SPEC picks the PyTorch build: CI sets the CPU build; GPU users pass e.g.
#   make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test install install-test clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q -e ".[train,export,label]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -e ".[train,export,label,test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(VENV)/bin/ssseg demo

test: install-test
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) build dist *.egg-info runs
