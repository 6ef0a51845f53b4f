#!/usr/bin/env python
"""Exploration for issue 32's item 2, not a feature: forms of the per-pair refinement on a held-out group.

    python bench/try_refine_variants.py KIND [--group hard] [--pairs 4] [--refine 50] [--passes 1] [--threads 1]

Runs the default pipeline (the shipped network in its frame, λ = 1, ``--refine`` steps) through
:func:`cir_monai.benchmarking.evaluator_rows`, with :func:`cir_monai.refine.refine_ddf` replaced in this process by
the refinement ``KIND``, and prints one JSON line per row (mean Dice, EPE, std|J|, % folding, seconds, Dice per
pair). ``KIND``:

* ``voxel``: the refinement before 0.9.0, every step on every voxel at lr 0.1;
* ``default``: the library's refinement as it stands (:data:`~cir_monai.refine.REFINE_LR`,
  :data:`~cir_monai.refine.REFINE_GRID_FACTOR`);
* ``grid_G-N_G-N…``: stages of N steps with the update on a grid G times coarser at lr 0.1 × G (``grid_2-30``: 30
  steps on a grid 2× coarser at 0.2, the default since 0.9.0; the stages' N replace ``--refine``);
* ``pyramid_G-N_…``: the same stages with the images average-pooled G times as well (the objective on coarse images);
* ``cosine_X``: every voxel, lr 0.1 × X decaying to 0 along a cosine;
* ``symmetric``: every voxel, the objective plus the local NCC of the fixed image warped by the field's approximate
  inverse against the moving image (two fixed-point iterations, differentiable inside the loop; the library's
  :func:`~cir_monai.networks.invert_ddf` solves to a tolerance, which one Adam step does not need).

* ``window_K``: the default refinement with the similarity pyramid's windows K, K − 2, K − 4 (the network's: 7);
* ``smooth_S``: the default refinement on both images Gaussian-smoothed by sigma S voxels (noise);
* ``anneal_X``: the default refinement, its first half at λ / X, its second at λ;
* ``init_L``: the network at λ = L for the start, then the default refinement at λ;
* ``lbfgs_H``: L-BFGS (history H, strong Wolfe line search) in place of Adam, the update on the default's grid,
  ``--refine`` evaluations of the objective in all.

``--passes 2`` runs the network twice (the second on the moving image warped by the first field; fields composed)
before refining. Measured 2026-12-07 on the hard group and recorded in docs/results.md ("A coarser update").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.networks.layers import GaussianFilter

import cir_monai.refine as refine_module
from cir_monai.benchmarking import evaluator_rows, heldout_pairs, summarise
from cir_monai.io import load_network
from cir_monai.losses import CLapIRNLoss, MultiResolutionNCC
from cir_monai.networks import Warp

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = refine_module.refine_ddf


class Wrapped(torch.nn.Module):
    """A network wrapped, with the attributes the pipeline reads from it (its frame, levels and λ range)."""

    def __init__(self, network) -> None:
        super().__init__()
        self.network = network
        self.frame, self.num_levels = getattr(network, "frame", None), getattr(network, "num_levels", 3)
        self.lam_range = getattr(network, "lam_range", None)


class Cascade(Wrapped):
    """The network ``passes`` times: each pass registers the moving image warped so far to the fixed one."""

    def __init__(self, network, passes: int) -> None:
        super().__init__(network)
        self.passes, self.warp = passes, Warp()

    def forward(self, moving, fixed, lam, **kwargs):
        ddf = self.network(moving, fixed, lam, **kwargs)
        for _ in range(self.passes - 1):
            step = self.network(self.warp(moving, ddf), fixed, lam, **kwargs)
            ddf = step + self.warp(ddf, step)  # x + step(x) + ddf(x + step(x))
        return ddf


class StartAt(Wrapped):
    """The network at a fixed λ, whatever it is asked (the start of the refinement at another λ)."""

    def __init__(self, network, lam: float) -> None:
        super().__init__(network)
        self.lam = float(lam)

    def forward(self, moving, fixed, lam, **kwargs):
        return self.network(moving, fixed, torch.full_like(torch.as_tensor(lam, dtype=torch.float32), self.lam),
                            **kwargs)


def windowed(kernel: int):
    """CLapIRNLoss whose finest level's similarity pyramid has windows ``kernel``, ``kernel − 2``, …"""
    class Windowed(CLapIRNLoss):
        def __init__(self, spatial_dims=3, num_levels=3, **kwargs):
            super().__init__(spatial_dims, num_levels, **kwargs)
            self.similarity[-1] = MultiResolutionNCC(spatial_dims, kernel, num_levels)
    return Windowed


