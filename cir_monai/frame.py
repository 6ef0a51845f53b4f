# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The frame a model was trained in, in one named place: spacing, orientation, intensities, λ range.

A registration network only works on inputs like those it was trained on: a model trained
on 2 mm brains sees a 1 mm brain as a brain twice its size and registers little of it. So a model records its
frame, and inference resamples both images into it, predicts there, and brings the field back to the fixed
image's own grid (:class:`cir_monai.engines.RegistrationRunner`).

A frame is a plain dict (it is saved inside checkpoints and in bundle configs)::

    {"spacing": [2.0, 2.0, 2.0],        # mm per voxel, array axes after reorientation; None = any
     "orientation": "RAS",              # axis codes the network saw
     "percentiles": [0.0, 100.0],       # intensity percentiles mapped to [0, 1] (min-max), background 0
     "lam_range": [0.0, 10.0],          # λ the model was trained for
     "spatial_size": [80, 96, 80]}      # training crop (informative; inference takes any size)

Where frames come from: this project's checkpoints carry ``"frame"``; a file without one (a plain state dict,
as the bundle ships ``models/model.pt``) gets :data:`EMBEDDED_FRAME`, the CPU-sized grid of ``train.yaml``; the
authors' released OASIS checkpoints get :data:`OFFICIAL_FRAME` (1 mm, 160×192×224).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.transforms import Spacing
from monai.transforms.utils import generate_spatial_bounding_box

from cir_monai.conventions import voxel_to_world, world_to_voxel

__all__ = ["EMBEDDED_FRAME", "OFFICIAL_FRAME", "FRAME_MARGIN", "model_frame", "frame_spacing", "FrameResampler"]

#: the embedded data set's working grid (cir_monai.data.embedded): 2 mm, 80×96×80
EMBEDDED_FRAME = {
    "spacing": [2.0, 2.0, 2.0],
    "orientation": "RAS",
    "percentiles": [0.0, 100.0],
    "lam_range": [0.0, 10.0],
    "spatial_size": [80, 96, 80],
}
#: the authors' OASIS training data (Learn2Reg / neurite OASIS): 1 mm, 160×192×224
OFFICIAL_FRAME = {**EMBEDDED_FRAME, "spacing": [1.0, 1.0, 1.0], "spatial_size": [160, 192, 224]}

#: voxels of the frame grid kept around the images' foreground box (training crops are the brain's box plus a few)
FRAME_MARGIN = 4

_KEYS = ("spacing", "orientation", "percentiles", "lam_range", "spatial_size")


def frame_spacing(spacing: float | Sequence[float] | None, spatial_dims: int = 3) -> list[float] | None:
    """``spacing`` as a list of ``spatial_dims`` positive floats (a number means isotropic), or ``None``.

    Raises:
        ValueError: wrong length or a non-positive value (the value in the message).
    """
    if spacing is None:
        return None
    values = [float(spacing)] * spatial_dims if isinstance(spacing, (int, float)) else [float(v) for v in spacing]
    if len(values) != spatial_dims or any(not v > 0 for v in values):
        raise ValueError(f"frame spacing must be {spatial_dims} positive numbers (mm), got {spacing!r}")
    return values


