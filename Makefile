# `make demo` and `make test` work on a fresh machine: they create .venv and install everything.
# TORCH_SPEC picks the PyTorch build: CI sets the CPU build; GPU users pass e.g.
#   make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test test-slow install install-test cpp cpp-deps browser clean

# The C++ runtime (cpp/): Debian 12 package names; `make cpp-deps` installs them as root with apt, and
# elsewhere prints what to install.
BUILD ?= build
CPP_DEPS := cmake g++ libopencv-dev nlohmann-json3-dev libcli11-dev libgtest-dev libssl-dev

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

# ruff is pinned by the test extra (pyproject.toml) and reads its settings there. `make test` keeps to 10 minutes
# on a 2-core CPU: the long end-to-end tests (kill-and-resume, multi-process, disk faults, the demo, golden
# metrics; marked slow) run in `make test-slow`, which CI runs after it (.ci/run).
test: install-test cpp browser
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m "not slow" tests
	ctest --test-dir $(BUILD) --output-on-failure

test-slow: install-test cpp
	$(PY) -m pytest -q -m slow tests

cpp-deps:
	@if ! command -v dpkg >/dev/null 2>&1; then \
	  echo "cpp-deps: not a Debian system; make sure CMake >= 3.18, a C++17 compiler, OpenCV >= 4.6 (dnn, videoio, imgcodecs), nlohmann-json >= 3.9, CLI11 >= 2, GoogleTest and OpenSSL are installed (CMake names what it cannot find)" >&2; \
	  exit 0; \
	fi; \
	missing=$$(for p in $(CPP_DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else \
	  echo "cpp-deps: install $$missing (Debian/Ubuntu names; elsewhere: CMake >= 3.18, a C++17 compiler, OpenCV >= 4.6 with dnn/videoio/imgcodecs, nlohmann-json >= 3.9, CLI11 >= 2, GoogleTest, OpenSSL), then run make again" >&2; \
	  exit 1; \
	fi

# Headless Chromium for the report tests (tests/test_report.py opens the reports in it): Debian's package,
# installed as root with apt when missing; elsewhere the browser tests are skipped with a line saying so.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
	    || echo "browser: chromium could not be installed; the report's browser tests will be skipped" >&2; \
	else \
	  echo "browser: no chromium and no apt as root; the report's browser tests will be skipped (install chromium)" >&2; \
	fi

# ssseg-cpp with warnings as errors; the parity test runs `ssseg label` from the virtual environment.
cpp: cpp-deps install
	cmake -S . -B $(BUILD) -DSSSEG_WERROR=ON -DSSSEG_PYTHON=$(abspath $(PY))
	cmake --build $(BUILD) -j 2

clean:
	rm -rf $(VENV) $(BUILD) dist *.egg-info runs
