# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Apply a written registration to other images (``cir-monai apply``), as ``antsApplyTransforms`` does.

A ``cir-monai register`` λ folder (``OUT/<pair>/lam_<λ>/``) holds the field ``ddf.nii.gz`` (and with
``--inverse`` ``ddf_inverse.nii.gz``) and :data:`~cir_monai.io.results.TRANSFORM_RECORD`, which says the
field's units (``voxel``, ``itk`` or ``mm``), that it lies on the fixed file's grid (its NIfTI affine is the fixed
file's) and whether it is the total field (``--affine``: the affine pre-alignment included).

Conventions (:mod:`cir_monai.conventions`, read back by :func:`~cir_monai.io.results.ddf_from_array`):
the field ``u`` is ``(1, 3, X, Y, Z)`` in voxels of the fixed grid ``F`` (4×4 voxel→RAS mm); fixed voxel ``x``
corresponds to the world point ``F (x + u(x))`` of the moving scan, where the moving file puts it.

* **forward** (default): an image on ANY grid ``G`` (its own affine: any spacing, orientation, field of view) is
  sampled once, at ``G⁻¹ F (x + u(x))`` for every fixed voxel ``x``: trilinear, or nearest with ``label=True``,
  zero outside the image (:func:`~cir_monai.networks.warp_from_grid`, the call ``register`` makes for
  ``warped.nii.gz``, so applying to the moving image reproduces it). Output: the fixed grid's shape and affine.
* **inverse** (``inverse=True``, needs ``register --inverse``): ``v`` (``ddf_inverse.nii.gz``) inverts ``u`` on
  the fixed grid: the point ``y`` (fixed voxels) of the moving scan corresponds to the fixed point ``F (y + v(y))``.
  A fixed-space image is put onto the moving file's grid ``M``: for each moving voxel ``m``, ``y = F⁻¹ M m``, ``v``
  is interpolated there (trilinear; beyond the fixed grid's field of view ``v`` keeps its border value, an
  extrapolation: only the fixed field of view is registered), and the image is sampled at ``G⁻¹ F (y + v(y))``.
  This is what ITK's ``DisplacementFieldTransform`` of the field does inside the fixed field of view.
  Output: the moving file's shape and affine.

Outputs are NIfTI, written atomically (:func:`~cir_monai.nifti.save_nifti`): float32 for images, the input's dtype
for label maps (nearest neighbour keeps the labels; exact up to 2²⁴, the float32 sampling).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from cir_monai.conventions import voxel_to_world, world_to_voxel
from cir_monai.io.results import TRANSFORM_RECORD, ddf_from_array
from cir_monai.networks import warp_from_grid
from cir_monai.nifti import save_nifti

__all__ = ["load_transform", "read_volume", "apply_transform"]


def load_transform(transform_dir: str | os.PathLike) -> dict:
    """The :data:`~cir_monai.io.results.TRANSFORM_RECORD` of a λ folder, its file names made absolute paths.

    Raises:
        ValueError: the folder is not a λ folder of ``cir-monai register`` (the missing file named).
    """
    folder = Path(transform_dir).expanduser()
    record_file = folder / TRANSFORM_RECORD
    if not record_file.is_file():
        found = sorted(str(p.parent) for pattern in ("lam_*/" + TRANSFORM_RECORD, "*/lam_*/" + TRANSFORM_RECORD)
                       for p in folder.glob(pattern))
        hint = (f"; its λ folders: {', '.join(found[:4])}{', ...' if len(found) > 4 else ''}" if found
                else "; give a lam_<λ> folder written by cir-monai register")
        what = "no such folder" if not folder.is_dir() else f"{TRANSFORM_RECORD} is missing"
        raise ValueError(f"{folder} is not a transform folder ({what}){hint}")
    try:
        record = json.loads(record_file.read_text())
    except ValueError as err:
        raise ValueError(f"{record_file} is not a transform record of cir-monai register: {err}") from None
    missing = [key for key in ("ddf", "units", "grid") if not isinstance(record, dict) or key not in record]
    if missing:
        raise ValueError(f"{record_file} is not a transform record of cir-monai register (no {', '.join(missing)})")
    for key in ("ddf", "ddf_inverse"):
        if record.get(key):
            record[key] = str(folder / record[key])
    if not Path(record["ddf"]).is_file():
        raise ValueError(f"{folder} is not a complete transform folder: {Path(record['ddf']).name} is missing")
    return record


def read_volume(path: str | os.PathLike, label: bool = False) -> tuple[torch.Tensor, np.ndarray, np.dtype]:
    """Read one 3D volume as MONAI reads ``register``'s inputs (NIfTI or any format ITK reads; RAS affine).

    Returns:
        ``((1, 1, X, Y, Z) float32 tensor, its 4×4 voxel→RAS affine, the stored dtype)``.

    Raises:
        ValueError / FileNotFoundError: unreadable, not one 3D volume, or (``label``) non-integer values.
    """
    from cir_monai.transforms import ReadableLoadImaged

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {path}")
    image = ReadableLoadImaged("image", image_only=True, ensure_channel_first=True, dtype=None)(
        {"image": str(path)})["image"]
    if image.ndim != 4:
        raise ValueError(f"{path} is a {image.ndim - 1}D image (shape {tuple(image.shape[1:])}): "
                         "apply needs 3D volumes")
    if image.shape[0] != 1:
        raise ValueError(f"{path} holds {image.shape[0]} volumes (4D, shape {tuple(image.shape[1:])} × "
                         f"{image.shape[0]}): apply needs one 3D volume")
    dtype = torch.empty(0, dtype=image.dtype).numpy().dtype  # as read (MONAI reads uint16 as int32)
    if label and not np.issubdtype(dtype, np.integer):
        values = image.as_tensor().double()
        fraction = (values - values.round()).abs()
        if bool((fraction > 1e-3).any()):
            example = float(values.flatten()[int(fraction.flatten().argmax())])
            raise ValueError(f"{path} has non-integer values (e.g. {example:g}): --label (label=True) needs a "
                             "label map of integers; apply it without --label for linear interpolation")
    return image.as_tensor()[None].float(), np.asarray(image.affine, dtype=np.float64), dtype


def _read_field(path: str, units: str) -> tuple[torch.Tensor, np.ndarray]:
    """A written field → ``((1, 3, X, Y, Z)`` voxels of its grid, the grid's 4×4 affine)."""
    image = nib.load(path)
    affine = np.asarray(image.affine, dtype=np.float64)
    try:
        return ddf_from_array(np.asarray(image.dataobj), units, affine), affine
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def _output_paths(images: Sequence[Path], out: Path) -> list[Path]:
    """One NIfTI path per image: ``out`` itself for one image (unless it is a folder), else ``out/<image name>``."""
    def nifti_name(path: Path) -> str:
        return path.name if path.name.endswith((".nii", ".nii.gz")) else path.name.split(".")[0] + ".nii.gz"

    if len(images) == 1 and not out.is_dir():
        if not out.name.endswith((".nii", ".nii.gz")):
            raise ValueError(f"--out {out}: for one image give a .nii.gz (or .nii) file or an existing folder")
        return [out]
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file: give a folder for several images")
    paths = [out / nifti_name(p) for p in images]
    clash = {p.name for p in paths if paths.count(p) > 1}
    if clash:
        raise ValueError(f"images of the same name ({', '.join(sorted(clash))}) would overwrite each other in {out}: "
                         "apply them one at a time with --out FILE")
    return paths


@torch.no_grad()
def apply_transform(transform_dir: str | os.PathLike, images: str | os.PathLike | Sequence[str | os.PathLike],
                    out: str | os.PathLike, label: bool = False, inverse: bool = False) -> list[Path]:
    """Sample each image once, from its own grid, through a written registration (see the module docstring).

    Args:
        transform_dir: a ``lam_<λ>`` folder of ``cir-monai register`` (holds :data:`TRANSFORM_RECORD`).
        images: one image file or several (3D, any grid; NIfTI or any format ITK reads).
        out: the output ``.nii.gz`` file for one image; a folder for several (one output per input, named after it).
        label: nearest neighbour (label maps of integers; their dtype is kept) instead of trilinear interpolation.
        inverse: put fixed-space images onto the moving file's grid with ``ddf_inverse.nii.gz``.

    Returns:
        the written files, in the order of ``images``.

    Raises:
        ValueError / FileNotFoundError: not a transform folder, no inverse written, an image that is not one readable
            3D volume, ``label`` on non-integer values, an output that is not a NIfTI file or folder. Every image
            is checked before anything is written.
    """
    record = load_transform(transform_dir)
    sources = [Path(images).expanduser()] if isinstance(images, (str, os.PathLike)) else [
        Path(p).expanduser() for p in images]
    if not sources:
        raise ValueError("no image to apply the transform to: give one or more image files")
    targets = _output_paths(sources, Path(out).expanduser())
    if inverse and not record.get("ddf_inverse"):
        raise ValueError(f"{transform_dir} has no inverse field (ddf_inverse.nii.gz): register with --inverse "
                         "(bundle: inverse: true) to write it")
    if inverse and not Path(record["ddf_inverse"]).is_file():
        raise ValueError(f"{transform_dir} is not a complete transform folder: ddf_inverse.nii.gz is missing")
    volumes = [read_volume(path, label) for path in sources]  # every input checked before anything is written
    mode = "nearest" if label else "bilinear"

    if not inverse:
        field, grid = _read_field(record["ddf"], record["units"])  # (1, 3, *S) voxels of the fixed grid
    else:
        moving = record.get("moving")
        if not moving or not Path(moving).is_file():
            raise ValueError(f"the moving image {moving} of {TRANSFORM_RECORD} is missing: --inverse puts images on "
                             "its grid")
        moving_image, grid, _ = read_volume(moving)  # the moving file's grid, where the inverse puts images
        shape = moving_image.shape[2:]
        del moving_image
        inverse_field, fixed_grid = _read_field(record["ddf_inverse"], record["units"])
        # v at the world points of the moving voxels (fixed voxels; border: the field's edge value beyond it) ...
        at_moving = warp_from_grid(inverse_field, fixed_grid, torch.zeros(1, 3, *shape), grid, "bilinear", "border")
        # ... as displacements in voxels of the moving grid: moving voxel m samples the image at M (m + field(m))
        field = world_to_voxel(voxel_to_world(at_moving, fixed_grid), grid)

    written = []
    for (image, affine, dtype), target in zip(volumes, targets):
        sampled = warp_from_grid(image, affine, field, grid, mode, "zeros")[0, 0].numpy()
        array = np.rint(sampled).astype(dtype) if label else sampled.astype(np.float32)
        target.parent.mkdir(parents=True, exist_ok=True)
        written.append(save_nifti(array, grid, target))
    return written
