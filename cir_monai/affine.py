# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Affine pre-alignment with ITK, and the affine as a voxel DDF that composes with the network's field.

cLapIRN, like every learned deformable method, expects affinely pre-aligned images; users' scans
often are not (a brain rotated by 12° and shifted by 14 mm loses about a third of its overlap).
:func:`affine_register` runs ITK's multi-resolution registration (``ImageRegistrationMethodv4``,
Mattes mutual information, regular-step gradient descent with physical-shift scales, an
``AffineTransform`` started from the centres of mass), so different contrasts align too. MONAI has
no intensity-based affine registration; ITK is already a dependency.

Conventions, converted here only: ITK transforms map **fixed** physical points to **moving** ones
in **LPS** millimetres; MONAI / NIfTI grids are RAS (:func:`affine_matrix_ras` converts). The
registration runner moves the moving scan by the affine in world space before sampling it
(:class:`~cir_monai.transforms.MoveInWorldd`); the field it writes is the total one of "affine,
then deformable ``u``" in voxels of the fixed grid, ``G⁻¹ A G (x + u(x)) − x`` (:func:`affine_then`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from cir_monai.atomic import write_text

__all__ = ["affine_register", "affine_matrix_ras", "affine_then", "write_transform", "transform_text",
           "known_misalignment", "move_volume"]

_LPS = np.diag([-1.0, -1.0, 1.0])


def _centroid(image) -> np.ndarray:
    """Intensity-weighted centre of the foreground (voxels above 5 % of the maximum), physical LPS mm."""
    import itk

    array = itk.array_view_from_image(image).astype(np.float64)  # (z, y, x)
    mask = array > 0.05 * array.max()
    index = np.stack(np.nonzero(mask))[::-1].T  # (x, y, z) indices
    weights = array[mask]
    mean = (index * weights[:, None]).sum(0) / weights.sum()
    direction = itk.array_from_matrix(image.GetDirection())
    return np.asarray(image.GetOrigin()) + direction @ (np.asarray(image.GetSpacing()) * mean)


