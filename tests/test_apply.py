"""`cir-monai apply`: a written registration applied to other images, from their own grid, in one interpolation.

One small pair (a synthetic phantom, 36 × 40 × 32 at 1.5/1.5/2 mm, the fixed file flipped in x) is registered once
with the shipped model (``refine=0``), the moving scan on its own grid (1.25/1.6/1.8 mm, flipped in y, shifted).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy.ndimage import affine_transform

from cir_monai.apply import apply_transform
from cir_monai.cli import main
from cir_monai.data import synthetic_pair
from cir_monai.engines.inference import register_files

SHIPPED = Path(__file__).resolve().parents[1] / "bundle" / "models" / "model.pt"
SHAPE = (36, 40, 32)


def grid(spacing, origin, rotation=np.eye(3)) -> np.ndarray:
    """A 4×4 voxel→RAS affine: ``rotation @ diag(spacing)``, then ``origin``."""
    out = np.eye(4)
    out[:3, :3] = np.asarray(rotation) @ np.diag(spacing)
    out[:3, 3] = origin
    return out


#: the fixed file: flipped in x (not RAS: the runner reorients it and brings every output back)
FIXED = grid([-1.5, 1.5, 2.0], [30.0, -20.0, 5.0])
#: the moving file's own grid: other spacing, flipped in y, field of view shifted by a few mm
MOVING = grid([1.25, -1.6, 1.8], [-28.0, 44.0, 8.0])
MOVING_SHAPE = (44, 38, 34)


def _rotation_z(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


#: a second image's grid: oblique (15° about z), axes permuted (its first axis runs along z), other spacing, and a
#: field of view that covers only part of the fixed one
OTHER = grid([1.3, 1.1, 1.7], [-26.0, -16.0, 4.0], _rotation_z(15.0) @ np.eye(3)[:, [2, 0, 1]])
OTHER_SHAPE = (36, 46, 32)


def resample(volume: np.ndarray, source: np.ndarray, target: np.ndarray, shape, order: int) -> np.ndarray:
    """``volume`` (on the grid ``source``) at the voxels of the grid ``target`` in world space (scipy; zeros out)."""
    voxel_map = np.linalg.inv(source) @ target
    return affine_transform(volume, voxel_map[:3, :3], voxel_map[:3, 3], output_shape=shape, order=order)


def save(path: Path, array: np.ndarray, affine: np.ndarray) -> str:
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return str(path)


def load(path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """The pair's files, and a second image (the moving scan at 1.7 times the intensity) on another grid."""
    folder = tmp_path_factory.mktemp("apply_data")
    pair = synthetic_pair(SHAPE, seed=2)
    image = pair["moving"][0, 0].numpy().astype(np.float64) * 800.0
    label = pair["moving_label"][0, 0].numpy()
    return {
        "fixed": save(folder / "fixed.nii.gz", (pair["fixed"][0, 0].numpy() * 800.0).astype(np.float32), FIXED),
        "moving": save(folder / "moving.nii.gz",
                       resample(image, FIXED, MOVING, MOVING_SHAPE, 1).astype(np.float32), MOVING),
        "moving_label": save(folder / "moving_label.nii.gz",
                             resample(label, FIXED, MOVING, MOVING_SHAPE, 0).astype(np.int16), MOVING),
        "t2": save(folder / "t2.nii.gz", resample(1.7 * image, FIXED, OTHER, OTHER_SHAPE, 1).astype(np.float32), OTHER),
    }


@pytest.fixture(scope="module")
def registered(files, tmp_path_factory) -> Path:
    """The λ = 1 folder of `register` with the ITK-unit field and its inverse."""
    out = tmp_path_factory.mktemp("apply_out")
    records = register_files(files["fixed"], files["moving"], [1.0], out, moving_label=files["moving_label"],
                             model=SHIPPED, ddf_units="itk", inverse=True, refine=0)
    return Path(records[1.0]["folder"])


def test_the_record_says_how_to_apply_the_field(registered, files):
    record = json.loads((registered / "transform.json").read_text())
    assert record == {"format": "cir-monai transform", "version": 1, "lam": 1.0, "ddf": "ddf.nii.gz",
                      "ddf_inverse": "ddf_inverse.nii.gz", "units": "itk", "grid": "fixed", "total": False,
                      "fixed": files["fixed"], "moving": files["moving"]}
    assert np.allclose(nib.load(registered / "ddf.nii.gz").affine, FIXED)


