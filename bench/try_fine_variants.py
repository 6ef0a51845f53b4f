#!/usr/bin/env python
"""Exploration for issue 32's item 2, not a feature: forms of the 1 mm stage (``register --fine-steps``).

    python bench/try_fine_variants.py KIND [--lr 0.25] [--sigma 1] [--fine-steps 10] [--group hard] [--threads 1]

Runs ``bench/bench_heldout.py --lams 1 --fine-steps N --no-lite --no-ants --no-append`` (the default pipeline, then N
steps at the fixed grid) in this process with the stage's update replaced by ``KIND``:

* ``voxel``: the update on every voxel of the fixed grid (``FINE_GRID_FACTOR`` 1) at ``--lr``;
* ``smoothgrad``: the update on every voxel, its gradient Gaussian-smoothed by ``--sigma`` voxels before each Adam
  step at ``--lr`` (FireANTs' greedy stage smooths its gradient, ``smooth_grad_sigma`` 1 by default).

The frame's refinement is the library's. Measured 2026-12-07 on the hard group; recorded in docs/results.md ("More
tries at 2 mm, and the 1 mm stage's cost").
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import torch
from monai.networks.layers import GaussianFilter

import cir_monai.refine as refine_module
from cir_monai.losses import CLapIRNLoss

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = refine_module.refine_ddf


def smoothed_gradient(sigma: float, stage_lr: float):
    """A ``refine_ddf`` whose 1 mm calls (those from ``refine_on_grid``, the stage's) update every voxel with a
    smoothed gradient at ``stage_lr``."""
    def refine(moving, fixed, ddf, lam, iterations=50, lr=0.1, num_levels=3, grid_factor=1, progress=None, **kwargs):
        if sys._getframe(1).f_code.co_name != "refine_on_grid":  # the frame's refinement
            return LIBRARY(moving, fixed, ddf, lam, iterations, lr, num_levels, grid_factor, progress=progress,
                           **kwargs)
        objective, blur = CLapIRNLoss(3, num_levels, fast=True), GaussianFilter(3, sigma)
        start, moving, fixed = (x.detach().float().as_subclass(torch.Tensor).contiguous() for x in (ddf, moving, fixed))
        update = torch.zeros(start.shape, requires_grad=True)
        update.register_hook(blur)
        optimizer = torch.optim.Adam([update], lr=stage_lr)
        with torch.enable_grad():
            for _ in range(iterations):
                optimizer.zero_grad()
                objective.field_objective(moving, fixed, start + update, lam).sum().backward()
                optimizer.step()
        return (start + update).detach()
    return refine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["voxel", "smoothgrad"])
    parser.add_argument("--lr", type=float, default=0.25)
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--fine-steps", default="10")
    parser.add_argument("--group", default="hard")
    parser.add_argument("--threads", default="1")
    args = parser.parse_args()
    if args.kind == "voxel":
        refine_module.FINE_GRID_FACTOR, refine_module.FINE_LR = 1, args.lr
    else:
        refine_module.refine_ddf = smoothed_gradient(args.sigma, args.lr)
    sys.argv = ["bench/bench_heldout.py", "--group", args.group, "--lams", "1", "--fine-steps", args.fine_steps,
                "--no-lite", "--no-ants", "--no-append", "--threads", args.threads,
                "--out", str(ROOT / "runs" / f"try_fine_{args.kind}_{args.group}")]
    runpy.run_path(str(ROOT / "bench" / "bench_heldout.py"), run_name="__main__")


if __name__ == "__main__":
    main()
