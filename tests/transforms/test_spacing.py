"""The one Spacingd workaround: why it exists (MONAI's Spacingd on such dictionaries) and that it inverts."""

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import LoadImaged, Spacingd

from cir_monai.transforms import KeywiseSpacingd


@pytest.fixture
def loaded(tmp_path):
    """A loaded NIfTI image (MONAI's failure needs the metadata of a file) and a label map on its grid."""
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.random((10, 12, 8)).astype(np.float32), np.eye(4)), tmp_path / "t1.nii.gz")
    nib.save(nib.Nifti1Image(rng.choice([0, 3], (10, 12, 8)).astype(np.int16), np.eye(4)), tmp_path / "lab.nii.gz")
    load = LoadImaged(["image", "image_label"], image_only=True, ensure_channel_first=True)
    return lambda: load({"image": str(tmp_path / "t1.nii.gz"), "image_label": str(tmp_path / "lab.nii.gz")})


def test_monai_spacingd_fails_on_the_entries_it_works_around(loaded):
    # if MONAI stops failing here, KeywiseSpacingd can go: this test says so
    with pytest.raises(AttributeError, match="update"):
        Spacingd("image", pixdim=2.0)({**loaded(), "image_path": "/data/T1.nii.gz"})  # MONAI Label's request
    with pytest.raises(AttributeError, match="update"):
        Spacingd("image", pixdim=2.0)(loaded())  # a label beside its image


def test_keywise_spacingd_resamples_each_key_keeps_other_entries_and_inverts(loaded):
    data = {**loaded(), "image_path": "/data/T1.nii.gz"}
    spacer = KeywiseSpacingd(["image", "image_label"], pixdim=2.0, modes=["bilinear", "nearest"])
    out = spacer(data)
    assert out["image_path"] == "/data/T1.nii.gz"
    expected = Spacingd("image", pixdim=2.0)({"image": loaded()["image"]})["image"]  # MONAI's, one key alone
    assert torch.equal(out["image"].as_tensor(), expected.as_tensor())
    assert out["image_label"].shape == expected.shape and set(out["image_label"].unique().tolist()) <= {0.0, 3.0}
    assert np.allclose(np.asarray(out["image"].affine)[:3, :3], 2.0 * np.eye(3))
    back = spacer.inverse(out)
    assert tuple(back["image"].shape) == (1, 10, 12, 8) and tuple(back["image_label"].shape) == (1, 10, 12, 8)
    assert np.allclose(np.asarray(back["image"].affine), np.eye(4))


def test_keywise_spacingd_one_mode_for_all_and_a_wrong_count_is_named(loaded):
    out = KeywiseSpacingd(["image", "image_label"], pixdim=2.0, modes="nearest")(loaded())
    assert set(out["image_label"].unique().tolist()) <= {0.0, 3.0}
    with pytest.raises(ValueError, match="2 keys but 3 modes"):
        KeywiseSpacingd(["a", "b"], pixdim=1.0, modes=["bilinear"] * 3)
