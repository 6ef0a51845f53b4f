# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""MONAI's :class:`~monai.networks.blocks.Warp`, with its grid built from the input at call time."""

from __future__ import annotations

import warnings

import torch
from monai.networks.blocks import Warp as _MonaiWarp

__all__ = ["Warp"]


class Warp(_MonaiWarp):
    """Warp an image with a voxel DDF (MONAI convention), always in float32.

    Identical to :class:`monai.networks.blocks.Warp` (``grid_sample`` with
    ``align_corners=True``), with two guarantees the registration pyramid needs:

    * the cached reference grid is rebuilt whenever the DDF's shape, device or
      dtype differs from the cached one, so one module serves any input size on
      CPU and CUDA;
    * sampling runs in float32 outside autocast: a bfloat16 sampling grid cannot
      address voxels beyond index ~256 exactly (8-bit mantissa).

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
            return super().forward(image.float(), ddf.float())
