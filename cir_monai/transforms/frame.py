# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""A model's frame as a MONAI dictionary transform: the bundle's atlas preprocessing applies the frame the way the
file runner does, because both call :class:`cir_monai.frame.FrameResampler`, the one definition of it."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.transforms.inverse import InvertibleTransform
from monai.utils import TraceKeys

from cir_monai.frame import FRAME_MARGIN, FrameResampler

__all__ = ["ToFramed"]


def _shift(affine: torch.Tensor, start: Sequence[int]) -> torch.Tensor:
    """``affine`` of a grid whose voxel 0 is voxel ``start`` of the grid of ``affine``."""
    shift = torch.eye(affine.shape[0], dtype=affine.dtype)
    shift[: len(start), -1] = torch.as_tensor([float(v) for v in start], dtype=affine.dtype)
    return affine @ shift


class ToFramed(MapTransform, InvertibleTransform):
    """Each ``keys`` image ``(C, *S)`` (a ``MetaTensor``, reoriented and intensity-scaled) moved into a model's frame:
    resampled to the frame's spacing when its grid differs (:meth:`FrameResampler.to_frame`, bilinear) and cropped to
    its foreground box plus ``margin`` voxels (:meth:`FrameResampler.foreground_box`), as
    :func:`cir_monai.engines.prediction.predict_in_frame` does for the file runner.

    The inverse (MONAI's ``Invertd``, e.g. for the predicted field as world vectors, :class:`~.atlas.DDFToWorldd`)
    continues the output outside the box by replicating its border (:meth:`FrameResampler.uncrop`) and resamples it
    back to the input's grid (:meth:`FrameResampler.from_frame`): the runner's path, step for step.

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
            box = self.resampler.foreground_box(image)
            start = [sl.indices(size)[0] for sl, size in zip(box, image.shape[1:])]
            cropped = MetaTensor(image.as_tensor()[(slice(None), *box)], meta=dict(image.meta),
                                 applied_operations=list(image.applied_operations))
            cropped.affine = _shift(image.affine, start)
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
            box = [slice(s, s + n) for s, n in zip(start, field.shape[1:])]
            whole = MetaTensor(self.resampler.uncrop(field.as_tensor()[None], box, shape)[0], meta=dict(field.meta),
                               applied_operations=list(field.applied_operations))
            whole.affine = _shift(field.affine, [-s for s in start])
            d[key] = self.resampler.from_frame(whole) if bool(op[TraceKeys.EXTRA_INFO]["resampled"]) else whole
        return d
