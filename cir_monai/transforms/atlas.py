# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The atlas segmentation's transforms (``bundle/configs/inference.yaml``; :mod:`cir_monai.atlas` builds atlases
and runs the network): the atlas stacked before the image, the predicted DDF as world vectors for ``Invertd``,
and the atlas labels read through the field on the input's grid.

An atlas is a folder of :data:`ATLAS_FILES`: ``atlas_image.nii.gz`` (T1, brain only),
``atlas_label.nii.gz`` (integer labels on the same grid) and ``atlas_labels.json`` (``{value: name}``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Mapping
from pathlib import Path

import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage, MapTransform, ResampleToMatch

from cir_monai.conventions import voxel_to_world, world_to_voxel
from cir_monai.networks.warp import warp_from_grid

__all__ = ["ATLAS_FILES", "atlas_label_names", "missing_atlas_file", "AtlasStackd", "DDFToWorldd", "AtlasLabelsd"]

#: the files of an atlas folder
ATLAS_FILES = {"image": "atlas_image.nii.gz", "label": "atlas_label.nii.gz", "names": "atlas_labels.json"}


def missing_atlas_file(path: Path) -> str:
    """The message for a missing atlas file: what an atlas folder holds and how to point at or build one."""
    return (f"atlas file not found: {path} (an atlas folder holds {', '.join(ATLAS_FILES.values())}; "
            "set atlas_dir, e.g. --atlas_dir DIR, or build one with cir_monai.atlas.build_cerebra_atlas)")


def atlas_label_names(atlas_dir: str | os.PathLike) -> dict[int, str]:
    """``{value: name}`` of an atlas folder's labels, background (0) included."""
    path = Path(atlas_dir) / ATLAS_FILES["names"]
    if not path.is_file():
        raise FileNotFoundError(missing_atlas_file(path).replace("atlas file not found", "atlas label names not found"))
    return {int(k): v for k, v in json.loads(path.read_text())["labels"].items()}


class AtlasStackd(MapTransform):
    """Stack the atlas before the image: ``d[key]`` ``(1, *S)`` → ``(2, *S)`` = (atlas, image).

    The atlas T1 (scaled to [0, 1]) is resampled onto ``d[key]``'s grid by world coordinates
    (MONAI ``ResampleToMatch``, bilinear, zeros outside). The stacked tensor keeps the image's
    metadata and transform history, so ``Invertd`` can bring outputs back to the input's grid.

    Args:
        keys: the image key (``"image"``).
        atlas_dir: an atlas folder (:data:`ATLAS_FILES`).

    Raises:
        FileNotFoundError: the atlas image is missing (path in the message).
    """

    def __init__(self, keys: str = "image", atlas_dir: str | os.PathLike = "atlas") -> None:
        super().__init__(keys)
        path = Path(atlas_dir) / ATLAS_FILES["image"]
        if not path.is_file():
            raise FileNotFoundError(missing_atlas_file(path))
        atlas = LoadImage(image_only=True, ensure_channel_first=True)(str(path)).float()
        self.atlas = atlas / atlas.max().clamp_min(1e-12)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            if not isinstance(image, MetaTensor) or image.shape[0] != 1:
                raise ValueError(f"{key} must be a 1-channel MetaTensor (a loaded image), got "
                                 f"{type(image).__name__} of shape {tuple(getattr(image, 'shape', ()))}")
            atlas = ResampleToMatch(mode="bilinear", padding_mode="zeros")(self.atlas, img_dst=image)
            stacked = torch.cat([atlas.as_tensor().to(image.dtype), image.as_tensor()])
            d[key] = MetaTensor(stacked, meta=dict(image.meta), applied_operations=list(image.applied_operations))
        return d


class DDFToWorldd(MapTransform):
    """The DDF ``d[key]`` ``(n, *S)`` in voxels of ``d[image_key]``'s grid → world displacement in mm (``(n, *S)``).

    World vectors do not change under the reorientation, resampling and cropping of the
    preprocessing, so MONAI's ``Invertd`` (bilinear) can then carry the field back to the input's
    grid. The result carries ``d[image_key]``'s metadata and transform history for that.
    """

    def __init__(self, keys: str = "pred", image_key: str = "image") -> None:
        super().__init__(keys)
        self.image_key = image_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        image = d[self.image_key]
        for key in self.key_iterator(d):
            world = voxel_to_world(torch.as_tensor(d[key]).float(), image.affine)
            d[key] = MetaTensor(world, meta=dict(image.meta), applied_operations=list(image.applied_operations))
        return d


class AtlasLabelsd(MapTransform):
    """Replace the world field ``d[key]`` ``(n, *S)`` (mm, on the input's grid) by the atlas labels it maps:
    ``(1, *S)``.

    Input voxel ``x`` (world point ``p = A x``, ``A`` the field's affine) takes the atlas label at
    world point ``p + u(x)``, read from the atlas at its own resolution by nearest neighbour (0
    outside the atlas; :func:`~cir_monai.networks.warp_from_grid`). The result is an integer label
    map (``dtype``, int16 by default: what MONAI Label's writer and a MONAI Deploy operator pass on
    as is) and keeps the field's metadata (the input's grid and affine).

    Args:
        keys: the field's key (``"pred"``).
        atlas_dir: an atlas folder (:data:`ATLAS_FILES`).
        dtype: the label map's integer type.

    Raises:
        FileNotFoundError: the atlas labels are missing (path in the message).
        ValueError: ``dtype`` is not an integer type, or the atlas holds labels it cannot represent.
    """

    def __init__(self, keys: str = "pred", atlas_dir: str | os.PathLike = "atlas",
                 dtype: torch.dtype = torch.int16) -> None:
        super().__init__(keys)
        path = Path(atlas_dir) / ATLAS_FILES["label"]
        if not path.is_file():
            raise FileNotFoundError(missing_atlas_file(path))
        self.label = LoadImage(image_only=True, ensure_channel_first=True)(str(path)).float()
        if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
            raise ValueError(f"AtlasLabelsd: dtype must be an integer type, got {dtype}")
        info = torch.iinfo(dtype)
        low, high = float(self.label.min()), float(self.label.max())
        if low < info.min or high > info.max:
            raise ValueError(f"atlas labels in [{low:g}, {high:g}] do not fit {dtype}: {path}")
        self.dtype = dtype

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            field = d[key]
            ddf = world_to_voxel(torch.as_tensor(field).double(), field.affine)[None]  # voxels of the input grid
            sampled = warp_from_grid(self.label.as_tensor()[None], self.label.affine, ddf, field.affine,
                                     "nearest", "zeros")
            d[key] = MetaTensor(sampled[0].round().to(self.dtype), meta=dict(field.meta))
        return d
