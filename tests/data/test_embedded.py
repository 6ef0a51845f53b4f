from __future__ import annotations

import nibabel as nib
import numpy as np

from cir_monai.data import DEFAULT_SHAPE, build_embedded_template


def test_builds_from_an_empty_cache(tmp_path):
    paths = build_embedded_template(tmp_path / "cache")
    image = nib.load(str(paths["image"]))
    label = nib.load(str(paths["label"]))
    data, lab = image.get_fdata(), np.asarray(label.dataobj)
    assert data.shape == lab.shape == DEFAULT_SHAPE
    assert np.allclose(image.header.get_zooms(), 2.0) and np.allclose(image.affine, label.affine)
    assert set(np.unique(lab).tolist()) == {0, 1, 2, 3}
    assert data.min() == 0.0 and data.max() == 1.0 and np.all(data[lab == 0] == 0)
    # T1 contrast: white matter brighter than grey matter brighter than CSF
    means = [data[lab == k].mean() for k in (1, 2, 3)]
    assert means[0] < means[1] < means[2]
    # brain volume of an adult brain template, in litres (2 mm voxels = 8 µl)
    assert 1.2 < (lab > 0).sum() * 8e-6 < 2.2
    # MNI origin: the world point (0, 0, 0) lies inside the brain
    centre = np.linalg.inv(image.affine) @ np.array([0, 0, 0, 1.0])
    assert lab[tuple(np.round(centre[:3]).astype(int))] > 0
    mtime = paths["image"].stat().st_mtime_ns
    assert build_embedded_template(tmp_path / "cache")["image"].stat().st_mtime_ns == mtime  # cached
