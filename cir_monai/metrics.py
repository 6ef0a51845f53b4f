# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Registration metrics: Jacobian statistics of a DDF, Dice and HD95 of warped labels.

Jacobian: the determinant of the Jacobian of ``x ↦ x + u(x)`` with ``u`` a MONAI
DDF in voxels. ``scheme="forward"`` uses forward differences on the
``(size - 1)`` grid of voxels that have a forward neighbour along every axis,
as the authors' code does (``parity_metrics.json`` reproduces to 1e-6);
``scheme="central"`` uses central differences inside and one-sided differences
at the border (``numpy.gradient``, the Learn2Reg convention), on the full grid.

Folding: % of voxels with ``det J <= 0``. SDlogJ: standard deviation of
``log(clip(det J, 1e-9, 1e9))`` (Learn2Reg's measure of smoothness, without
its ``+3`` offset). Standard deviations are population values (ddof 0).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from monai.metrics import DiceMetric, compute_hausdorff_distance

__all__ = [
    "jacobian_determinant",
    "jacobian_statistics",
    "present_labels",
    "dice_per_label",
    "mean_dice",
    "hd95_per_label",
]


def _check_ddf(ddf: torch.Tensor) -> int:
    if not isinstance(ddf, torch.Tensor) or ddf.ndim not in (4, 5) or ddf.shape[1] != ddf.ndim - 2:
        shape = tuple(ddf.shape) if isinstance(ddf, torch.Tensor) else type(ddf).__name__
        raise ValueError(f"ddf must have shape (B, n, *spatial) with n = 2 or 3 spatial dims, got {shape}.")
    if min(ddf.shape[2:]) < 2:
        raise ValueError(f"ddf needs at least 2 voxels along every axis for differences, got {tuple(ddf.shape)}.")
    return ddf.ndim - 2


def _gradients(ddf: torch.Tensor, scheme: str) -> list[list[torch.Tensor]]:
    """``grad[i][j] = ∂(x + u)_i / ∂x_j`` on the grid of the chosen scheme."""
    n = ddf.shape[1]
    if scheme == "forward":
        base = [slice(None), slice(None)] + [slice(0, -1)] * n
        derivs = []
        for j in range(n):
            ahead = list(base)
            ahead[2 + j] = slice(1, None)
            derivs.append(ddf[tuple(ahead)] - ddf[tuple(base)])  # (B, n, *(S-1))
    elif scheme == "central":
        derivs = list(torch.gradient(ddf, dim=tuple(range(2, 2 + n))))
    elif scheme == "central4":  # 5-point stencil, 2 voxels in from every border
        derivs = []
        for j in range(n):
            def shifted(k: int, j: int = j) -> torch.Tensor:
                index = [slice(None), slice(None)] + [slice(2, s - 2) for s in ddf.shape[2:]]
                index[2 + j] = slice(2 + k, ddf.shape[2 + j] - 2 + k)
                return ddf[tuple(index)]
            derivs.append((-shifted(2) + 8 * shifted(1) - 8 * shifted(-1) + shifted(-2)) / 12)
    else:
        raise ValueError(f"scheme must be 'forward', 'central' or 'central4', got {scheme!r}.")
    return [[derivs[j][:, i] + (1.0 if i == j else 0.0) for j in range(n)] for i in range(n)]


def jacobian_determinant(ddf: torch.Tensor, scheme: str = "forward") -> torch.Tensor:
    """Determinant of the Jacobian of ``x + u(x)``.

    Args:
        ddf: ``(B, n, *spatial)`` displacement in voxels (MONAI convention), n = 2 or 3.
        scheme: ``"forward"`` (reference; output ``(B, *(spatial - 1))``),
            ``"central"`` (Learn2Reg; output ``(B, *spatial)``) or ``"central4"`` (5-point, 4th-order central
            differences 2 voxels in from the border, output ``(B, *(spatial - 4))``: what ANTs'
            ``create_jacobian_determinant_image`` computes, to float32 rounding).

    Returns:
        the determinant per voxel, ``1`` for the identity.
    """
    n = _check_ddf(ddf)
    g = _gradients(ddf, scheme)
    if n == 2:
        return g[0][0] * g[1][1] - g[0][1] * g[1][0]
    return (
        g[0][0] * (g[1][1] * g[2][2] - g[1][2] * g[2][1])
        - g[0][1] * (g[1][0] * g[2][2] - g[1][2] * g[2][0])
        + g[0][2] * (g[1][0] * g[2][1] - g[1][1] * g[2][0])
    )


