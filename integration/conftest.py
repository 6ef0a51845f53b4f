"""Fixtures of the integration tests, set by integration/run.sh (`make integration`).

Environment: CIR_BUNDLE (a copy of bundle/ outside the repository), CIR_IMAGE (a 1 mm T1 brain, the held-out
pair 0's fixed image), CIR_LABEL (its CerebrA truth), CIR_REFERENCE (cir-monai's own output for CIR_IMAGE at
λ = 1: `python -m monai.bundle run --config_file inference.yaml`), CIR_WHEEL (cir-monai's wheel, installed in the venv).

The bundle's README (`docs/README.md` of CIR_BUNDLE) is read by the tests: they run the commands and code of its
"Use it in MONAI Label" and "Use it in MONAI Deploy" sections as written (`doc_block`), so the two cannot drift apart.
"""

from __future__ import annotations

import os
import re
import textwrap
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


def doc_section(title: str) -> str:
    """The text of the section ``## title`` of the bundle's README (docs/README.md of CIR_BUNDLE)."""
    text = (_env("CIR_BUNDLE") / "docs" / "README.md").read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"the bundle README has no section '## {title}'"
    return match.group(1)


def doc_block(title: str, lang: str, containing: str) -> str:
    """The one fenced ``lang`` code block of the README section ``title`` that contains ``containing``, dedented."""
    found = []
    for _, body in re.findall(rf"^([ \t]*)```{lang}\n(.*?)^\1```[ \t]*$", doc_section(title), re.M | re.S):
        block = textwrap.dedent(body)
        if containing in block:
            found.append(block)
    assert len(found) == 1, (f"expected one {lang} block with {containing!r} in the README's '{title}', "
                             f"found {len(found)}")
    return found[0]


def doc_wheel_names(title: str) -> set[str]:
    """The cir-monai wheel file names that the README section ``title`` tells the user to install."""
    return set(re.findall(r"cir_monai-[^\s`/]+\.whl", doc_section(title)))


def wheel_name() -> str:
    """The file name of the wheel that `make integration` built and installed (CIR_WHEEL)."""
    return _env("CIR_WHEEL").name
