"""Fixtures of the integration tests, set by integration/run.sh (`make integration`).

Environment: CIR_BUNDLE (a copy of bundle/ outside the repository), CIR_IMAGE (a 1 mm T1 brain, the held-out
pair 0's fixed image), CIR_LABEL (its CerebrA truth), CIR_REFERENCE (cir-monai's own output for CIR_IMAGE at
λ = 1: `python -m monai.bundle run --config_file inference.yaml`), CIR_WORK (a scratch folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest


def _env(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the integration tests with `make integration`")
    return Path(value)


@pytest.fixture(scope="session")
def bundle() -> Path:
    return _env("CIR_BUNDLE")


@pytest.fixture(scope="session")
def image() -> Path:
    return _env("CIR_IMAGE")


@pytest.fixture(scope="session")
def reference() -> np.ndarray:
    return np.asarray(nib.load(str(_env("CIR_REFERENCE"))).dataobj).squeeze().round().astype(np.int32)


@pytest.fixture(scope="session")
def truth() -> np.ndarray:
    return np.asarray(nib.load(str(_env("CIR_LABEL"))).dataobj).round().astype(np.int32)


@pytest.fixture()
def work(tmp_path) -> Path:
    return tmp_path


def disagreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of voxels whose labels differ (float rounding can flip a voxel on a region's edge)."""
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.mean(a != b))


def mean_dice(pred: np.ndarray, truth: np.ndarray) -> float:
    labels = [v for v in np.unique(truth) if v]
    return float(np.mean([2 * np.sum((pred == v) & (truth == v)) / max(np.sum(pred == v) + np.sum(truth == v), 1)
                          for v in labels]))
