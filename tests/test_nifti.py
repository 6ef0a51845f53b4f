"""Atomic NIfTI writing."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from cir_monai.nifti import save_nifti


def test_writes_atomically_with_the_vector_intent(tmp_path):
    field = np.random.rand(4, 5, 6, 1, 3).astype(np.float32)
    affine = np.diag([2.0, -1.0, 1.5, 1.0])
    path = save_nifti(field, affine, tmp_path / "ddf.nii.gz", vector=True)
    image = nib.load(str(path))
    assert np.array_equal(np.asarray(image.dataobj), field) and np.allclose(image.affine, affine)
    assert image.header.get_intent()[0] == "vector"
    save_nifti(np.zeros((2, 2, 2), np.int16), np.eye(4), tmp_path / "label.nii")  # replaced whole, plain intent
    assert nib.load(str(tmp_path / "label.nii")).header.get_intent()[0] == "none"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddf.nii.gz", "label.nii"]  # no temporary file left
