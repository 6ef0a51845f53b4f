# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Small factories the MONAI bundle configs instantiate by dotted path (``_target_``)."""

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

__all__ = ["embedded_training_dataset", "synthetic_training_dataset", "prepared_pairs", "validation_tensors", "pairs_or_single", "rank_zero_first"]


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


def validation_tensors(pairs: Sequence[dict], spatial_size: Sequence[int] | None = None) -> list[dict]:
    """Preprocess file pairs into ``(1, 1, *S)`` tensors for the trainer's validation."""
    pre = registration_preprocessing(spatial_size=spatial_size)
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