def affine_register(
    fixed: str | os.PathLike,
    moving: str | os.PathLike,
    coarsest_mm: float = 8.0,
    finest_mm: float = 2.0,
    iterations: int = 200,
    sampling: float = 0.2,
    seed: int = 0,
):
    """Affine registration of two image files with ITK (Mattes MI, three resolution levels).

    Args:
        fixed, moving: image files (anything ITK reads).
        coarsest_mm, finest_mm: voxel size of the coarsest and finest pyramid levels; shrink factors
            follow from the fixed image's spacing (a 1 mm scan: 8, 4, 2), so the cost does not grow
            with the input's resolution.
        iterations: gradient-descent iterations per level.
        sampling: fraction of voxels sampled by the metric (random, seeded).
        seed: the metric's sampling seed (results are reproducible).

    Returns:
        an ``itk.AffineTransform[itk.D, 3]`` mapping fixed physical points to moving ones (LPS mm).

    Raises:
        ValueError: a file ITK cannot read (named).
    """
    import itk

    image_type = itk.Image[itk.F, 3]
    images = []
    for role, path in (("fixed", fixed), ("moving", moving)):
        try:
            images.append(itk.imread(str(path), itk.F))
        except Exception as err:  # ITK raises RuntimeError with a long C++ message
            raise ValueError(f"affine registration cannot read the {role} image {path} "
                             f"(a file ITK reads: NIfTI, NRRD, MHA, ...): {str(err).splitlines()[0]}") from None
    fixed_image, moving_image = images
    spacing = float(min(fixed_image.GetSpacing()))
    coarse = max(1, round(coarsest_mm / spacing))
    fine = max(1, round(finest_mm / spacing))
    shrink = sorted({coarse, max(fine, (coarse + fine) // 2), fine}, reverse=True)
    transform = itk.AffineTransform[itk.D, 3].New()
    centre_fixed, centre_moving = _centroid(fixed_image), _centroid(moving_image)
    transform.SetCenter(centre_fixed.tolist())
    transform.SetTranslation((centre_moving - centre_fixed).tolist())
    metric = itk.MattesMutualInformationImageToImageMetricv4[image_type, image_type].New()
    metric.SetNumberOfHistogramBins(32)
    optimizer = itk.RegularStepGradientDescentOptimizerv4[itk.D].New()
    optimizer.SetLearningRate(1.0)
    optimizer.SetMinimumStepLength(1e-4)
    optimizer.SetRelaxationFactor(0.5)
    optimizer.SetNumberOfIterations(int(iterations))
    scales = itk.RegistrationParameterScalesFromPhysicalShift[type(metric)].New()
    scales.SetMetric(metric)
    optimizer.SetScalesEstimator(scales)
    method = itk.ImageRegistrationMethodv4[image_type, image_type].New(
        FixedImage=fixed_image, MovingImage=moving_image, Metric=metric, Optimizer=optimizer
    )
    method.SetInitialTransform(transform)
    method.InPlaceOn()
    method.SetNumberOfLevels(len(shrink))
    method.SetShrinkFactorsPerLevel(shrink)
    method.SetSmoothingSigmasPerLevel([max(0.0, (s - 1) / 2.0) for s in shrink])
    method.SetMetricSamplingStrategy(itk.ImageRegistrationMethodv4Enums.MetricSamplingStrategy_RANDOM)
    method.SetMetricSamplingPercentage(float(sampling))
    method.MetricSamplingReinitializeSeed(int(seed))
    method.Update()
    return transform


def affine_matrix_ras(transform) -> np.ndarray:
    """The transform as a 4×4 matrix acting on RAS points (``q = A p``, mm): ``F · [M, o] · F``, F = diag(−1, −1, 1)."""
    import itk

    matrix = itk.array_from_matrix(transform.GetMatrix())
    offset = np.asarray(transform.GetOffset(), dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = _LPS @ matrix @ _LPS
    out[:3, 3] = _LPS @ offset
    return out


def affine_then(ddf: torch.Tensor, affine_ras: np.ndarray, grid_affine: np.ndarray) -> torch.Tensor:
    """The total voxel DDF of "the affine ``q = A p`` (RAS), then the deformable ``ddf``" on a grid, exactly.

    ``t(x) = G⁻¹ A G (x + u(x)) − x``: voxel ``x`` of the grid ``G`` (4×4 voxel→RAS) goes to ``x + u(x)``,
    whose world point the affine maps into the moving scan. Computed in closed form (the affine is linear),
    so it stays exact where ``x + u(x)`` leaves the grid. ``ddf = 0`` gives the affine alone.

    Args:
        ddf: ``(B, 3, *S)`` voxels of the grid (the network's field on the affinely moved scan).
        affine_ras: 4×4 from :func:`affine_matrix_ras`.
        grid_affine: the grid's 4×4 voxel→RAS affine ``G``.

    Returns:
        ``(B, 3, *S)`` float32, on ``ddf``'s device.
    """
    grid = np.asarray(grid_affine, dtype=np.float64)
    voxel_map = np.linalg.inv(grid) @ np.asarray(affine_ras, dtype=np.float64) @ grid  # voxel -> voxel
    matrix = torch.as_tensor(voxel_map, dtype=torch.float64, device=ddf.device)
    index = torch.stack(torch.meshgrid(
        *[torch.arange(s, dtype=torch.float64, device=ddf.device) for s in ddf.shape[2:]], indexing="ij"))[None]
    moved = torch.einsum("ij,bj...->bi...", matrix[:3, :3], index + ddf.double()) + matrix[:3, 3].view(1, 3, 1, 1, 1)
    return (moved - index).float()


def write_transform(transform, path: str | os.PathLike) -> None:
    """Write the ITK transform (``.tfm`` / ``.txt``; LPS, fixed → moving: what ANTs and Slicer read), atomically."""
    write_text(path, transform_text(transform))


def transform_text(transform) -> str:
    """The ``.tfm`` text of an ITK transform (what :func:`write_transform` writes), e.g. to pass it between
    processes: ITK's objects do not pickle."""
    import tempfile

    import itk

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "affine.tfm"
        itk.transformwrite([transform], str(path))
        return path.read_text()


def _rotation(axis: int, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    i, j = [k for k in range(3) if k != axis]
    out = np.eye(3)
    out[i, i], out[i, j], out[j, i], out[j, j] = np.cos(a), -np.sin(a), np.sin(a), np.cos(a)
    return out


def known_misalignment(centre) -> np.ndarray:
    """The misalignment that ``--affine`` is tested and benchmarked on (``tests/test_affine.py``,
    ``bench/bench_affine.py``): rotations of 12° about z and 6° about x and 7 % scaling about ``centre`` (RAS mm),
    then a translation of (14, −9, 7) mm; a 4×4 RAS matrix."""
    centre = np.asarray(centre, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = _rotation(2, 12.0) @ _rotation(0, 6.0) * 1.07
    out[:3, 3] = centre + np.array([14.0, -9.0, 7.0]) - out[:3, :3] @ centre
    return out


def move_volume(volume: np.ndarray, grid: np.ndarray, moved_by: np.ndarray, order: int) -> np.ndarray:
    """``volume`` (on the voxel→RAS ``grid``) seen through ``q = moved_by · p``: the result at ``p`` is ``volume`` at
    ``moved_by⁻¹ p``, on the same grid (``order`` 1: linear, 0: nearest, for labels; zeros outside)."""
    from scipy.ndimage import affine_transform

    voxel_map = np.linalg.inv(grid) @ np.linalg.inv(moved_by) @ grid
    return affine_transform(volume, voxel_map[:3, :3], voxel_map[:3, 3], order=order)
