# Quick start: `make demo` (set up .venv, install, run the tutorial end to end) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
DEMO_DIR ?= pbtlab_demo

.PHONY: demo test test-fast venv install-demo install-test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Each install step is re-run only when pyproject.toml changes.
$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(PIP) install -e ".[viz,cli,analysis,serve]"
	touch $@

# torch is pinned first to the CPU build (the [torch] extra's range is then met without a CUDA download).
$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[test,ray]"
	touch $@

install-demo: $(VENV)/.demo-installed
install-test: $(VENV)/.test-installed
	@bash scripts/ensure_chromium.sh

demo: install-demo
	$(VENV)/bin/pbtlab demo -o $(DEMO_DIR)

test: install-test
	$(PY) -m pytest -q

test-fast: install-test
	$(PY) -m pytest -q -m "not slow and not ray"

bench: install-test
	$(PY) bench/seed_pbt.py
	$(PY) bench/scaling.py
	$(PY) bench/vs_ray_tune.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) pbtlab_results .pytest_cache
