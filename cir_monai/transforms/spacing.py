# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Resampling to a voxel size, one key at a time: the package's one workaround of MONAI's ``Spacingd``."""

from __future__ import annotations

from collections.abc import Sequence

from monai.config import KeysCollection
from monai.transforms import MapTransform, Spacingd
from monai.transforms.inverse import InvertibleTransform

__all__ = ["KeywiseSpacingd"]


class KeywiseSpacingd(MapTransform, InvertibleTransform):
    """MONAI's ``Spacingd`` applied to each key on its own, in a dictionary holding only that key (and inverted
    the same way).

    The MONAI behaviour this works around (MONAI 1.6): after resampling, ``Spacingd`` treats every
    ``"<key>_..."`` entry of the dictionary as ``key``'s metadata dictionary and calls ``.update()`` on it. So it
    fails when such an entry is anything else: ``fixed_label`` beside ``fixed`` (a ``MetaTensor``: "has no
    attribute 'update'"), or the ``image_path`` string that MONAI Label puts beside ``image``. The other
    entries are left as they are.

    Args:
        keys: image and label keys.
        pixdim: output spacing in mm.
        modes: interpolation per key (``"bilinear"`` for images, ``"nearest"`` for labels), or one mode for all.
    """

    def __init__(self, keys: KeysCollection, pixdim, modes: str | Sequence[str] = "bilinear") -> None:
        super().__init__(keys, allow_missing_keys=True)
        modes = [modes] * len(self.keys) if isinstance(modes, str) else list(modes)
        if len(modes) != len(self.keys):
            raise ValueError(f"KeywiseSpacingd: {len(self.keys)} keys but {len(modes)} modes")
        self.spacers = {key: Spacingd(key, pixdim=pixdim, mode=mode) for key, mode in zip(self.keys, modes)}

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.spacers[key]({key: d[key]})[key]
        return d

    def inverse(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.spacers[key].inverse({key: d[key]})[key]
        return d