def model_frame(frame: Mapping | None, network=None) -> dict:
    """A complete, checked frame: ``frame``'s entries over the defaults.

    Args:
        frame: a (partial) frame dict, or ``None`` for "any grid" (``spacing`` ``None``).
        network: the model; its ``lam_max`` sets ``lam_range`` and its ``spatial_dims`` the
            length of ``spacing`` (without it: the length of a listed ``spacing``, else 3).

    Raises:
        ValueError: an unknown key or a bad spacing.
    """
    frame = dict(frame or {})
    unknown = sorted(set(frame) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown frame entries {unknown}; a frame has {list(_KEYS)}")
    spacing = frame.get("spacing")
    # without a network, a list's length says the dimensions (a 2D model's recorded frame), a number means 3D
    dims = int(getattr(network, "spatial_dims", len(spacing) if isinstance(spacing, (list, tuple)) else 3))
    out = {
        "spacing": frame_spacing(frame.get("spacing"), dims),
        "orientation": frame.get("orientation", "RAS"),
        "percentiles": [float(v) for v in frame.get("percentiles", (0.0, 100.0))],
        "lam_range": [0.0, float(getattr(network, "lam_max", 10.0))] if network is not None
        else [float(v) for v in frame.get("lam_range", (0.0, 10.0))],
        "spatial_size": None if frame.get("spatial_size") is None else [int(v) for v in frame["spatial_size"]],
    }
    return out


class FrameResampler:
    """Moves images into a model's frame and the predicted field back to the image's own grid.

    Uses MONAI's :class:`~monai.transforms.Spacing` and its inverse (so the round trip uses the
    very grid MONAI built), and converts the field's units at the edges, in this one place:

    1. :meth:`to_frame`: an image ``(1, *S)`` (a ``MetaTensor`` on its grid, e.g. the reoriented
       fixed image) resampled to the frame's spacing (bilinear), ``(1, *S_w)``;
    2. the network predicts a DDF in voxels of the frame grid;
    3. :meth:`field_to_grid`: voxels of the frame grid → world mm (the frame grid's affine) →
       resampled onto the image's grid (``Spacing.inverse``, bilinear, border) → voxels of that
       grid (the inverse of its affine's linear part). The result warps full-resolution images
       on the original grid with MONAI's ``Warp``.

    With ``spacing=None``, or when the grid already has the frame's spacing, both steps are the
    identity (no resampling).

    :meth:`foreground_box` is the field of view the network is given
    (:func:`cir_monai.engines.prediction.predict_in_frame`): the box of the two images' foreground plus
    ``margin`` voxels, as training crops are the brain's box with a few voxels around it. Instance
    normalisation computes its statistics over the whole input, so a scan with wide empty margins would
    otherwise shift every feature.

    Args:
        spacing: the frame's voxel size in mm (see :func:`frame_spacing`), or ``None``.
        margin: voxels of the frame grid kept around the foreground box.
    """

    def __init__(self, spacing: float | Sequence[float] | None, margin: int = FRAME_MARGIN) -> None:
        self.margin = int(margin)
        self.spacing = (None if spacing is None
                        else frame_spacing(spacing, 3 if isinstance(spacing, (int, float)) else len(spacing)))
        self._spacer = (None if self.spacing is None
                        else Spacing(pixdim=self.spacing, mode="bilinear", padding_mode="border"))

    def needed(self, image) -> bool:
        """Whether ``image``'s grid differs from the frame's spacing (relative tolerance 1e-3)."""
        if self.spacing is None:
            return False
        current = np.sqrt((np.asarray(image.affine, dtype=np.float64)[:3, :3] ** 2).sum(0))[: len(self.spacing)]
        return not np.allclose(current, self.spacing, rtol=1e-3)

    def to_frame(self, image):
        """``image`` (``MetaTensor`` ``(C, *S)``) on the frame's spacing; itself when no resampling is needed."""
        return self._spacer(image) if self.needed(image) else image

    def foreground_box(self, *images, threshold: float = 0.01) -> tuple[slice, ...]:
        """Slices of the spatial box holding every image's voxels above ``threshold``, plus the margin
        (MONAI's ``generate_spatial_bounding_box``; the whole grid when nothing is above it)."""
        stacked = torch.cat([torch.as_tensor(image)[:1] for image in images])
        start, end = generate_spatial_bounding_box(stacked, select_fn=lambda x: x > threshold, margin=self.margin,
                                                   allow_smaller=True)
        if any(e <= s for s, e in zip(start, end)):
            return tuple(slice(None) for _ in start)
        return tuple(slice(int(s), int(e)) for s, e in zip(start, end))

    @staticmethod
    def uncrop(field: torch.Tensor, box: Sequence[slice], shape: Sequence[int]) -> torch.Tensor:
        """``field`` ``(B, C, *B_box)``, computed on ``box`` (:meth:`foreground_box`) of a grid of ``shape``, continued
        to the whole grid ``(B, C, *shape)`` by replicating its border (a field goes on as it was at the box's edge)."""
        pads = []
        for sl, size in reversed(list(zip(box, shape))):
            start, stop, _ = sl.indices(int(size))
            pads += [start, int(size) - stop]
        return F.pad(field, pads, mode="replicate") if any(pads) else field

    def from_frame(self, image):
        """The inverse of :meth:`to_frame` for a ``MetaTensor`` carrying the frame grid's metadata and transform history
        (MONAI's ``Spacing.inverse``, bilinear, border): a world-unit field or an image back on the original grid."""
        return self._spacer.inverse(image)

    def field_to_grid(self, ddf, work, grid):
        """A DDF predicted on ``work`` (the output of :meth:`to_frame` for ``grid``) on ``grid``'s voxels.

        Args:
            ddf: ``(B, n, *S_w)`` displacement in voxels of ``work`` (MONAI convention).
            work: the frame-grid image the network saw (``MetaTensor``).
            grid: the image whose grid the field is wanted on (``MetaTensor``).

        Returns:
            ``(B, n, *S)`` displacement in voxels of ``grid``.
        """
        if work is grid:
            return ddf
        world = voxel_to_world(ddf, work.affine)
        back = []
        for sample in world:
            moved = MetaTensor(sample, meta=dict(work.meta), applied_operations=list(work.applied_operations))
            restored = self.from_frame(moved)
            back.append(restored.as_tensor() if isinstance(restored, MetaTensor) else restored)
        return world_to_voxel(torch.stack(back), grid.affine)