def test_apply_to_the_moving_image_reproduces_warped(registered, files, tmp_path):
    """(a) The same single sampling from the moving grid as `register`: bound 1e-4 of the intensity range, measured
    2e-6 (float32 arithmetic on two routes: on the reoriented fixed grid there, the fixed file's grid here)."""
    (written,) = apply_transform(registered, files["moving"], tmp_path / "again.nii.gz")
    ours, warped = load(written), load(registered / "warped.nii.gz")
    assert ours.dtype == np.float32 and np.allclose(nib.load(written).affine, FIXED) and ours.shape == SHAPE
    field = load(registered / "ddf.nii.gz")
    assert np.abs(field).max() > 1.0  # a real field (mm)
    scale = np.abs(warped).max()
    assert np.abs(ours - warped).max() < 1e-4 * scale, np.abs(ours - warped).max() / scale


def test_apply_to_the_moving_label_reproduces_warped_label(registered, files, tmp_path):
    """(b) Nearest neighbour keeps the labels and their dtype; equal to warped_label except where a sample point
    lies within float32 error (~1e-5 voxel) of a half-voxel tie: bound 1e-4 of the voxels, measured 0."""
    (written,) = apply_transform(registered, [files["moving_label"]], tmp_path / "label.nii.gz", label=True)
    ours, warped = load(written), load(registered / "warped_label.nii.gz")
    assert ours.dtype == np.int16 and set(np.unique(ours)) <= set(np.unique(load(files["moving_label"])))
    assert (ours != warped).mean() <= 1e-4, (ours != warped).mean()


def _itk_resample(image_path: str, field_path: Path, reference_path: str) -> np.ndarray:
    """ITK: ``image`` through the displacement field (LPS mm, ``DisplacementFieldTransform``), linear, onto the grid of
    ``reference``; as an ``(X, Y, Z)`` array."""
    import itk

    read = itk.imread(str(field_path), itk.Vector[itk.F, 3])  # ITK reads the components as LPS mm
    field = itk.Image[itk.Vector[itk.D, 3], 3].New()  # the transform's pixel type: a copy in double
    field.SetRegions(read.GetLargestPossibleRegion())
    field.CopyInformation(read)
    field.Allocate()
    itk.array_view_from_image(field)[...] = itk.array_view_from_image(read)
    transform = itk.DisplacementFieldTransform[itk.D, 3].New()
    transform.SetDisplacementField(field)
    image = itk.imread(image_path, itk.F)
    reference = itk.imread(reference_path, itk.F)
    out = itk.resample_image_filter(image, transform=transform, use_reference_image=True,
                                    reference_image=reference, default_pixel_value=0.0)
    return np.transpose(itk.array_from_image(out), (2, 1, 0))  # ITK arrays are (z, y, x)


def _inside(points: np.ndarray, shape, margin: float = 1.0) -> np.ndarray:
    """Voxel positions ``(3, *S)`` at least ``margin`` voxels inside a grid of ``shape``."""
    upper = np.asarray(shape, dtype=np.float64).reshape(3, *([1] * (points.ndim - 1))) - 1 - margin
    return ((points >= margin) & (points <= upper)).all(0)


def _voxel_points(field_mm_lps: np.ndarray, grid_affine: np.ndarray, image_affine: np.ndarray) -> np.ndarray:
    """Where the voxels of ``grid_affine`` sample an image on ``image_affine`` through a LPS-mm field ``(*S, 1, 3)``."""
    shape = field_mm_lps.shape[:3]
    index = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")).reshape(3, -1)
    world = grid_affine[:3, :3] @ index + grid_affine[:3, 3:4]
    world += (field_mm_lps[..., 0, :].reshape(-1, 3) * [-1.0, -1.0, 1.0]).T  # LPS → RAS
    voxel = np.linalg.inv(image_affine) @ np.vstack([world, np.ones((1, world.shape[1]))])
    return voxel[:3].reshape(3, *shape)


