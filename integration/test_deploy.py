"""MONAI Deploy App SDK 4.0.0 runs the bundle: MonaiBundleInferenceOperator on the bundle folder and on model.ts.

Run in the Deploy venv by integration/run.sh (`make integration`); cir-monai is installed there from its wheel.
The application is integration/deploy_app.py (NIfTI in, NIfTI out, λ as the bundle's second input).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import disagreement, mean_dice

APP = Path(__file__).with_name("deploy_app.py")


def _run_app(bundle_path: Path, image: Path, out: Path, lam: float, cwd: Path) -> tuple[np.ndarray, float]:
    # the app context's model path must not exist for a bundle folder (any existing path becomes a generic Model)
    env = dict(os.environ, HOLOSCAN_MODEL_PATH=str(bundle_path if bundle_path.suffix == ".ts" else cwd / "no-models"))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(APP), str(bundle_path), str(image), str(out), "--lam", str(lam)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=900)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    written = sorted(out.glob("*_pred.nii.gz"))
    assert len(written) == 1, (proc.stdout + proc.stderr)[-2000:]
    seg = nib.load(str(written[0]))
    source = nib.load(str(image))
    assert seg.shape[:3] == source.shape[:3] and np.allclose(seg.affine, source.affine, atol=1e-4)
    return np.asarray(seg.dataobj).squeeze().round().astype(np.int32), seconds


def test_bundle_folder_equals_cir_monai(bundle, image, reference, truth, work):
    """The folder without model.ts: Deploy builds network_def and loads models/model.pt (the eager network)."""
    folder = work / "bundle"
    shutil.copytree(bundle, folder)
    (folder / "models" / "model.ts").unlink()
    labels, seconds = _run_app(folder, image, work / "out", 1.0, cwd=folder)
    assert disagreement(labels, reference) <= 1e-4
    print(f"Deploy (bundle folder, eager): Dice {mean_dice(labels, truth):.3f}, {seconds:.1f} s per run")


def test_torchscript_equals_cir_monai(bundle, image, reference, truth, work):
    """model.ts alone (its inference config and metadata inside): the traced network, λ as an input."""
    labels, seconds = _run_app(bundle / "models" / "model.ts", image, work / "out", 1.0, cwd=bundle)
    assert disagreement(labels, reference) <= 1e-4
    print(f"Deploy (model.ts): Dice {mean_dice(labels, truth):.3f}, {seconds:.1f} s per run")


def test_lambda_is_an_input_of_the_application(bundle, image, reference, work):
    labels, _ = _run_app(bundle / "models" / "model.ts", image, work / "out", 10.0, cwd=bundle)
    assert disagreement(labels, reference) > 1e-3  # λ = 10 is another registration than λ = 1
