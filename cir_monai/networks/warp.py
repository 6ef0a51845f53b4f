# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""MONAI's :class:`~monai.networks.blocks.Warp`, with its grid built from the input at call time, and DDF inversion."""

from __future__ import annotations

import warnings

import torch
from monai.networks.blocks import Warp as _MonaiWarp

__all__ = ["Warp", "invert_ddf", "composition_residual"]


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
        sizes = ddf.shape[2:]
        axes = [torch.arange(s, device=ddf.device, dtype=ddf.dtype) for s in sizes]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij")).unsqueeze(0) + ddf  # (B, n, *S) voxel positions
        extent = torch.stack([torch.as_tensor(s) for s in sizes]).to(ddf) - 1
        n = len(sizes)
        grid = grid * (2.0 / extent.clamp_min(1.0)).view(1, n, *([1] * n)) - 1.0
        grid = grid.flip(1).permute(0, *range(2, n + 2), 1)  # (B, *S, n), x first as grid_sample reads it
        return torch.nn.functional.grid_sample(
            image, grid, mode=self._interp_mode_native, padding_mode=self._padding_mode_native, align_corners=True
        )


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