def test_an_image_on_another_grid_lands_where_itk_puts_it(registered, files, tmp_path):
    """(c) A second image on an oblique, permuted, partial grid, sampled from its own grid through the ITK-unit
    field, agrees with ITK's ResampleImageFilter + DisplacementFieldTransform: bound 1e-4 of the range, measured 2e-6,
    where the sample point lies a voxel inside the image (at its edge ITK extrapolates half a voxel, grid_sample
    fades to zero)."""
    (written,) = apply_transform(registered, files["t2"], tmp_path / "t2_on_fixed.nii.gz")
    ours = load(written)
    by_itk = _itk_resample(files["t2"], registered / "ddf.nii.gz", files["fixed"])
    inside = _inside(_voxel_points(load(registered / "ddf.nii.gz"), FIXED, OTHER), OTHER_SHAPE)
    assert 0.3 < inside.mean() < 0.95  # the image covers part of the fixed field of view
    scale = np.abs(by_itk).max()
    assert np.abs(ours - by_itk)[inside].max() < 1e-4 * scale, np.abs(ours - by_itk)[inside].max() / scale
    assert np.abs(ours[~_inside(_voxel_points(load(registered / "ddf.nii.gz"), FIXED, OTHER), OTHER_SHAPE,
                                margin=-1.0)]).max() == 0  # zero outside the image
    # and it shows the same anatomy as the moving image warped (another grid, so another interpolation)
    expected = 1.7 * load(registered / "warped.nii.gz")
    assert np.corrcoef(ours[inside], expected[inside])[0, 1] > 0.95, np.corrcoef(ours[inside], expected[inside])


def test_the_inverse_puts_fixed_space_images_on_the_moving_grid(registered, files, tmp_path):
    """(e) ddf_inverse sampled at the moving voxels' world points: ITK's DisplacementFieldTransform of the inverse
    field onto the moving grid agrees where those points lie inside the fixed grid (beyond it the field is
    extrapolated: ITK takes zero displacement, we the border value). Bound 1e-4 of the range, measured 2e-6."""
    (written,) = apply_transform(registered, files["fixed"], tmp_path / "fixed_on_moving.nii.gz", inverse=True)
    ours = load(written)
    assert ours.shape == MOVING_SHAPE and np.allclose(nib.load(written).affine, MOVING)
    by_itk = _itk_resample(files["fixed"], registered / "ddf_inverse.nii.gz", files["moving"])
    index = np.stack(np.meshgrid(*[np.arange(s) for s in MOVING_SHAPE], indexing="ij")).reshape(3, -1)
    in_fixed = (np.linalg.inv(FIXED) @ MOVING @ np.vstack([index, np.ones((1, index.shape[1]))]))[:3]
    inside = _inside(in_fixed.reshape(3, *MOVING_SHAPE), SHAPE, margin=1.5)
    assert inside.mean() > 0.5
    scale = np.abs(by_itk).max()
    assert np.abs(ours - by_itk)[inside].max() < 1e-4 * scale, np.abs(ours - by_itk)[inside].max() / scale
    # the round trip: warped.nii.gz taken back by the inverse is the moving image again (measured mean error 0.009 of
    # the range; 0.043 when it is only resampled onto the moving grid, without the inverse)
    (back,) = apply_transform(registered, registered / "warped.nii.gz", tmp_path / "back.nii.gz", inverse=True)
    moving, warped = load(files["moving"]), load(registered / "warped.nii.gz").astype(np.float64)
    error = np.abs(load(back) - moving)[inside].mean() / np.abs(moving).max()
    untransformed = np.abs(resample(warped, FIXED, MOVING, MOVING_SHAPE, 1) - moving)[inside].mean() / moving.max()
    assert error < 0.02 and error < untransformed / 3, (error, untransformed)


