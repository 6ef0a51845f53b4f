"""The outputs of a field: sampled from the moving image's own grid, and brought back to the fixed file's grid."""

from __future__ import annotations

import numpy as np
import torch

from cir_monai.nifti import save_nifti
from cir_monai.transforms import registration_preprocessing
from cir_monai.warping import FileGridInverter, field_in_world, sample_moving

LPS = np.array([[-2.0, 0, 0, 40], [0, -2.0, 0, 50], [0, 0, 2.0, -30], [0, 0, 0, 1]])  # not RAS: reoriented


def _pair(tmp_path):
    rng = np.random.default_rng(0)
    image = np.zeros((16, 18, 14), np.float32)
    image[3:13, 4:15, 3:11] = rng.random((10, 11, 8), dtype=np.float32) + 0.5
    label = (image > 1.0).astype(np.int16) + (image > 1.3)
    for name, data in (("fixed", image), ("moving", image), ("moving_label", label)):
        save_nifti(data, LPS, tmp_path / f"{name}.nii.gz")
    return {k: str(tmp_path / f"{k}.nii.gz") for k in ("fixed", "moving", "moving_label")}, image, label


def test_zero_field_gives_the_moving_files_back_on_the_fixed_file_grid(tmp_path):
    """A zero field through the whole chain (reorient, own-grid sampling, Invertd) reproduces the moving file."""
    pair, image, label = _pair(tmp_path)
    preprocessing = registration_preprocessing(spatial_size=None, pixdim=None, keep_moving_grid=True)
    data = preprocessing(pair)
    fixed = data["fixed"]
    assert not np.allclose(fixed.affine.numpy(), LPS)  # reoriented to RAS
    own_grid = {key: (data[key].as_tensor()[None].float(), data[key].affine) for key in ("moving_raw", "moving_label")}
    zero = torch.zeros(1, 3, *fixed.shape[1:])
    outputs = sample_moving(own_grid, zero, fixed.affine)
    assert sorted(outputs) == ["warped", "warped_label"]
    invert = FileGridInverter(preprocessing)
    np.testing.assert_allclose(invert("warped", outputs["warped"], fixed)[0], image, atol=1e-5)
    np.testing.assert_array_equal(invert("warped_label", outputs["warped_label"], fixed)[0], label)


def test_field_in_world_is_back_on_the_file_grid_as_world_vectors(tmp_path):
    """A shift of one voxel along the reoriented grid's first axis is that axis's world vector (2 mm along R); on the
    file grid it stays that world vector at every voxel (Invertd changes the grid, not the vectors)."""
    pair, _, _ = _pair(tmp_path)
    preprocessing = registration_preprocessing(spatial_size=None, pixdim=None, keep_moving_grid=True)
    fixed = preprocessing(pair)["fixed"]
    ddf = torch.zeros(1, 3, *fixed.shape[1:])
    ddf[:, 0] = 1.0
    world = field_in_world(ddf, fixed.affine)
    back = FileGridInverter(preprocessing)("ddf", world, fixed)
    assert back.shape == (3, 16, 18, 14)
    np.testing.assert_allclose(back[:, 5, 5, 5], np.asarray(fixed.affine)[:3, 0], atol=1e-5)
    np.testing.assert_allclose(back, back[:, :1, :1, :1] * np.ones_like(back), atol=1e-5)
