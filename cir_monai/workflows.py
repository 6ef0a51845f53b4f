# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Bundle glue: the factories the MONAI bundle configs instantiate by dotted path (``_target_``): data sets, pairs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from collections.abc import Callable

import torch
import torch.distributed as dist

from cir_monai.data.datalist import load_pairs
from cir_monai.data.embedded import build_embedded_template
from cir_monai.data.prepare import TRAIN_SEED, load_template_tensors, prepare_embedded
from cir_monai.data.generative import SynthConfig, SyntheticPairDataset
from cir_monai.data.pairs import PairConfig
from cir_monai.data.training import RandomPairDataset
from cir_monai.data.transforms import registration_preprocessing

__all__ = ["image_list_pairs", "training_dataset", "validation_dataset", "embedded_training_dataset", "synthetic_training_dataset", "prepared_pairs", "validation_tensors", "pairs_or_single", "rank_zero_first"]


def rank_zero_first(fn: Callable, *args, **kwargs):
    """Run ``fn`` on rank 0 first, then on the other ranks (which then find its files cached).

    Without ``torch.distributed`` initialised it just calls ``fn``.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return fn(*args, **kwargs)
    if dist.get_rank() == 0:
        result = fn(*args, **kwargs)
        dist.barrier()
        return result
    dist.barrier()
    return fn(*args, **kwargs)


def image_list_pairs(data: Sequence, pairing: str = "atlas", atlas_dir: str | os.PathLike | None = None) -> list[dict]:
    """Registration pairs from a list of images, the form MONAI Label's ``BundleTrainTask`` gives.

    Args:
        data: ``[{"image": path[, "label": path]}, ...]`` (or plain paths).
        pairing: ``"atlas"``: each image is a fixed image with the atlas (``atlas_dir``) as the moving
            one (what the inference workflow does); ``"pairs"``: every ordered pair of two images.
        atlas_dir: folder with the atlas (:data:`cir_monai.atlas.ATLAS_FILES`), for ``"atlas"``.

    Returns:
        ``[{"fixed", "moving"[, "fixed_label", "moving_label"]}]``; labels when both sides have one.

    Raises:
        ValueError: an unknown pairing, an item without ``"image"``, or fewer than 2 images for ``"pairs"``.
    """
    from cir_monai.atlas import ATLAS_FILES

    items = [{"image": x} if isinstance(x, (str, os.PathLike)) else dict(x) for x in data]
    for i, item in enumerate(items):
        if "image" not in item:
            raise ValueError(f"training item {i} has no 'image' (keys {sorted(item)})")
    if pairing == "atlas":
        if atlas_dir is None:
            raise ValueError("pairing='atlas' needs atlas_dir")
        atlas = {"image": str(Path(atlas_dir) / ATLAS_FILES["image"]), "label": str(Path(atlas_dir) / ATLAS_FILES["label"])}
        couples = [(item, atlas) for item in items]
    elif pairing == "pairs":
        if len(items) < 2:
            raise ValueError(f"pairing='pairs' needs at least 2 images, got {len(items)}")
        couples = [(a, b) for a in items for b in items if a is not b]
    else:
        raise ValueError(f"pairing must be 'atlas' or 'pairs', got {pairing!r}")
    pairs = []
    for fixed, moving in couples:
        pair = {"fixed": fixed["image"], "moving": moving["image"]}
        if fixed.get("label") and moving.get("label"):
            pair["fixed_label"], pair["moving_label"] = fixed["label"], moving["label"]
        pairs.append(pair)
    return pairs


def training_dataset(data: Sequence | None = None, pairing: str = "atlas", atlas_dir: str | os.PathLike | None = None,
                     dataset_dir: str | os.PathLike = "data/embedded", spacing: float = 2.0,
                     spatial_size: Sequence[int] = (80, 96, 80), pool_size: int = 16, seed: int = TRAIN_SEED):
    """The bundle's ``train#dataset``: the user's images when ``data`` is given, else generated embedded pairs.

    ``data`` is what MONAI Label overrides (``train#dataset#data``): a list of ``{"image", "label"}``,
    paired by :func:`image_list_pairs`, preprocessed to the working grid (``spacing`` mm, cropped or
    padded to ``spatial_size``) and cached (:class:`~cir_monai.data.training.FilePairDataset`).
    """
    if data:
        from cir_monai.data.training import FilePairDataset

        pre = registration_preprocessing(spatial_size=spatial_size, pixdim=spacing)
        return FilePairDataset(image_list_pairs(data, pairing, atlas_dir), pre, seed=int(seed))
    return embedded_training_dataset(dataset_dir, spacing, spatial_size, pool_size)


def validation_dataset(data: Sequence | None = None, pairing: str = "atlas", atlas_dir: str | os.PathLike | None = None,
                       dataset_dir: str | os.PathLike = "data/embedded", spacing: float = 2.0,
                       spatial_size: Sequence[int] | None = None, num_validation: int = 4, num_test: int = 8) -> list[dict]:
    """The bundle's ``validate#dataset``: tensors of ``data`` (MONAI Label's ``validate#dataset#data``) when
    given (pairs without labels are skipped: validation reports Dice), else of the embedded validation
    pairs, which are then written under ``dataset_dir`` if needed (and only then)."""
    if data:
        labelled = [p for p in image_list_pairs(data, pairing, atlas_dir) if "fixed_label" in p]
        return validation_tensors(labelled, spatial_size, pixdim=spacing)
    pairs = prepared_pairs(dataset_dir, "validation", spacing, spatial_size, num_validation, num_test)
    return validation_tensors(pairs, spatial_size)


def embedded_training_dataset(
    dataset_dir: str | os.PathLike, spacing: float, spatial_size: Sequence[int], pool_size: int = 16
) -> RandomPairDataset:
    """On-the-fly training pairs of the embedded MNI152 template at the working grid."""
    paths = rank_zero_first(
        build_embedded_template, Path(dataset_dir) / ".cache", float(spacing), tuple(int(s) for s in spatial_size)
    )
    image, label, _ = load_template_tensors(paths)
    return RandomPairDataset(image, label, pool_size=int(pool_size))


def synthetic_training_dataset(
    dataset_dir: str | os.PathLike, spacing: float, spatial_size: Sequence[int], seed: int = TRAIN_SEED, **config
) -> SyntheticPairDataset:
    """Generated training pairs (:mod:`cir_monai.data.generative`) from the embedded template's labels and
    random label maps, at the working grid; ``config`` overrides :class:`SynthConfig` fields."""
    paths = rank_zero_first(
        build_embedded_template, Path(dataset_dir) / ".cache", float(spacing), tuple(int(s) for s in spatial_size)
    )
    image, label, _ = load_template_tensors(paths)
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    if isinstance(fields.get("affine"), dict):
        fields["affine"] = PairConfig(**fields["affine"])
    return SyntheticPairDataset(image, label, SynthConfig(**fields), seed=int(seed))


def prepared_pairs(
    dataset_dir: str | os.PathLike, split: str, spacing: float, spatial_size: Sequence[int], num_validation: int = 4,
    num_test: int = 8,
) -> list[dict]:
    """Write the embedded validation/test pairs if needed and return the file pairs of ``split``."""
    datalist = rank_zero_first(
        prepare_embedded, dataset_dir, num_validation, num_test, float(spacing), tuple(int(s) for s in spatial_size)
    )
    return load_pairs(datalist, split=split)


def validation_tensors(pairs: Sequence[dict], spatial_size: Sequence[int] | None = None,
                       pixdim: float | None = None) -> list[dict]:
    """Preprocess file pairs into ``(1, 1, *S)`` tensors for the trainer's validation (resampled to ``pixdim`` mm
    when given)."""
    pre = registration_preprocessing(spatial_size=spatial_size, pixdim=pixdim)
    out = []
    for pair in pairs:
        data = pre(dict(pair))
        out.append({k: torch.as_tensor(v)[None] for k, v in data.items() if k in ("fixed", "moving", "fixed_label", "moving_label")})
    return out


def pairs_or_single(
    source: str | os.PathLike | None = None,
    split: str = "test",
    fixed: str | None = None,
    moving: str | None = None,
    moving_label: str | None = None,
    fixed_label: str | None = None,
) -> list[dict]:
    """One pair from ``fixed``/``moving`` (overrides) or the pairs of a datalist or data folder."""
    if fixed or moving:
        if not (fixed and moving):
            raise ValueError("give both --fixed and --moving for a single pair")
        pair = {"fixed": fixed, "moving": moving}
        if moving_label:
            pair["moving_label"] = moving_label
        if fixed_label:
            pair["fixed_label"] = fixed_label
        from cir_monai.data.datalist import check_pairs

        return check_pairs([pair], "the --fixed/--moving pair")
    if source is None:
        raise ValueError("no data: set dataset_dir / datalist, or --fixed and --moving")
    return load_pairs(source, split=split)
