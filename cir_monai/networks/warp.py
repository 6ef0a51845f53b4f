# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""MONAI's :class:`~monai.networks.blocks.Warp`, with its grid built from the input at call time; warping an image
from another grid in one interpolation; DDF inversion."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from monai.networks.blocks import Warp as _MonaiWarp

__all__ = ["Warp", "sample_at", "warp_from_grid", "invert_ddf", "composition_residual"]


class Warp(_MonaiWarp):
    """Warp an image with a voxel DDF (MONAI convention), always in float32.

    Identical to :class:`monai.networks.blocks.Warp` (``grid_sample`` with
    ``align_corners=True``), with two guarantees the registration pyramid needs:

    * the cached reference grid is rebuilt whenever the DDF's shape, device or
      dtype differs from the cached one, so one module serves any input size on
      CPU and CUDA;
    * sampling runs in float32 outside autocast: a bfloat16 sampling grid cannot
      address voxels beyond index ~256 exactly (8-bit mantissa);
    * under ``torch.jit.trace`` the same sampling is written on the DDF's sizes
      (:meth:`_traceable_forward`), because MONAI's grid and normalisation use Python
      numbers that a trace would freeze at the traced size.

    Args:
        mode: ``"bilinear"`` for images (trilinear in 3D) or ``"nearest"`` for labels.
        padding_mode: ``"border"`` (the reference), ``"zeros"`` or ``"reflection"``.
    """

    def __init__(self, mode: str = "bilinear", padding_mode: str = "border") -> None:
        with warnings.catch_warnings():  # MONAI warns that it uses torch's grid_sample: that is intended here
            warnings.simplefilter("ignore")
            super().__init__(mode=mode, padding_mode=padding_mode)

    #: reference grids kept per (batch, shape, device, dtype): a pyramid warps at several sizes per call
    max_cached_grids = 4

    def get_reference_grid(self, ddf: torch.Tensor, jitter: bool = False, seed: int = 0) -> torch.Tensor:
        key = (ddf.shape[0], tuple(ddf.shape[2:]), ddf.device, ddf.dtype, jitter)
        cache = self.__dict__.setdefault("_grids", {})
        if key not in cache:
            self.ref_grid = None
            cache[key] = super().get_reference_grid(ddf, jitter=jitter, seed=seed)
            while len(cache) > self.max_cached_grids:
                cache.pop(next(iter(cache)))
        return cache[key]

    def forward(self, image: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
        """
        Args:
            image: ``(B, C, *spatial)``.
            ddf: ``(B, n, *spatial)`` displacement in voxels, channel ``i`` along spatial axis ``i``.

        Returns:
            ``(B, C, *spatial)`` float32 image sampled at ``x + ddf(x)``.
        """
        with torch.autocast(device_type=image.device.type, enabled=False):
            if torch.jit.is_tracing():
                return self._traceable_forward(image.float(), ddf.float())
            return super().forward(image.float(), ddf.float())

    def _traceable_forward(self, image: torch.Tensor, ddf: torch.Tensor) -> torch.Tensor:
        """MONAI ``Warp.forward`` (native ``grid_sample``, ``align_corners=True``) with every size a traced value.

        Voxel ``p`` of an axis of size ``s`` maps to ``2 p / max(s − 1, 1) − 1``, as in MONAI;
        tested equal to :meth:`forward` (tests/networks/test_warp.py).
        """
        grid = _index_grid(ddf) + ddf  # (B, n, *S) voxel positions
        return sample_at(image, grid, self._interp_mode_native, self._padding_mode_native)


def _index_grid(ddf: torch.Tensor) -> torch.Tensor:
    """The voxel indices of ``ddf``'s grid, ``(1, n, *S)`` (sizes as traced values)."""
    axes = [torch.arange(s, device=ddf.device, dtype=ddf.dtype) for s in ddf.shape[2:]]
    return torch.stack(torch.meshgrid(*axes, indexing="ij")).unsqueeze(0)


def sample_at(image: torch.Tensor, positions: torch.Tensor, mode: str = "bilinear",
              padding_mode: str = "zeros") -> torch.Tensor:
    """``image`` ``(B, C, *S_in)`` sampled at voxel positions ``(B, n, *S_out)`` of its own grid → ``(B, C, *S_out)``.

    ``grid_sample`` with ``align_corners=True`` as MONAI's ``Warp``: voxel ``p`` of an axis of size ``s``
    maps to ``2 p / max(s − 1, 1) − 1``; every size is a traced value.
    """
    n = positions.shape[1]
    extent = torch.stack([torch.as_tensor(s) for s in image.shape[2:]]).to(positions) - 1
    grid = positions * (2.0 / extent.clamp_min(1.0)).view(1, n, *([1] * n)) - 1.0
    grid = grid.flip(1).permute(0, *range(2, n + 2), 1)  # (B, *S, n), x first as grid_sample reads it
    return torch.nn.functional.grid_sample(image, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def warp_from_grid(image: torch.Tensor, image_affine, ddf: torch.Tensor, grid_affine, mode: str = "bilinear",
                   padding_mode: str = "border") -> torch.Tensor:
    """Warp an image that lives on another grid, in one interpolation.

    Output voxel ``x`` of the DDF's grid (voxel→world ``grid_affine``) samples ``image`` (voxel→world
    ``image_affine``) at the world point ``G (x + u(x))``. With equal affines and
    sizes this is :class:`Warp` (tested); otherwise it replaces "resample onto the grid, then warp",
    which interpolates twice, and it reaches parts of ``image`` outside the grid's field of view.
    MONAI's ``Warp`` needs the image on the field's grid, hence this function.

    Args:
        image: ``(B, C, *S_in)``.
        image_affine, grid_affine: homogeneous ``(n + 1) × (n + 1)`` voxel→world matrices (RAS mm).
        ddf: ``(B, n, *S)`` voxels of the grid.
        mode: ``"bilinear"`` or ``"nearest"`` (labels).
        padding_mode: outside ``image``: ``"border"`` (MONAI ``Warp``'s default) or ``"zeros"`` (no data there:
            what registration outputs use).

    Returns:
        ``(B, C, *S)`` float32.
    """
    n = ddf.shape[1]
    to_image = np.linalg.inv(np.asarray(image_affine, dtype=np.float64)) @ np.asarray(grid_affine, dtype=np.float64)
    matrix = torch.as_tensor(to_image, dtype=torch.float32, device=ddf.device)  # float32: 1e-5 voxel at 256 voxels
    with torch.autocast(device_type=ddf.device.type, enabled=False):
        ddf = ddf.float()
        positions = torch.einsum("ij,bj...->bi...", matrix[:n, :n], _index_grid(ddf) + ddf)
        positions += matrix[:n, n].view(1, n, *([1] * n))
        return sample_at(image.to(ddf.device).float(), positions, mode, padding_mode)


@torch.no_grad()
def invert_ddf(ddf: torch.Tensor, iterations: int = 30) -> torch.Tensor:
    """The inverse of a voxel DDF by fixed-point iteration ``v ← −u(x + v(x))``.

    If ``φ(x) = x + u(x)`` then ``φ⁻¹(y) = y + v(y)`` with ``v(y) = −u(y + v(y))``; the iteration
    converges where ``|∇u| < 1`` (smooth, unfolded fields: the regime of λ ≥ 1 here). MONAI has
    no DDF inversion, so it is written here on :class:`Warp` (bilinear, border). The residual
    of the composition (:func:`composition_residual`) measures how exact it is.

    Args:
        ddf: ``(B, n, *spatial)`` in voxels (MONAI convention).
        iterations: fixed-point steps (30: the residual stops falling after ~20 on registration fields).

    Returns:
        ``(B, n, *spatial)`` the inverse DDF in voxels of the same grid.
    """
    warp = Warp("bilinear", "border")
    ddf = ddf.float()
    inverse = -ddf
    for _ in range(int(iterations)):
        inverse = -warp(ddf, inverse)
    return inverse


@torch.no_grad()
def composition_residual(ddf: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """``|u(x) + v(x + u(x))|`` per voxel, voxels: zero when ``φ⁻¹ ∘ φ = id`` (``v`` inverts ``u``). ``(B, *spatial)``.

    :func:`invert_ddf` solves the other composition, ``φ ∘ φ⁻¹ = id`` (``composition_residual(v, u)``),
    so this one is the independent check of its result.
    """
    return (ddf.float() + Warp("bilinear", "border")(inverse, ddf)).norm(dim=1)
