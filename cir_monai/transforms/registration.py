# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Preprocessing of registration pairs as MONAI transforms, shared by training, inference and evaluation.

:func:`registration_preprocessing` composes, on the keys ``fixed``, ``moving``,
``fixed_label``, ``moving_label`` (labels optional):

1. :class:`ReadableLoadImaged`: MONAI's ``LoadImaged`` (NIfTI and everything ITK reads), channel
   first, that names the file when it cannot be read (e.g. a truncated ``.nii.gz``);
2. :class:`CheckVolumed`: one channel, 3 spatial dimensions, finite values, an image that is not
   constant, a label map of integers (clear error naming the file);
3. ``Orientationd`` to ``orientation`` (RAS by default);
4. optional ``Spacingd`` to ``pixdim`` mm (bilinear for images, nearest for labels);
5. :class:`MatchGridd`: the moving image and label resampled onto the fixed image's grid when
   the grids differ (an error when they do not overlap in physical space);
6. ``ScaleIntensityRangePercentilesd``: intensities to [0, 1] with clipping; the lower
   percentile (0 = the minimum) maps to exactly 0, so the background is exactly 0;
7. :class:`CheckOverlapd`: the two images' foregrounds overlap enough to register;
8. optional ``ResizeWithPadOrCropd`` to ``spatial_size`` (centred; zero padding).

The fixed image stays a ``MetaTensor``: its affine and the applied operations travel with it,
so outputs can be written back in the fixed image's original space (``Invertd``).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    CopyItemsd,
    LoadImaged,
    MapTransform,
    Orientationd,
    ResampleToMatch,
    ResizeWithPadOrCropd,
    ScaleIntensityRangePercentilesd,
)

from cir_monai.frame import EMBEDDED_FRAME
from cir_monai.transforms.spacing import KeywiseSpacingd

logger = logging.getLogger("cir_monai.inference")

__all__ = [
    "IMAGE_KEYS", "LABEL_KEYS", "ReadableLoadImaged", "CheckVolumed", "CheckOverlapd", "MoveInWorldd", "MatchGridd",
    "PairPreprocessing",
    "registration_preprocessing",
]

IMAGE_KEYS = ("fixed", "moving")
LABEL_KEYS = ("fixed_label", "moving_label")


def _name(data: torch.Tensor, key: Hashable) -> str:
    if isinstance(data, MetaTensor):
        return str(data.meta.get("filename_or_obj", key))
    return str(key)


class CheckVolumed(MapTransform):
    """Fail early, naming the file, unless each key holds one channel of a 3D (or ``spatial_dims``-D) volume."""

    def __init__(self, keys: KeysCollection, spatial_dims: int = 3, allow_missing_keys: bool = True) -> None:
        super().__init__(keys, allow_missing_keys)
        self.spatial_dims = spatial_dims

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            spatial = img.ndim - 1
            if spatial != self.spatial_dims:
                raise ValueError(
                    f"{_name(img, key)}: {key} must be a {self.spatial_dims}D volume, got {spatial}D data of shape "
                    f"{tuple(img.shape[1:])}"
                )
            if img.shape[0] != 1:
                raise ValueError(f"{_name(img, key)}: {key} must have one channel, got {img.shape[0]}")
        for key in self.key_iterator(d):  # the content, once every shape is known to be right
            img = d[key]
            values = torch.as_tensor(img)
            if not key.endswith("label"):
                if not bool(torch.isfinite(values).all()):
                    raise ValueError(f"{_name(img, key)}: {key} contains NaN or Inf values")
                if values.numel() == 0 or bool(values.max() == values.min()):
                    constant = float(values.flatten()[0]) if values.numel() else float("nan")
                    raise ValueError(f"{_name(img, key)}: {key} is empty or constant (every voxel {constant:g}): "
                                     "nothing to register")
            else:
                fraction = (values - values.round()).abs()
                if bool((fraction > 1e-3).any()):
                    example = float(values.flatten()[int(fraction.flatten().argmax())])
                    raise ValueError(f"{_name(img, key)}: {key} has non-integer values (e.g. {example:g}): a label "
                                     "map must hold integer labels (was it resampled with linear interpolation?)")
        return d


class ReadableLoadImaged(LoadImaged):
    """MONAI's ``LoadImaged``, one key at a time, so that an unreadable file is named.

    A truncated or corrupt compressed file otherwise ends in a traceback from deep inside
    gzip / nibabel (``EOFError: Compressed file ended before the end-of-stream marker``).
    """

    def __call__(self, data, reader=None):
        d = dict(data)
        for key in self.key_iterator(d):
            try:
                d[key] = super().__call__({key: d[key]}, reader)[key]
            except Exception as err:  # nibabel / ITK / gzip raise many types for a bad file
                cause = err
                while cause.__cause__ is not None and str(cause).startswith("applying transform"):
                    cause = cause.__cause__
                raise ValueError(f"{d[key]}: {key} cannot be read (truncated or corrupt file?): "
                                 f"{type(cause).__name__}: {cause}") from None
        return d


