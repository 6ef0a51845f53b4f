# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Sampling the outputs of a predicted field, and bringing them back to the fixed file's grid.

A field predicted in the model's frame and brought to the reoriented fixed grid
(:func:`~cir_monai.engines.prediction.predict_in_frame`) gives the written outputs:

1. :func:`sample_moving`: the moving image (bilinear) and label (nearest) sampled through the field once, from their
   own grid at their full resolution (:func:`~cir_monai.networks.warp_from_grid`; zeros outside the moving scan);
2. :func:`field_in_world`: the field as world displacements in RAS mm (:func:`~cir_monai.conventions.voxel_to_world`);
3. :class:`FileGridInverter`: each output brought back from the reoriented fixed grid to the fixed file's grid with
   MONAI's ``Invertd`` (nearest neighbour for labels; the field as world vectors, so only its grid changes).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Invertd

from cir_monai.conventions import voxel_to_world
from cir_monai.networks import warp_from_grid

__all__ = ["OWN_GRID_OUTPUTS", "sample_moving", "field_in_world", "FileGridInverter"]

#: (preprocessed key on the moving image's own grid, output name, interpolation)
OWN_GRID_OUTPUTS = (("moving_raw", "warped", "bilinear"), ("moving_label", "warped_label", "nearest"))


def sample_moving(own_grid: Mapping[str, tuple[torch.Tensor, torch.Tensor]], ddf: torch.Tensor,
                  fixed_affine) -> dict[str, torch.Tensor]:
    """The moving image and label warped onto the fixed grid through ``ddf``, from their own grid.

    Args:
        own_grid: ``{key: ((1, 1, *S_m) tensor, its 4×4 affine)}`` for the keys of :data:`OWN_GRID_OUTPUTS` present.
        ddf: ``(1, 3, *S)`` displacement in voxels of the fixed grid.
        fixed_affine: the fixed grid's 4×4 affine (RAS mm).

    Returns:
        ``{"warped": (1, *S), "warped_label": (1, *S)}`` (the keys whose source is in ``own_grid``).
    """
    return {name: warp_from_grid(*own_grid[key], ddf, fixed_affine, mode, "zeros")[0]
            for key, name, mode in OWN_GRID_OUTPUTS if key in own_grid}


def field_in_world(ddf: torch.Tensor, fixed_affine) -> torch.Tensor:
    """``(1, 3, *S)`` voxels of the fixed grid → ``(3, *S)`` RAS mm (what :class:`FileGridInverter` resamples)."""
    return voxel_to_world(ddf, fixed_affine)[0]


class FileGridInverter:
    """Brings an output on the reoriented fixed grid back to the fixed file's own grid (MONAI's ``Invertd``).

    Args:
        preprocessing: the transform that made the reoriented fixed image (its inverse is applied).
        label_keys: outputs resampled by nearest neighbour.
    """

    def __init__(self, preprocessing: Compose, label_keys: tuple[str, ...] = ("warped_label",)) -> None:
        self.preprocessing = preprocessing
        self.label_keys = tuple(label_keys)
        self._inverters: dict[str, Invertd] = {}

    def __call__(self, key: str, data: torch.Tensor, fixed: MetaTensor) -> np.ndarray:
        """``data`` (``(C, *S)`` on ``fixed``'s grid) on the file's grid, ``(C, *S_file)``."""
        if key not in self._inverters:
            self._inverters[key] = Invertd(key, transform=self.preprocessing, orig_keys="fixed",
                                           nearest_interp=key in self.label_keys)
        meta = MetaTensor(data, meta=dict(fixed.meta), applied_operations=list(fixed.applied_operations))
        out = self._inverters[key]({key: meta, "fixed": fixed})[key]
        return np.asarray(out.detach().cpu())
