"""Shared by the engine tests: small synthetic pairs written as NIfTI files, and a small untrained model file."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from cir_monai.data import synthetic_pair
from cir_monai.io import save_checkpoint
from cir_monai.networks import CLapIRN


def _write_synthetic_pair(folder: Path, affine: np.ndarray, shape=(36, 40, 32), seed: int = 2,
                          prefix: str = "") -> dict[str, str]:
    """``synthetic_pair(shape, seed)`` as ``folder/<prefix><fixed|moving|moving_label>.nii.gz`` with ``affine``
    (intensities scaled like a scan, labels int16); returns the paths by key."""
    pair = synthetic_pair(shape, seed=seed)
    paths = {}
    for key in ("fixed", "moving", "moving_label"):
        data = pair[key][0, 0].numpy()
        data = data.astype(np.int16) if "label" in key else (data * 800.0 + 20.0 * (data > 0)).astype(np.float32)
        paths[key] = str(folder / f"{prefix}{key}.nii.gz")
        nib.save(nib.Nifti1Image(data, affine), paths[key])
    return paths


@pytest.fixture(scope="session")
def write_synthetic_pair():
    """The writer of small synthetic pair files (:func:`_write_synthetic_pair`)."""
    return _write_synthetic_pair


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """An untrained CLapIRN (start_channels 2, seed 0) saved as a checkpoint."""
    torch.manual_seed(0)
    net = CLapIRN(3, start_channels=2)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint({"model": net.state_dict(), "network": net.config}, path)
    return path
