# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The embedded default data set: the MNI152 2009a brain with a tissue label map.

Built on the machine from files that ship inside the ``nilearn`` wheel on PyPI
(BSD-3-Clause package; the template itself: Copyright (C) 1993–2009 Louis
Collins, McConnell Brain Imaging Centre, Montreal Neurological Institute,
McGill University, permissive licence, see ``bundle/docs/data_license.txt``):
the skull-stripped ICBM 2009a nonlinear symmetric T1 template and its grey- and
white-matter probability maps, 1 mm, 197×233×189. Nothing is downloaded.

Labels: 0 background (outside the brain), 1 CSF and other, 2 grey matter,
3 white matter: inside the brain, the most probable of (GM, WM, 1 − GM − WM).

The template is resampled to the working spacing (probability maps resampled
before the arg-max, so labels are not blocky), cropped to the brain with a
margin and padded to ``shape``. Subjects for training and evaluation are made
from it by :mod:`cir_monai.data.pairs` (random deformations and intensities).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from cir_monai.atomic import write_json
from cir_monai.defaults import cache_dir as _user_cache_dir
from cir_monai.frame import EMBEDDED_FRAME
from cir_monai.nifti import save_nifti

__all__ = [
    "EMBEDDED_FILES",
    "TISSUE_LABELS",
    "DEFAULT_SPACING",
    "DEFAULT_SHAPE",
    "nilearn_data_dir",
    "load_template",
    "build_embedded_template",
    "default_cache_dir",
]

EMBEDDED_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
TISSUE_LABELS = {0: "background", 1: "CSF and other", 2: "grey matter", 3: "white matter"}
#: working grid of the CPU-sized default (mm, voxels): the embedded frame's (the brain at 2 mm fits 80×96×80)
DEFAULT_SPACING = float(EMBEDDED_FRAME["spacing"][0])
DEFAULT_SHAPE = tuple(EMBEDDED_FRAME["spatial_size"])


def default_cache_dir() -> Path:
    """Where the template is built: :func:`cir_monai.defaults.cache_dir` (``$CIR_MONAI_CACHE`` or
    ``~/.cache/cir_monai``)."""
    return _user_cache_dir()


def nilearn_data_dir() -> Path:
    """The folder of data files inside the installed ``nilearn`` package (not imported).

    Raises:
        RuntimeError: ``nilearn`` is not installed or lacks the template files.
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded data set needs the 'nilearn' package: pip install nilearn")
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    missing = [name for name in EMBEDDED_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise RuntimeError(f"nilearn at {folder} lacks the MNI152 files {missing}; reinstall nilearn")
    return folder


def _resample(volume: np.ndarray, zoom: float, mode: str) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None, None]
    size = [max(1, int(round(s * zoom))) for s in volume.shape]
    return F.interpolate(t, size=size, mode=mode, align_corners=True)[0, 0].numpy()


def load_template(
    spacing: float = DEFAULT_SPACING, shape: Sequence[int] | None = DEFAULT_SHAPE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The MNI152 brain and its tissue labels on the working grid.

    Args:
        spacing: isotropic voxel size in mm (1 = the template's own grid).
        shape: pad/crop the brain's bounding box (centred) to this size; ``None`` keeps the box.

    Returns:
        ``image`` (float32 in [0, 1], background exactly 0), ``label`` (int16, see
        :data:`TISSUE_LABELS`), both ``(X, Y, Z)`` in RAS voxel order, and the 4×4 ``affine`` (mm).
    """
    folder = nilearn_data_dir()
    imgs = {k: nib.load(str(folder / v)) for k, v in EMBEDDED_FILES.items()}
    t1 = np.asarray(imgs["t1"].dataobj, dtype=np.float32) / 255.0
    gm = np.asarray(imgs["gm"].dataobj, dtype=np.float32) / 255.0
    wm = np.asarray(imgs["wm"].dataobj, dtype=np.float32) / 255.0
    affine = imgs["t1"].affine.copy()
    native = float(imgs["t1"].header.get_zooms()[0])
    zoom = native / float(spacing)
    if abs(zoom - 1.0) > 1e-6:
        t1, gm, wm = (_resample(v, zoom, "trilinear") for v in (t1, gm, wm))
        affine[:3, :3] *= 1.0 / zoom
    brain = t1 > 0.02
    other = np.clip(1.0 - gm - wm, 0.0, 1.0)
    label = (np.argmax(np.stack([other, gm, wm]), axis=0) + 1).astype(np.int16)
    label[~brain] = 0
    image = np.where(brain, t1, 0.0).astype(np.float32)
    image /= image.max()

    lo = np.array([np.nonzero(brain.any(axis=tuple(a for a in range(3) if a != d)))[0][0] for d in range(3)])
    hi = np.array([np.nonzero(brain.any(axis=tuple(a for a in range(3) if a != d)))[0][-1] + 1 for d in range(3)])
    size = hi - lo if shape is None else np.asarray(shape)
    start = (lo + hi) // 2 - size // 2  # window of `size` centred on the brain (may stick out: zero padded)
    out_image = np.zeros(tuple(size), np.float32)
    out_label = np.zeros(tuple(size), np.int16)
    src = [slice(max(s, 0), min(s + n, dim)) for s, n, dim in zip(start, size, image.shape)]
    dst = [slice(sl.start - s, sl.stop - s) for sl, s in zip(src, start)]
    out_image[tuple(dst)] = image[tuple(src)]
    out_label[tuple(dst)] = label[tuple(src)]
    affine[:3, 3] = affine[:3, :3] @ start + affine[:3, 3]
    return out_image, out_label, affine


def build_embedded_template(
    cache_dir: str | os.PathLike | None = None, spacing: float = DEFAULT_SPACING,
    shape: Sequence[int] | None = DEFAULT_SHAPE
) -> dict[str, Path]:
    """Write the template image and label map as NIfTI into ``cache_dir`` (once) and return their paths.

    Returns:
        ``{"image": Path, "label": Path}`` under ``cache_dir/template_<spacing>mm_<shape>/``.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    tag = f"template_{spacing:g}mm_{'x'.join(map(str, shape)) if shape is not None else 'box'}"
    folder = cache / tag
    paths = {"image": folder / "mni152_t1.nii.gz", "label": folder / "mni152_tissue_labels.nii.gz"}
    if all(p.is_file() for p in paths.values()):
        return paths
    image, label, affine = load_template(spacing, shape)
    folder.mkdir(parents=True, exist_ok=True)
    for key, data in (("image", image), ("label", label)):
        save_nifti(data, affine, paths[key])  # atomic: a half-written cache file is never picked up
    write_json(folder / "labels.json", TISSUE_LABELS)
    return paths