def lbfgs_refine(moving, fixed, ddf, lam, evaluations, num_levels, grid_factor, history):
    """The default's objective and update grid, minimised by L-BFGS within ``evaluations`` objective evaluations."""
    objective = CLapIRNLoss(3, num_levels)
    start = ddf.detach().float().as_subclass(torch.Tensor)
    size = tuple(start.shape[2:])
    update = torch.zeros(1, 3, *(s // grid_factor for s in size), requires_grad=True)
    optimizer = torch.optim.LBFGS([update], lr=1.0, max_iter=evaluations, max_eval=evaluations,
                                  history_size=history, line_search_fn="strong_wolfe")

    def field():
        return start + F.interpolate(update, size=size, mode="trilinear", align_corners=True)

    def closure():
        optimizer.zero_grad()
        value = objective.field_objective(moving, fixed, field(), lam).sum()
        value.backward()
        return value

    with torch.enable_grad():
        optimizer.step(closure)
    return field().detach()


def stages(kind: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in part.split("-")) for part in kind.split("_")[1:]]


def pooled(image: torch.Tensor, factor: int) -> torch.Tensor:
    image = image.float().as_subclass(torch.Tensor)
    while factor > 1:
        image, factor = F.avg_pool3d(image, 3, 2, 1, count_include_pad=False), factor // 2
    return image


def pyramid_refine(moving, fixed, ddf, lam, plan, num_levels):
    """Stages on images pooled G times: the field pooled to their grid (in its voxels), refined, the change brought
    back."""
    field = ddf.detach().float().as_subclass(torch.Tensor)
    size = tuple(field.shape[2:])
    for factor, steps in plan:
        m, f = pooled(moving, factor), pooled(fixed, factor)
        scale = torch.tensor([(c - 1) / (s - 1) for c, s in zip(m.shape[2:], size)]).reshape(1, 3, 1, 1, 1)
        coarse = F.interpolate(field, size=tuple(m.shape[2:]), mode="trilinear", align_corners=True) * scale
        change = LIBRARY(m, f, coarse, lam, steps, 0.1, num_levels) - coarse
        field = field + F.interpolate(change, size=size, mode="trilinear", align_corners=True) / scale
    return field


def adam_refine(moving, fixed, ddf, lam, steps, num_levels, cosine: float = 0.0, symmetric: bool = False):
    """Every voxel, Adam at 0.1 (or 0.1 × ``cosine`` decaying to 0), optionally with the inverse-direction term."""
    objective, warp = CLapIRNLoss(3, num_levels), Warp()
    start = ddf.detach().float()
    update = torch.zeros(start.shape, requires_grad=True)
    optimizer = torch.optim.Adam([update], lr=0.1 * (cosine or 1.0))
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if cosine else None
    with torch.enable_grad():
        for _ in range(steps):
            optimizer.zero_grad()
            field = start + update
            value = objective.field_objective(moving, fixed, field, lam)
            if symmetric:
                inverse = -field
                for _ in range(2):
                    inverse = -warp(field, inverse)
                value = value + objective.field_objective(fixed, moving, inverse, 0.0)
            value.sum().backward()
            optimizer.step()
            if decay is not None:
                decay.step()
    return (start + update).detach()


def variant(kind: str):
    def refine(moving, fixed, ddf, lam, iterations=50, lr=0.1, num_levels=3, grid_factor=1, **kwargs):
        if kind == "default":
            return LIBRARY(moving, fixed, ddf, lam, iterations, lr, num_levels, grid_factor, **kwargs)
        if kind == "voxel":
            return LIBRARY(moving, fixed, ddf, lam, iterations, 0.1, num_levels)
        if kind.startswith("grid_"):
            for factor, steps in stages(kind):
                ddf = LIBRARY(moving, fixed, ddf, lam, steps, 0.1 * factor, num_levels, factor)
            return ddf
        if kind.startswith("pyramid_"):
            return pyramid_refine(moving, fixed, ddf, lam, stages(kind), num_levels)
        default = (lr, num_levels, grid_factor)
        if kind.startswith("window_"):
            refine_module.CLapIRNLoss = windowed(int(kind.split("_")[1]))
            try:
                return LIBRARY(moving, fixed, ddf, lam, iterations, *default, **kwargs)
            finally:
                refine_module.CLapIRNLoss = CLapIRNLoss
        if kind.startswith("smooth_"):
            blur = GaussianFilter(3, float(kind.split("_")[1]))
            with torch.no_grad():
                moving, fixed = (blur(x.float().as_subclass(torch.Tensor)) for x in (moving, fixed))
            return LIBRARY(moving, fixed, ddf, lam, iterations, *default, **kwargs)
        if kind.startswith("anneal_"):
            half = iterations // 2
            ddf = LIBRARY(moving, fixed, ddf, lam / float(kind.split("_")[1]), half, *default)
            return LIBRARY(moving, fixed, ddf, lam, iterations - half, *default, **kwargs)
        if kind.startswith("init_"):
            return LIBRARY(moving, fixed, ddf, lam, iterations, *default, **kwargs)
        if kind.startswith("lbfgs_"):
            return lbfgs_refine(moving, fixed, ddf, lam, iterations, num_levels, grid_factor, int(kind.split("_")[1]))
        if kind.startswith("cosine_"):
            return adam_refine(moving, fixed, ddf, lam, iterations, num_levels, cosine=float(kind.split("_")[1]))
        if kind == "symmetric":
            return adam_refine(moving, fixed, ddf, lam, iterations, num_levels, symmetric=True)
        raise SystemExit(f"unknown KIND {kind!r}")
    return refine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind")
    parser.add_argument("--group", default="hard")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--refine", type=int, default=50)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default=str(ROOT / "bundle" / "models" / "model.pt"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    refine_module.refine_ddf = variant(args.kind)  # what predict_field calls
    network = load_network(args.model)
    if args.passes > 1:
        network = Cascade(network, args.passes).eval()
    if args.kind.startswith("init_"):
        network = StartAt(network, float(args.kind.split("_")[1])).eval()
    pairs = heldout_pairs(ROOT / "data", args.group, args.pairs)
    rows = evaluator_rows(args.kind, network, pairs, [1.0], refine=args.refine)
    for entry in summarise(rows):
        print(json.dumps({"kind": args.kind, "group": args.group, "passes": args.passes, "method": entry["method"],
                          "dice": round(entry["dice_mean"], 4), "epe_mm": round(entry["epe_mm"], 3),
                          "jac_std": round(entry["jac_std"], 3), "folding_pct": round(entry["folding_pct"], 4),
                          "seconds": round(entry["seconds"], 2),
                          "per_pair": [round(r["dice_mean"], 3) for r in rows if r["method"] == entry["method"]]}))


if __name__ == "__main__":
    main()