#: the intensity-image check's thresholds (:func:`intensity_image_problem`)
HU_AIR = -500.0  # Hounsfield units below which a voxel is air; MRI magnitudes are not this negative
MAX_LABEL_VALUES = 1000  # distinct integers a label map may hold (FreeSurfer's aparc+aseg: ~110 of 0..2035)
LABEL_HISTOGRAM_ROUGHNESS = 0.25  # label maps' counts jump between neighbouring values; images' vary smoothly
MIN_BACKGROUND = 0.1  # a skull-stripped brain has at least this fraction of its voxels at the minimum


def histogram_roughness(values: torch.Tensor) -> float:
    """The median over neighbouring distinct non-zero values ``a < b`` of ``|n(a) - n(b)| / (n(a) + n(b))``, ``n``
    the voxel counts: small (< 0.12 measured) for an intensity image, even quantised to integers, whose histogram
    varies smoothly; large (0.43–0.52 measured, at 1 to 8 mm) for a label map, whose regions' sizes are unrelated
    to their codes. Measured on the MNI 2009c T1/T2 quantised to 60, 255 and 1000 levels at 1 and 4 mm, and with a
    FreeSurfer-like white matter set to 110, against the CerebrA atlas at 1, 4 and 8 mm and the embedded tissue
    labels. NaN with fewer than two non-zero values."""
    flat = values.detach().reshape(-1)
    _, counts = torch.unique(flat[flat != 0], return_counts=True)
    if counts.numel() < 2:
        return float("nan")
    counts = counts.double()
    return float(((counts[1:] - counts[:-1]).abs() / (counts[1:] + counts[:-1])).median())


def intensity_image_problem(values: torch.Tensor) -> str | None:
    """Why ``values`` (an image's voxels, any shape) is not an intensity image to register, or ``None``.

    What users pass by mistake as FIXED or MOVING, and how it is recognised:

    - a CT in Hounsfield units: at least 5 % of the voxels below -500 (air at about -1000);
    - a binary mask: integer values, two distinct ones;
    - a label map (an atlas, a segmentation): integer values, at most 1000 distinct ones, and either at most 3
      (no image is that coarse) or a rough histogram (:func:`histogram_roughness` ≥ 0.25; a T1 stored as uint8, or
      FreeSurfer's intensity-normalised brain.mgz, is far below that).

    Returns:
        the end of a sentence that starts with the file's name and role (``"... is a binary mask (...)"``).
    """
    flat = values.detach().reshape(-1).float()
    low, high = float(flat.min()), float(flat.max())
    air = float((flat < HU_AIR).float().mean())
    if air >= 0.05:
        return (f"looks like a CT in Hounsfield units (values {low:g} to {high:g}, {100 * air:.0f} % of voxels below "
                f"{HU_AIR:g}): the model registers T1-weighted brain MRI")
    if bool(((flat - flat.round()).abs() > 1e-3).any()):
        return None
    distinct = torch.unique(flat)
    if distinct.numel() == 2:
        return (f"is a binary mask (values {distinct[0].item():g} and {distinct[1].item():g} only): give the intensity "
                "image, and carry the mask over with --moving-label or `cir-monai apply --label`")
    if distinct.numel() > MAX_LABEL_VALUES:
        return None
    if distinct.numel() <= 3 or histogram_roughness(flat) >= LABEL_HISTOGRAM_ROUGHNESS:
        return (f"looks like a label map ({distinct.numel()} distinct integer values from {low:g} to {high:g}): give "
                "the intensity image as FIXED/MOVING, and a label map with --moving-label / --fixed-label (or "
                "`cir-monai apply --label`)")
    return None


class CheckIntensityImaged(MapTransform):
    """Refuse, naming the file, an image key that holds a label map, a binary mask or a CT in Hounsfield units
    (:func:`intensity_image_problem`), and warn when it does not look skull-stripped (less than 10 % of its voxels
    at its minimum, the background a skull-stripped brain has).

    The user-facing paths use it (``cir-monai register``, the bundle's register workflow): the network is trained on
    T1-weighted brains, and what it is given by mistake would otherwise be registered without a word.
    """

    def __init__(self, keys: KeysCollection = ("fixed", "moving"), allow_missing_keys: bool = True) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            values = torch.as_tensor(d[key])
            problem = intensity_image_problem(values)
            if problem is not None:
                raise ValueError(f"{_name(d[key], key)}: {key} {problem}")
            background = float((values == values.min()).float().mean())
            if background < MIN_BACKGROUND:
                logger.warning("%s: %s has little background (%.0f %% of voxels at its minimum): is it skull-stripped? "
                               "The shipped model expects a skull-stripped brain", _name(d[key], key), key,
                               100 * background)
        return d


