# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""A model's frame as a MONAI dictionary transform: the bundle's atlas preprocessing applies the frame the way the
file runner does, because both call :class:`cir_monai.frame.FrameResampler`, the one definition of it."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import BorderPad, MapTransform, SpatialCrop
from monai.transforms.inverse import InvertibleTransform
from monai.utils import TraceKeys

from cir_monai.frame import FRAME_MARGIN, FrameResampler

__all__ = ["ToFramed"]


class ToFramed(MapTransform, InvertibleTransform):
    """Each ``keys`` image ``(C, *S)`` (a ``MetaTensor``, reoriented and intensity-scaled) moved into a model's frame:
    resampled to the frame's spacing when its grid differs (:meth:`FrameResampler.to_frame`, bilinear) and cropped to
    its foreground box plus ``margin`` voxels (:meth:`FrameResampler.foreground_box`), as
    :func:`cir_monai.engines.prediction.predict_in_frame` does for the file runner.

    The inverse (MONAI's ``Invertd``, e.g. for the predicted field as world vectors, :class:`~.atlas.DDFToWorldd`)
    continues the output outside the box by replicating its border (as :meth:`FrameResampler.uncrop` does for the
    runner) and resamples it back to the input's grid (:meth:`FrameResampler.from_frame`): the runner's path, step
    for step (``tests/transforms/test_frame.py`` compares the two). MONAI's ``SpatialCrop`` and ``BorderPad`` (its
    replicate mode) do the cropping and padding and keep the affine; this transform records the box once, for both.

    Args:
        keys: the images to move.
        spacing: the frame's voxel size in mm (``frame["spacing"]``; ``None``: keep the grid, crop only).
        margin: voxels of the frame grid kept around the foreground box.
    """

    def __init__(self, keys: KeysCollection, spacing: float | Sequence[float] | None,
                 margin: int = FRAME_MARGIN) -> None:
        super().__init__(keys)
        self.resampler = FrameResampler(spacing, margin=margin)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = self.resampler.to_frame(d[key])
            box = [slice(*sl.indices(size)[:2]) for sl, size in zip(self.resampler.foreground_box(image),
                                                                     image.shape[1:])]
            start = [sl.start for sl in box]
            cropper = SpatialCrop(roi_slices=box)
            with cropper.trace_transform(False):
                cropped = cropper(image)
            d[key] = self.push_transform(cropped, orig_size=tuple(int(v) for v in image.shape[1:]), extra_info={
                "start": start, "resampled": image is not d[key]})
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            field = d[key]
            op = self.pop_transform(field)
            shape = [int(v) for v in op[TraceKeys.ORIG_SIZE]]
            start = [int(v) for v in op[TraceKeys.EXTRA_INFO]["start"]]
            border = [n for s, size, full in zip(start, field.shape[1:], shape) for n in (s, full - s - size)]
            padder = BorderPad(spatial_border=border, mode="replicate")
            with padder.trace_transform(False):
                whole = padder(field)
            d[key] = self.resampler.from_frame(whole) if bool(op[TraceKeys.EXTRA_INFO]["resampled"]) else whole
        return d