def jacobian_statistics(ddf: torch.Tensor, scheme: str = "forward") -> dict[str, torch.Tensor]:
    """Per-sample statistics of the Jacobian determinant.

    Args:
        ddf: ``(B, n, *spatial)`` displacement in voxels.
        scheme: see :func:`jacobian_determinant`.

    Returns:
        dict of ``(B,)`` tensors: ``jac_mean``, ``jac_std`` (std|J|, the paper's measure),
        ``folding_pct`` (% of voxels with det J <= 0) and ``sdlogj``.
    """
    det = jacobian_determinant(ddf, scheme).flatten(1)
    log_det = torch.log(det.clamp(1e-9, 1e9))
    return {
        "jac_mean": det.mean(1),
        "jac_std": det.std(1, correction=0),
        "folding_pct": (det <= 0).to(det.dtype).mean(1) * 100.0,
        "sdlogj": log_det.std(1, correction=0),
    }


def _check_labels(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.ndim not in (4, 5) or pred.shape[1] != 1:
        raise ValueError(
            "label maps must both have shape (B, 1, *spatial) with 2 or 3 spatial dims, "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}."
        )


def present_labels(*label_maps: torch.Tensor) -> list[int]:
    """Foreground labels (> 0) present in every given label map (the paper: "present in both")."""
    common: set[int] | None = None
    for lab in label_maps:
        values = {int(v) for v in torch.unique(lab).tolist() if v > 0}
        common = values if common is None else common & values
    return sorted(common or [])


def _one_hot(lab: torch.Tensor, labels: Sequence[int]) -> torch.Tensor:
    lab = lab.round().to(torch.int64)
    return torch.cat([(lab == v) for v in labels], dim=1).float()


def dice_per_label(
    pred: torch.Tensor, target: torch.Tensor, labels: Sequence[int] | None = None, chunk: int = 8
) -> tuple[torch.Tensor, list[int]]:
    """Dice per anatomical label with MONAI's :class:`~monai.metrics.DiceMetric`.

    Args:
        pred: ``(B, 1, *spatial)`` integer label map (e.g. the warped moving segmentation).
        target: ``(B, 1, *spatial)`` label map (the fixed segmentation).
        labels: label values to score; default: foreground labels present in both maps.
        chunk: labels one-hot encoded at a time (bounds memory for many labels).

    Returns:
        ``(B, L)`` Dice per sample and label (NaN where the label is absent from ``target``),
        and the list of the ``L`` label values.
    """
    _check_labels(pred, target)
    labels = present_labels(pred, target) if labels is None else [int(v) for v in labels]
    if not labels:
        return torch.zeros(pred.shape[0], 0), []
    metric = DiceMetric(include_background=True, reduction="none", ignore_empty=True)
    scores = []
    for start in range(0, len(labels), chunk):
        part = labels[start : start + chunk]
        scores.append(metric(_one_hot(pred, part), _one_hot(target, part)).cpu())
    return torch.cat(scores, dim=1), labels


def mean_dice(pred: torch.Tensor, target: torch.Tensor, labels: Sequence[int] | None = None) -> torch.Tensor:
    """``(B,)`` mean over labels of :func:`dice_per_label` (NaN-aware)."""
    scores, _ = dice_per_label(pred, target, labels)
    if scores.shape[1] == 0:
        return torch.full((pred.shape[0],), float("nan"))
    return torch.nanmean(scores, dim=1)


def hd95_per_label(
    pred: torch.Tensor,
    target: torch.Tensor,
    labels: Sequence[int] | None = None,
    spacing: float | Sequence[float] | None = None,
    chunk: int = 8,
) -> tuple[torch.Tensor, list[int]]:
    """95th-percentile Hausdorff distance per label (MONAI's ``compute_hausdorff_distance``).

    Args:
        pred, target, labels, chunk: as in :func:`dice_per_label`.
        spacing: voxel size in mm (per axis or one number); ``None`` gives voxels.

    Returns:
        ``(B, L)`` HD95 and the label values.
    """
    _check_labels(pred, target)
    labels = present_labels(pred, target) if labels is None else [int(v) for v in labels]
    if not labels:
        return torch.zeros(pred.shape[0], 0), []
    scores = []
    with warnings.catch_warnings():  # MONAI 1.6 warns about its own deprecated argument on every call
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*")
        for start in range(0, len(labels), chunk):
            part = labels[start : start + chunk]
            scores.append(
                compute_hausdorff_distance(
                    _one_hot(pred, part), _one_hot(target, part), include_background=True, percentile=95,
                    spacing=spacing,
                ).cpu()
            )
    return torch.cat(scores, dim=1), labels