class CheckOverlapd(MapTransform):
    """Fail, naming both files, when the moving image's foreground barely overlaps the fixed one's.

    On the common grid (after :class:`MatchGridd` and intensity scaling), foregrounds are the
    voxels above ``threshold``; the overlap is ``|F ∩ M| / min(|F|, |M|)``. Brains that are
    roughly aligned overlap by 0.6–1; a registration network cannot recover a pair below
    ``min_overlap`` (0.2): it needs an affine pre-alignment first.
    """

    #: what the error advises by default: the affine pre-alignment
    ADVICE = "align the images affinely first (cir-monai register --affine; bundle: affine: true)"

    def __init__(self, fixed_key: str = "fixed", moving_key: str = "moving", threshold: float = 0.05,
                 min_overlap: float = 0.2, advice: str = ADVICE) -> None:
        super().__init__([fixed_key, moving_key])
        self.fixed_key, self.moving_key = fixed_key, moving_key
        self.threshold, self.min_overlap, self.advice = float(threshold), float(min_overlap), advice

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        fixed = torch.as_tensor(d[self.fixed_key]) > self.threshold
        moving = torch.as_tensor(d[self.moving_key]) > self.threshold
        smaller = min(int(fixed.sum()), int(moving.sum()))
        overlap = int((fixed & moving).sum()) / max(smaller, 1)
        if overlap < self.min_overlap:
            raise ValueError(
                f"{_name(d[self.moving_key], self.moving_key)} barely overlaps "
                f"{_name(d[self.fixed_key], self.fixed_key)}: "
                f"{100 * overlap:.0f} % of the smaller foreground is shared (at least {100 * self.min_overlap:.0f} % "
                f"needed): {self.advice}"
            )
        return d


class MoveInWorldd(MapTransform):
    """Move the moving image and labels in world space by a known affine, by rewriting their headers.

    ``d[matrix_key]`` (when present) is a 4×4 RAS matrix ``A`` mapping fixed-world points to moving-world
    points (:func:`cir_monai.affine.affine_matrix_ras` of an ITK transform). Each key's affine ``G``
    becomes ``A⁻¹ G``, so the voxel that sat at ``A p`` now sits at ``p``: the later resampling onto the
    fixed grid (:class:`MatchGridd`) aligns the scan in the same, single interpolation, also when it lay
    outside the fixed field of view. No voxel is touched here.
    """

    def __init__(self, keys: Sequence[str] = ("moving", "moving_label"), matrix_key: str = "moving_world") -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.matrix_key = matrix_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        if d.get(self.matrix_key) is None:
            return d
        inverse = torch.linalg.inv(torch.as_tensor(np.asarray(d[self.matrix_key]), dtype=torch.float64))
        for key in self.key_iterator(d):
            d[key].affine = inverse @ torch.as_tensor(d[key].affine, dtype=torch.float64)
        return d


def _world_box(img: MetaTensor) -> np.ndarray:
    shape = np.array(img.shape[1:]) - 1
    corners = np.array(np.meshgrid(*[[0, s] for s in shape], indexing="ij")).reshape(len(shape), -1)
    affine = np.asarray(img.affine, dtype=np.float64)
    world = affine[:3, :3] @ corners + affine[:3, 3:4]
    return np.stack([world.min(1), world.max(1)])


class MatchGridd(MapTransform):
    """Resample ``moving`` (bilinear) and ``moving_label`` (nearest) onto the grid of ``fixed`` when they differ.

    With ``resample=False`` the keys are only checked (inference keeps them on their own grid).

    Raises:
        ValueError: the two images do not overlap in physical (world) space.
    """

    def __init__(self, fixed_key: str = "fixed", moving_keys: Sequence[str] = ("moving", "moving_label"),
                 resample: bool = True) -> None:
        super().__init__(moving_keys, allow_missing_keys=True)
        self.fixed_key, self.resample = fixed_key, resample

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        fixed = d[self.fixed_key]
        for key in self.key_iterator(d):
            moving = d[key]
            same_grid = moving.shape[1:] == fixed.shape[1:] and np.allclose(
                np.asarray(moving.affine), np.asarray(fixed.affine), atol=1e-4
            )
            if same_grid:
                continue
            fbox, mbox = _world_box(fixed), _world_box(moving)
            if np.any(mbox[0] > fbox[1]) or np.any(fbox[0] > mbox[1]):
                raise ValueError(
                    f"{_name(moving, key)} and {_name(fixed, self.fixed_key)} do not overlap in physical space "
                    f"(world boxes {mbox.round(1).tolist()} and {fbox.round(1).tolist()} mm): "
                    f"are they affinely aligned?"
                )
            if self.resample:
                mode = "nearest" if key.endswith("label") else "bilinear"
                d[key] = ResampleToMatch(mode=mode, padding_mode="zeros")(moving, fixed)
        return d


