# The README's two commands: `make demo` (set up, run the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo demo-phantom test bench clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

BUNDLE := --meta_file bundle/configs/metadata.json --logging_file bundle/configs/logging.conf

# The main job: train CIR-DM on the embedded data (~10 min on 2 cores), evaluate it on the
# embedded test pairs at the paper's λ list, register one test pair at λ = 0.1, 1, 4.
demo: setup
	$(PY) -m monai.bundle run training --config_file bundle/configs/train.yaml $(BUNDLE)
	$(PY) -m monai.bundle run evaluate --config_file "['bundle/configs/train.yaml','bundle/configs/evaluate.yaml']" --ckpt_path runs/train/model.pt $(BUNDLE)
	$(PY) -m monai.bundle run inference --config_file bundle/configs/inference.yaml --ckpt_path runs/train/model.pt --lams "[0.1,1,4]" --fixed data/embedded/test/pair_000/fixed.nii.gz --moving data/embedded/test/pair_000/moving.nii.gz --moving_label data/embedded/test/pair_000/moving_label.nii.gz $(BUNDLE)
	@echo "model: runs/train/model.pt | evaluation: runs/evaluate/summary.md | registered pair: runs/inference/"
	@cat runs/evaluate/summary.md

# Register the built-in phantom pair with the authors' released lite weights (../shared/reference).
demo-phantom: setup
	$(PY) -m cir_monai.demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/bench_inference.py

clean:
	rm -rf $(VENV) out runs .pytest_cache
