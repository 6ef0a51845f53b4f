# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Atomic NIfTI writing: a file is either absent, the old one, or the complete new one."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from cir_monai.atomic import atomic_path

__all__ = ["save_nifti"]


def save_nifti(array: np.ndarray, affine: np.ndarray, path: str | os.PathLike, vector: bool = False) -> Path:
    """Write ``array`` with ``affine`` to ``path`` through a temporary file in the same folder, then rename.

    Args:
        array: the voxel data (a displacement field as ``(X, Y, Z, 1, 3)``).
        affine: the 4×4 voxel-to-world (RAS mm) matrix.
        path: the ``.nii.gz`` / ``.nii`` file.
        vector: set the NIfTI intent to "vector" (displacement fields; ITK reads the components as given).

    Returns:
        ``path``.
    """
    path = Path(path)
    image = nib.Nifti1Image(array, affine)
    if vector:
        image.header.set_intent("vector")
    with atomic_path(path) as staged:
        nib.save(image, str(staged))
    return path