class PairPreprocessing(Compose):
    """A ``Compose`` that re-raises the error a transform raised, not MONAI's "applying transform ..." wrapper.

    The messages of :class:`CheckVolumed`, :class:`MatchGridd` and ``LoadImaged`` name the file and
    the problem; the wrapper would hide them behind the transform's ``repr``.
    """

    def __call__(self, input_, *args, **kwargs):
        try:
            return super().__call__(input_, *args, **kwargs)
        except RuntimeError as err:
            root: BaseException = err
            while isinstance(root, RuntimeError) and str(root).startswith("applying transform") and root.__cause__:
                root = root.__cause__
            if root is err:
                raise
            raise root.with_traceback(None) from None


def registration_preprocessing(
    spatial_size: Sequence[int] | None = None,
    pixdim: float | Sequence[float] | None = None,
    orientation: str | None = EMBEDDED_FRAME["orientation"],
    percentiles: tuple[float, float] = tuple(EMBEDDED_FRAME["percentiles"]),
    spatial_dims: int = 3,
    load: bool = True,
    keep_moving_grid: bool = False,
    overlap_advice: str = CheckOverlapd.ADVICE,
    check_images: bool = False,
) -> Compose:
    """The preprocessing of a pair dict ``{"fixed", "moving"[, "fixed_label", "moving_label"][, "moving_world"]}``
    (``moving_world``: an affine pre-alignment applied in world space, :class:`MoveInWorldd`).

    Args:
        spatial_size: crop/pad (centred) to this grid; ``None`` keeps the (fixed image's) grid.
        pixdim: resample to this spacing in mm first; ``None`` keeps the spacing.
        orientation: axis codes (``"RAS"``); ``None`` keeps the file's orientation.
        percentiles: intensity percentiles mapped to 0 and 1 (``(0, 100)`` = min-max; e.g. ``(0.5, 99.5)``
            clips outliers). Values below the lower one become exactly 0.
        spatial_dims: 3 (2 for 2D images read from files).
        load: start with ``LoadImaged`` (``False`` when the dict already holds tensors, channel first).
        keep_moving_grid: also keep ``moving_raw`` (the moving image before intensity scaling) and leave it and
            ``moving_label`` on the moving image's own grid (moved in world space by ``moving_world``): inference
            samples them once through the whole transform (:func:`~cir_monai.networks.warp_from_grid`), so outputs
            keep the original intensities and are interpolated once.
        overlap_advice: what the overlap check's error advises (:class:`CheckOverlapd`).
        check_images: refuse a label map, a mask or a CT given as ``fixed``/``moving`` (:class:`CheckIntensityImaged`;
            the user-facing registration paths).

    Returns:
        a MONAI ``Compose`` (:class:`PairPreprocessing`).
    """
    keys = IMAGE_KEYS + LABEL_KEYS
    transforms: list = []
    if load:
        transforms.append(ReadableLoadImaged(keys, ensure_channel_first=True, allow_missing_keys=True, image_only=True))
    transforms.append(CheckVolumed(keys, spatial_dims))
    if check_images:
        transforms.append(CheckIntensityImaged(IMAGE_KEYS))
    transforms.append(MoveInWorldd())
    if orientation:
        transforms.append(Orientationd(keys, axcodes=orientation, allow_missing_keys=True, labels=None))
    if pixdim is not None:
        transforms.append(KeywiseSpacingd(keys, pixdim=pixdim, modes=("bilinear", "bilinear", "nearest", "nearest")))
    if keep_moving_grid:
        transforms.append(CopyItemsd("moving", names="moving_raw"))
    if keep_moving_grid:
        transforms += [MatchGridd(moving_keys=("moving",)), MatchGridd(moving_keys=("moving_label",), resample=False)]
    else:
        transforms.append(MatchGridd())
    low, high = percentiles
    transforms.append(ScaleIntensityRangePercentilesd(IMAGE_KEYS, lower=low, upper=high, b_min=0.0, b_max=1.0,
                                                      clip=True))
    transforms.append(CheckOverlapd(advice=overlap_advice))
    if spatial_size is not None:
        transforms.append(ResizeWithPadOrCropd(keys, spatial_size=spatial_size, mode="constant",
                                               allow_missing_keys=True))
    return PairPreprocessing(transforms)
