"""Shared fixtures: the authors' reference outputs in ``../shared/reference`` (skip if absent)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO.parent / "shared" / "reference"
# generated data sets in the checkout's data/ (as `make` sets it), for this process and the commands it starts
os.environ.setdefault("CIR_MONAI_DATA", str(REPO / "data"))


def pytest_configure(config):
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE_DIR / "parity.npz").is_file():
        pytest.skip(f"reference fixtures not found at {REFERENCE_DIR} (the authors' outputs for parity tests)")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def parity(reference_dir) -> dict[str, torch.Tensor]:
    with np.load(reference_dir / "parity.npz") as data:
        return {k: torch.from_numpy(data[k]) for k in data.files}


@pytest.fixture(scope="session")
def parity_metrics(reference_dir) -> dict:
    return json.loads((reference_dir / "parity_metrics.json").read_text())


@pytest.fixture(scope="session")
def heldout_pairs(tmp_path_factory) -> list[dict]:
    """Held-out pair 0 (cir_monai.data.heldout: 2009c + CerebrA at 1 mm, known true field), written once."""
    from cir_monai.data import load_pairs
    from cir_monai.data.heldout import prepare_heldout

    return load_pairs(prepare_heldout(tmp_path_factory.mktemp("heldout"), num_pairs=1, progress=False), split="test")


class _Payload:
    """Unpickling this creates ``marker`` (an ``os.system`` call would run a shell command the same way)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def write_unsafe_model(path: Path, marker: Path) -> Path:
    """A model file as this project writes them (``{"model", "network"}``) whose pickle creates ``marker`` when a full
    (not weights-only) unpickler loads it."""
    torch.save({"model": {"payload": _Payload(marker)}, "network": {"spatial_dims": 3}}, path)
    return path


@pytest.fixture
def unsafe_model(tmp_path) -> tuple[Path, Path]:
    """``(model file, marker)``: loading the file unsafely creates the marker (it must never exist)."""
    marker = tmp_path / "pwned"
    return write_unsafe_model(tmp_path / "downloaded.pt", marker), marker
