# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""2D registration problems cut from 3D pairs: axial slices of the same pair (issue 31's 2D reproduction).

A 2D model trains to convergence on 2 CPU cores where a 3D one cannot (``docs/paper_reproduction.md``), so the
paper's claims are tested on axial slices: the training pairs are slices of the generated embedded pairs
(:class:`~cir_monai.data.training.RandomPairDataset`, the MNI 2009a template), the test pairs slices of the held-out
2009c + CerebrA pairs (:mod:`cir_monai.data.heldout`) resampled to the same 2 mm grid. Both sides of a pair are cut
at the same index, so a slice pair is the in-plane part of a 3D registration problem (its out-of-plane motion,
up to a few mm, is what a 2D field cannot model, for every method alike).

The training data set of slices is :class:`cir_monai.data.training.SlicePairDataset`.

Tensors are ``(C, X, Y, Z)`` (data set items) or ``(B, C, X, Y, Z)`` in RAS; an axial slice keeps ``(X, Y)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["SLICE_KEYS", "axial_band", "axial_slice", "slice_pairs"]

#: the keys a slice pair keeps (a 3D true field has an out-of-plane component, so ``ddf_truth`` is not sliced)
SLICE_KEYS = ("fixed", "moving", "fixed_label", "moving_label")


def axial_band(label: torch.Tensor, min_fraction: float = 0.5) -> list[int]:
    """The axial indices whose foreground (``label > 0``) covers at least ``min_fraction`` of the largest slice's.

    Args:
        label: a label map ``(..., X, Y, Z)``; only its last three axes are read (its first item when batched).
        min_fraction: in (0, 1]; 0.5 keeps the slices through the bulk of the brain and drops the thin caps,
            where a slice holds a few voxels of one or two labels and Dice is noise.

    Raises:
        ValueError: ``min_fraction`` outside (0, 1] or a label map without foreground.
    """
    if not 0.0 < float(min_fraction) <= 1.0:
        raise ValueError(f"min_fraction must lie in (0, 1], got {min_fraction}")
    volume = label.reshape(-1, *label.shape[-3:])[0]
    area = (volume > 0).sum(dim=(0, 1)).float()
    if area.max() <= 0:
        raise ValueError("axial_band: the label map has no foreground (label > 0)")
    return torch.nonzero(area >= float(min_fraction) * area.max()).flatten().tolist()


def axial_slice(item: dict, index: int) -> dict:
    """The axial slice ``index`` of a pair: every :data:`SLICE_KEYS` entry ``(..., X, Y, Z)`` → ``(..., X, Y)``."""
    return {key: item[key][..., int(index)].contiguous() for key in SLICE_KEYS if key in item}


def slice_pairs(pairs: Sequence[dict], per_pair: int, min_fraction: float = 0.5) -> list[dict]:
    """``per_pair`` evenly spaced axial slices of each 3D pair, inside the band of its fixed label map.

    Args:
        pairs: ``(1, 1, X, Y, Z)`` tensors ``fixed``, ``moving``, ``fixed_label``, ``moving_label`` (e.g.
            :func:`cir_monai.workflows.validation_tensors`).
        per_pair: slices per pair (the band's ends and evenly between).
        min_fraction: see :func:`axial_band`.

    Returns:
        ``(1, 1, X, Y)`` slice pairs with ``"pair"`` (the 3D pair's position, for a bootstrap that resamples whole
        3D pairs) and ``"slice"`` (the axial index).
    """
    if int(per_pair) < 1:
        raise ValueError(f"per_pair must be >= 1, got {per_pair}")
    out = []
    for p, pair in enumerate(pairs):
        band = axial_band(pair["fixed_label"], min_fraction)
        picks = torch.linspace(0, len(band) - 1, int(per_pair)).round().long().unique().tolist()
        for i in picks:
            out.append({**axial_slice(pair, band[i]), "pair": p, "slice": band[i]})
    return out
