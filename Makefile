# The README's two commands: `make demo` (set up, run the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m cir_monai.demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/bench_inference.py

clean:
	rm -rf $(VENV) out .pytest_cache
