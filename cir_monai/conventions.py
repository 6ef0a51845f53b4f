# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The one place where displacement-field conventions are converted.

Two conventions meet in this project:

* **Reference (normalised)**: the authors' cLapIRN works with fields in
  normalised grid units of ``torch.nn.functional.grid_sample`` with
  ``align_corners=True`` (−1 and +1 are the centres of the corner voxels) and
  the channels in grid_sample's ``(x, y[, z])`` order, i.e. channel 0 is the
  displacement along the LAST spatial axis. Shape ``(B, n, *spatial)``.
* **MONAI DDF (voxels)**: the public convention of this project and of
  :class:`monai.networks.blocks.Warp`: displacement in voxels, channel ``i``
  along spatial axis ``i``. Shape ``(B, n, *spatial)``.

The conversion is ``ddf[:, i] = field[:, n - 1 - i] * (size_i - 1) / 2``
(docs/method.md §3). A singleton axis has no extent; its factor is taken as 0 one
way and the division guarded the other way, as MONAI's ``Warp`` does.

Written fields (``cir-monai register --ddf-units``) meet two world frames: NIfTI's
RAS+ (nibabel, MONAI) and ITK's LPS+ (ITK, ANTs ``antsApplyTransforms``, 3D Slicer),
which read a vector NIfTI's components as LPS millimetres. :func:`ras_to_lps_vectors`
converts between them (its own inverse): x and y change sign.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["normalized_to_voxel_ddf", "voxel_ddf_to_normalized", "voxel_scale", "ras_to_lps_vectors", "voxel_to_world",
           "world_to_voxel", "itk_field_to_voxel_ddf"]


def ras_to_lps_vectors(vectors, axis: int = 0):
    """World vectors RAS+ ↔ LPS+ (x, y negated; its own inverse), components along ``axis``.

    Works on numpy arrays and torch tensors; returns a new array.
    """
    sign = [-1.0, -1.0] + [1.0] * (vectors.shape[axis] - 2)
    shape = [1] * vectors.ndim
    shape[axis] = len(sign)
    if isinstance(vectors, torch.Tensor):
        return vectors * torch.tensor(sign, dtype=vectors.dtype, device=vectors.device).view(shape)
    import numpy as np

    return vectors * np.asarray(sign, dtype=vectors.dtype).reshape(shape)


def voxel_to_world(ddf: torch.Tensor, affine) -> torch.Tensor:
    """A DDF in voxels of a grid → world displacement in mm, in the frame of the grid's ``affine``.

    Args:
        ddf: ``(n, *S)`` or ``(B, n, *S)``; channel ``i`` along array axis ``i``.
        affine: the grid's homogeneous voxel→world matrix, ``(n + 1) × (n + 1)`` (MONAI/nibabel: RAS mm).

    Returns:
        the same shape: ``affine[:n, :n] @ ddf`` per voxel (a displacement has no translation).
    """
    matrix = np.asarray(affine, dtype=np.float64)
    return _apply(matrix[:-1, :-1], ddf)


def world_to_voxel(vectors: torch.Tensor, affine) -> torch.Tensor:
    """The inverse of :func:`voxel_to_world`: world displacements in mm → voxels of the grid of ``affine``."""
    matrix = np.asarray(affine, dtype=np.float64)
    return _apply(np.linalg.inv(matrix[:-1, :-1]), vectors)


def itk_field_to_voxel_ddf(field: np.ndarray, direction, spacing) -> torch.Tensor:
    """An ITK/ANTs displacement-field image's array ``(*S, n)`` (physical mm in ITK's LPS frame, what
    ``ants.image_read(...).numpy()`` gives) → a ``(1, n, *S)`` voxel DDF of the same array's grid.

    ITK maps a continuous index ``i`` to ``p = origin + D·diag(s)·i`` (its direction ``D`` already holds the
    RAS→LPS flip of a NIfTI file) and samples the moving image at ``p + d(p)``; so the displacement in index units
    along the array axes is ``(D·diag(s))⁻¹·d``: MONAI's DDF of the array that ``ants.image_read(...).numpy()`` and
    nibabel return. :func:`world_to_voxel` with ITK's index→point matrix.
    """
    matrix = np.asarray(direction, dtype=np.float64) @ np.diag(np.asarray(spacing, dtype=np.float64))
    vectors = torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.asarray(field, dtype=np.float64), -1, 0)[None]))
    return _apply(np.linalg.inv(matrix), vectors).float()


def _apply(matrix: np.ndarray, field: torch.Tensor) -> torch.Tensor:
    """``matrix @ field`` along the channel axis, ``(n, *S)`` or ``(B, n, *S)`` with ``n = len(matrix)``."""
    n = len(matrix)
    axis = field.ndim - n - 1
    if axis not in (0, 1) or field.shape[axis] != n:
        raise ValueError(f"field must be (n, *S) or (B, n, *S) with n = {n} channels, got {tuple(field.shape)}")
    m = torch.as_tensor(matrix, dtype=field.dtype, device=field.device)
    return torch.movedim(torch.tensordot(m, torch.movedim(field, axis, 0), dims=1), 0, axis)


def voxel_scale(spatial_shape: tuple[int, ...] | torch.Size, like: torch.Tensor) -> torch.Tensor:
    """Per-axis factor ``(size_i - 1) / 2`` from normalised units to voxels.

    Args:
        spatial_shape: the spatial size ``(D, H, W)`` or ``(H, W)`` of the grid the field lives on.
        like: tensor whose device and dtype the result takes.

    Returns:
        tensor of shape ``(1, n, 1, ..., 1)`` broadcastable against a DDF.
    """
    n = len(spatial_shape)
    # built from the sizes as tensors, not a Python list: a traced TorchScript then scales by the sizes
    # of the input it is given, not by those it was traced at (under tracing the sizes are traced values)
    sizes = torch.stack([torch.as_tensor(s) for s in spatial_shape]).to(device=like.device, dtype=like.dtype)
    return ((sizes - 1) / 2.0).view(1, n, *([1] * n))


def _check_field(field: torch.Tensor, name: str) -> int:
    if field.ndim not in (4, 5) or field.shape[1] != field.ndim - 2:
        raise ValueError(
            f"{name} must have shape (B, n, *spatial) with n = 2 or 3 channels matching the spatial dims, "
            f"got {tuple(field.shape)}."
        )
    return field.ndim - 2


def normalized_to_voxel_ddf(field: torch.Tensor) -> torch.Tensor:
    """Reference field (normalised units, reversed channels) -> MONAI DDF in voxels.

    Args:
        field: ``(B, n, *spatial)`` in normalised ``align_corners=True`` units, channel 0 along the last axis.

    Returns:
        ``(B, n, *spatial)`` displacement in voxels, channel ``i`` along spatial axis ``i``.
    """
    _check_field(field, "field")
    return torch.flip(field, dims=(1,)) * voxel_scale(field.shape[2:], field)


def voxel_ddf_to_normalized(ddf: torch.Tensor) -> torch.Tensor:
    """MONAI DDF in voxels -> reference field (normalised units, reversed channels).

    The inverse of :func:`normalized_to_voxel_ddf`.

    Args:
        ddf: ``(B, n, *spatial)`` displacement in voxels, channel ``i`` along spatial axis ``i``.

    Returns:
        ``(B, n, *spatial)`` in normalised ``align_corners=True`` units, channel 0 along the last axis.
    """
    _check_field(ddf, "ddf")
    scale = voxel_scale(ddf.shape[2:], ddf).clamp_min(0.5)  # singleton axis: (1-1)/2 -> guarded
    return torch.flip(ddf / scale, dims=(1,))
