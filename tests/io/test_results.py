"""Writing a pair's results: DDF units, parallel atomic NIfTI files, the pair record."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from cir_monai.conventions import voxel_to_world
from cir_monai.io.results import (
    check_pair_folder,
    ddf_array,
    ddf_from_array,
    image_array,
    lam_tag,
    pair_record,
    transform_record,
    write_outputs,
)
from cir_monai.nifti import save_nifti

AFFINE = np.array([[-1.5, 0, 0, 90], [0, 2.0, 0, -120], [0, 0, 1.0, -70], [0, 0, 0, 1]])


def test_ddf_array_units():
    """voxel: back to the grid's voxels; mm: RAS as given; itk: x and y negated (LPS); all (X, Y, Z, 1, 3)."""
    voxels = torch.randn(1, 3, 4, 5, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    world = voxel_to_world(voxels, AFFINE)[0].numpy()
    got = {units: ddf_array(world, units, AFFINE) for units in ("voxel", "mm", "itk")}
    assert all(a.shape == (4, 5, 6, 1, 3) and a.dtype == np.float32 for a in got.values())
    np.testing.assert_allclose(got["voxel"][..., 0, :], np.moveaxis(voxels[0].numpy(), 0, -1), atol=1e-5)
    np.testing.assert_allclose(got["mm"][..., 0, :], np.moveaxis(world, 0, -1), atol=1e-5)
    np.testing.assert_allclose(got["itk"][..., 0, :], got["mm"][..., 0, :] * [-1, -1, 1], atol=1e-5)
    with pytest.raises(ValueError, match="cm"):
        ddf_array(world, "cm", AFFINE)


def test_ddf_from_array_reads_every_unit_back_into_voxels():
    """The inverse of ddf_array (what `cir-monai apply` samples with), for each unit; a wrong shape or unit is named."""
    voxels = torch.randn(1, 3, 4, 5, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    world = voxel_to_world(voxels, AFFINE)[0].numpy()
    for units in ("voxel", "mm", "itk"):
        back = ddf_from_array(ddf_array(world, units, AFFINE), units, AFFINE)
        assert back.shape == (1, 3, 4, 5, 6) and back.dtype == torch.float32
        torch.testing.assert_close(back, voxels.float(), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="cm"):
        ddf_from_array(ddf_array(world, "mm", AFFINE), "cm", AFFINE)
    with pytest.raises(ValueError, match=r"\(X, Y, Z, 1, 3\), got \(4, 5, 6\)"):
        ddf_from_array(np.zeros((4, 5, 6), np.float32), "voxel", AFFINE)


def test_transform_record(tmp_path):
    record = transform_record({"fixed": "f.nii.gz", "moving": "m.nii.gz", "moving_label": "l.nii.gz"}, 0.5, "itk",
                              total=True, inverse=False)
    assert record == {"format": "cir-monai transform", "version": 1, "lam": 0.5, "ddf": "ddf.nii.gz",
                      "ddf_inverse": None, "units": "itk", "grid": "fixed", "total": True,
                      "fixed": str(Path("f.nii.gz").absolute()), "moving": str(Path("m.nii.gz").absolute())}


def test_write_outputs_writes_every_file_with_its_intent(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"warped": rng.random((6, 7, 8), dtype=np.float32),
              "warped_label": image_array(rng.integers(0, 5, (1, 6, 7, 8)).astype(np.float32), label=True),
              "ddf": rng.random((6, 7, 8, 1, 3), dtype=np.float32)}
    paths = write_outputs(tmp_path / "lam_1", arrays, AFFINE)
    assert sorted(p.name for p in (tmp_path / "lam_1").iterdir()) == ["ddf.nii.gz", "warped.nii.gz",
                                                                       "warped_label.nii.gz"]
    for name, array in arrays.items():
        image = nib.load(paths[name])
        np.testing.assert_array_equal(np.asarray(image.dataobj), array)
        np.testing.assert_allclose(image.affine, AFFINE)
        assert image.header.get_intent()[0] == ("vector" if name == "ddf" else "none")
    assert nib.load(paths["warped_label"]).get_data_dtype() == np.int16


def test_pair_folder_of_another_pair_is_refused(tmp_path):
    pair = {"fixed": str(tmp_path / "f.nii.gz"), "moving": str(tmp_path / "m.nii.gz")}
    save_nifti(np.zeros((2, 2, 2), np.float32), np.eye(4), tmp_path / "f.nii.gz")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "pair.json").write_text(__import__("json").dumps(pair_record(pair)))
    check_pair_folder(tmp_path / "out", pair)  # the same pair: fine
    with pytest.raises(ValueError, match="another pair"):
        check_pair_folder(tmp_path / "out", {**pair, "moving": str(tmp_path / "other.nii.gz")})
    assert lam_tag(1.0) == "lam_1" and lam_tag(0.1) == "lam_0.1"
