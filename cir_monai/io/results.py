# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Writing a pair's results: folder layout, the record of which files they are of, DDF units, NIfTI files.

Layout: ``OUT/<pair id>/pair.json`` (:data:`PAIR_RECORD`) and ``OUT/<pair id>/lam_<λ>/<output>.nii.gz``
(:func:`lam_tag`), every file with the fixed file's affine and grid.

The DDF is written as a NIfTI vector field of shape ``(X, Y, Z, 1, 3)`` (intent "vector", :func:`ddf_array`):
``"voxel"`` gives displacements in voxels of the written grid, component ``i`` along array axis ``i`` (so
``monai.networks.blocks.Warp("bilinear", "zeros")`` of the moving image on the fixed grid reproduces ``warped``);
``"itk"`` gives world displacements in LPS millimetres, the convention ITK, ANTs (``antsApplyTransforms``) and
3D Slicer apply directly; ``"mm"`` gives world displacements in mm in the NIfTI (RAS+) frame.
:func:`ddf_from_array` reads such a field back into voxels (what :func:`cir_monai.apply.apply_transform` samples with).

Each λ folder also holds :data:`TRANSFORM_RECORD` (:func:`transform_record`): which field files it holds, their units
and grid, whether the field includes the affine pre-alignment, and the pair's files, so that the registration can be
applied to other images later (``cir-monai apply``).

:func:`write_outputs` writes the files of one λ in parallel threads (gzip compression, the slowest part of
writing a 1 mm result, runs outside Python's lock), each atomically (:func:`~cir_monai.nifti.save_nifti`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from cir_monai.conventions import ras_to_lps_vectors, world_to_voxel
from cir_monai.nifti import save_nifti

__all__ = ["DDF_UNITS", "PAIR_RECORD", "TRANSFORM_RECORD", "pair_record", "check_pair_folder", "lam_tag", "ddf_array",
           "ddf_from_array", "transform_record", "image_array", "write_outputs"]

#: units of a written DDF: voxels of the fixed grid (MONAI Warp), LPS mm (ITK / ANTs / Slicer), RAS mm (NIfTI world)
DDF_UNITS = ("voxel", "itk", "mm")

#: the record of which files a pair folder's results are of (``pair.json``)
PAIR_RECORD = "pair.json"

#: the record of how a λ folder's field is applied to other images (``transform.json``, :func:`transform_record`)
TRANSFORM_RECORD = "transform.json"


def pair_record(pair: Mapping) -> dict:
    """The two images of a pair as absolute paths, for :data:`PAIR_RECORD`."""
    return {k: str(Path(pair[k]).expanduser().absolute()) for k in ("fixed", "moving")}


def check_pair_folder(folder: str | os.PathLike, pair: Mapping) -> None:
    """Refuse to write ``pair``'s results into ``folder`` when its :data:`PAIR_RECORD` names another pair.

    Raises:
        ValueError: the folder holds another pair's results (their λ folders would mix).
    """
    record = Path(folder) / PAIR_RECORD
    if record.is_file() and json.loads(record.read_text()) != pair_record(pair):
        raise ValueError(f"{record.parent} holds the results of another pair ({record}): its λ folders would mix; "
                         "give this pair another output folder")


def lam_tag(lam: float) -> str:
    """Folder name of a λ value: ``lam_1``, ``lam_0.1``."""
    return f"lam_{lam:g}"


def ddf_array(world: np.ndarray, units: str, file_affine: np.ndarray) -> np.ndarray:
    """A field on the file's grid, ``(3, X, Y, Z)`` in RAS mm, as the written ``(X, Y, Z, 1, 3)`` float32 array in
    ``units`` (one of :data:`DDF_UNITS`; ``"voxel"``: voxels of the grid of ``file_affine``)."""
    if units == "voxel":
        world = world_to_voxel(torch.from_numpy(world), file_affine).numpy()
    elif units == "itk":
        world = ras_to_lps_vectors(world, axis=0)
    elif units != "mm":
        raise ValueError(f"ddf units must be one of {', '.join(DDF_UNITS)}, got {units!r}")
    return np.moveaxis(world, 0, -1)[..., None, :].astype(np.float32)


def ddf_from_array(array: np.ndarray, units: str, file_affine: np.ndarray) -> torch.Tensor:
    """The inverse of :func:`ddf_array`: a written ``(X, Y, Z, 1, 3)`` field in ``units`` → ``(1, 3, X, Y, Z)`` float32
    displacement in voxels of the grid of ``file_affine`` (component ``i`` along array axis ``i``: MONAI's ``Warp``).

    Raises:
        ValueError: ``units`` is not one of :data:`DDF_UNITS`, or the array is not a ``(X, Y, Z, 1, 3)`` field.
    """
    if units not in DDF_UNITS:
        raise ValueError(f"ddf units must be one of {', '.join(DDF_UNITS)}, got {units!r}")
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 5 or array.shape[3:] != (1, 3):
        raise ValueError(f"a displacement field must have the shape (X, Y, Z, 1, 3), got {array.shape}")
    field = torch.from_numpy(np.ascontiguousarray(np.moveaxis(array[..., 0, :], -1, 0)))  # (3, X, Y, Z)
    if units == "itk":
        field = ras_to_lps_vectors(field, axis=0)  # LPS → RAS mm (its own inverse)
    if units != "voxel":
        field = world_to_voxel(field, file_affine)
    return field[None]


def transform_record(pair: Mapping, lam: float, units: str, total: bool, inverse: bool) -> dict:
    """How a λ folder's field is applied to other images (:data:`TRANSFORM_RECORD`, read by ``cir-monai apply``).

    Keys: ``ddf`` / ``ddf_inverse``: file names in the λ folder (``ddf_inverse`` ``None`` when it was not written);
    ``units``: of :data:`DDF_UNITS`; ``grid``: ``"fixed"``, both fields lie on the fixed file's grid and carry its
    affine; ``total``: the field includes the affine pre-alignment (``register --affine``, its ``affine.tfm`` one folder
    up), so it maps fixed points into the moving scan where its file puts it; ``lam``: λ; ``fixed`` / ``moving``: the
    pair's files as absolute paths (the moving file's grid is where the inverse puts images).
    """
    return {"format": "cir-monai transform", "version": 1, "lam": float(lam), "ddf": "ddf.nii.gz",
            "ddf_inverse": "ddf_inverse.nii.gz" if inverse else None, "units": units, "grid": "fixed",
            "total": bool(total), **pair_record(pair)}


def image_array(array: np.ndarray, label: bool) -> np.ndarray:
    """A ``(1, X, Y, Z)`` output as the written ``(X, Y, Z)`` array: int16 labels (rounded), float32 images."""
    return np.rint(array[0]).astype(np.int16) if label else array[0].astype(np.float32)


def write_outputs(folder: str | os.PathLike, arrays: Mapping[str, np.ndarray], affine: np.ndarray,
                  workers: int = 2) -> dict[str, str]:
    """Write ``{name: array}`` as ``folder/<name>.nii.gz`` with ``affine``, ``workers`` files at a time.

    Arrays whose name starts with ``ddf`` get the NIfTI intent "vector". Every file is written atomically; an error
    in one is raised after the others have finished.

    Returns:
        ``{name: path}``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, min(int(workers), len(arrays)))) as pool:
        futures = {name: pool.submit(save_nifti, array, affine, folder / f"{name}.nii.gz",
                                     vector=name.startswith("ddf")) for name, array in arrays.items()}
    return {name: str(future.result()) for name, future in futures.items()}