def test_affine_total_field_reproduces_warped(files, tmp_path):
    """(d) With --affine the field is the total one, from where the moving file puts the scan: applying it to the
    moving image and label reproduces the outputs (image: bound 1e-4 of the range, measured 3e-6; label: bound 1e-4
    of the voxels, measured 0)."""
    moved = grid([1.25, -1.6, 1.8], [-28.0 + 5.0, 44.0 - 4.0, 8.0 + 3.0])  # the same scan, 5/-4/3 mm elsewhere
    paths = {key: save(tmp_path / f"{key}.nii.gz", load(files[key]), moved) for key in ("moving", "moving_label")}
    records = register_files(files["fixed"], paths["moving"], [1.0], tmp_path / "out",
                             moving_label=paths["moving_label"], model=SHIPPED, affine=True, refine=0)
    folder = Path(records[1.0]["folder"])
    assert json.loads((folder / "transform.json").read_text())["total"] is True
    (image, label) = (apply_transform(folder, paths["moving"], tmp_path / "image.nii.gz"),
                      apply_transform(folder, paths["moving_label"], tmp_path / "label.nii.gz", label=True))
    warped = load(folder / "warped.nii.gz")
    assert np.abs(load(image[0]) - warped).max() < 1e-4 * np.abs(warped).max()
    assert (load(label[0]) != load(folder / "warped_label.nii.gz")).mean() <= 1e-4
    with pytest.raises(ValueError, match="has no inverse field .*register with --inverse"):
        apply_transform(folder, paths["moving"], tmp_path / "nope.nii.gz", inverse=True)


def test_the_command(registered, files, tmp_path, capsys):
    """(f) `cir-monai apply DIR IMAGE... --out OUT`: a folder for several images, one line per file; bad input is
    one line naming the problem."""
    out = tmp_path / "applied"
    assert main(["apply", str(registered), files["moving"], files["t2"], "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert sorted(p.name for p in out.iterdir()) == ["moving.nii.gz", "t2.nii.gz"]
    assert len(printed) == 3 and str(out / "t2.nii.gz") in printed[1] and printed[2].endswith(" s")
    np.testing.assert_array_equal(load(out / "moving.nii.gz"),
                                  load(apply_transform(registered, files["moving"], tmp_path / "m.nii.gz")[0]))
    assert main(["apply", str(registered), files["moving_label"], "--label", "--out", str(tmp_path / "l.nii.gz")]) == 0
    capsys.readouterr()
    for argv, message in [
        (["apply", str(registered.parent), files["moving"], "--out", str(tmp_path / "x.nii.gz")],
         f"{registered.parent} is not a transform folder (transform.json is missing); its λ folders: {registered}"),
        (["apply", str(registered), files["moving"], "--label", "--out", str(tmp_path / "x.nii.gz")],
         f"{files['moving']} has non-integer values"),
        (["apply", str(registered), files["moving"], "--out", str(tmp_path / "x.mha")], "give a .nii.gz"),
        (["apply", str(registered), files["moving"]], "--out"),
        (["apply", str(registered), "--out", str(tmp_path / "x.nii.gz")], "no image"),
        (["apply", str(registered), "--label", files["moving_label"], "--out", str(tmp_path / "x.nii.gz")],
         "--label takes no value"),  # fire would read the image as the flag's value
    ]:
        assert main(argv) == 1, argv
        error = capsys.readouterr().err
        assert error.startswith("cir-monai: error: ") and message in error and error.count("\n") == 1, error
    assert main(["apply", str(registered), files["moving"], "--outt", "x"]) == 2
    assert "unknown option --outt for `apply` (options: --transform-dir, --out, --label, --inverse)" in \
        capsys.readouterr().err
    assert not (tmp_path / "x.nii.gz").exists()


def test_not_3d_images_are_refused_before_anything_is_written(registered, files, tmp_path):
    four = save(tmp_path / "four.nii.gz", np.zeros((6, 7, 8, 2), np.float32), np.eye(4))
    with pytest.raises(ValueError, match=r"four.nii.gz holds 2 volumes \(4D"):
        apply_transform(registered, [files["moving"], four], tmp_path / "out")
    flat = save(tmp_path / "flat.nii.gz", np.zeros((6, 7), np.float32), np.eye(4))
    with pytest.raises(ValueError, match=r"flat.nii.gz is a 2D image"):
        apply_transform(registered, flat, tmp_path / "flat_out.nii.gz")
    with pytest.raises(ValueError, match="would overwrite each other"):
        apply_transform(registered, [files["moving"], files["moving"]], tmp_path / "out")
    assert not (tmp_path / "out").exists()
