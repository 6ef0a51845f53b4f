#!/usr/bin/env python
"""The refinement's local NCC on the CPU: MONAI's window sums (separable convolution) against box sums by shifted
additions (:class:`cir_monai.losses.BoxLNCC`, the refinement's), forward and backward, alone and inside one
refinement step.

    python bench/bench_lncc.py [--threads 2] [--repeats 5] [--no-append]

Two sizes: the model's 2 mm frame (80×96×80, the default refinement) and a 1 mm brain box (150×180×150, about
what ``register``'s 1 mm stage optimises for a 1 mm brain). Rows:

* ``similarity``: :class:`~cir_monai.losses.MultiResolutionNCC` (windows 7, 5, 3 on three scales), forward and
  backward, with ``box_sums`` off (MONAI's :class:`~monai.losses.LocalNormalizedCrossCorrelationLoss`) and on;
* ``refinement step``: one Adam step of :func:`cir_monai.refine.refine_ddf` as the stages run it (the update on a
  grid twice as coarse), timed as ``refine_ddf`` with ``repeats`` steps over the repeats, with ``fast`` off (MONAI's
  sums, autograd's smoothness gradient) and on (box sums, the smoothness gradient written out: the default); the
  warp is :class:`cir_monai.networks.Warp` in both.

The two sums alternate within each size, so a ratio compares two measurements taken side by side. Prints a table
and appends it, with the command, to docs/benchmarks.md. Time it on an idle machine.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from cir_monai.benchmarking import append_table
from cir_monai.losses import MultiResolutionNCC
from cir_monai.refine import refine_ddf

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"2 mm frame": (80, 96, 80), "1 mm brain box": (150, 180, 150)}


def images(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A smooth random image pair in [0, 1] with a smooth random field (voxels): the refinement's inputs' kind."""
    gen = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 2, *(max(2, s // 8) for s in shape), generator=gen)
    pair = torch.nn.functional.interpolate(coarse, size=shape, mode="trilinear", align_corners=True)
    field = torch.nn.functional.interpolate(torch.randn(1, 3, 4, 4, 4, generator=gen), size=shape, mode="trilinear",
                                            align_corners=True)
    return pair[:, :1], pair[:, 1:], field


def similarity_seconds(box: bool, moving: torch.Tensor, fixed: torch.Tensor) -> float:
    loss = MultiResolutionNCC(3, 7, 3, box_sums=box)
    pred = moving.clone().requires_grad_()
    start = time.perf_counter()
    loss(pred, fixed).sum().backward()
    return time.perf_counter() - start


def step_seconds(box: bool, moving, fixed, field, steps: int) -> float:
    start = time.perf_counter()
    refine_ddf(moving, fixed, field, 1.0, steps, lr=0.25, grid_factor=2, fast=box)
    return (time.perf_counter() - start) / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = ["| size | what | reference s (MONAI's sums) | fast path s (box sums) | ratio |", "|---|---|---|---|---|"]
    for name, shape in SIZES.items():
        moving, fixed, field = images(shape)
        similarity_seconds(False, moving, fixed), similarity_seconds(True, moving, fixed)  # warm-up
        times = {False: [], True: []}
        for _ in range(args.repeats):
            for box in (False, True):
                times[box].append(similarity_seconds(box, moving, fixed))
        conv, box = min(times[False]), min(times[True])
        lines.append(f"| {name} | similarity, forward + backward | {conv:.3f} | {box:.3f} | {conv / box:.2f} |")
        conv = step_seconds(False, moving, fixed, field, args.repeats)
        box = step_seconds(True, moving, fixed, field, args.repeats)
        lines.append(f"| {name} | refinement step | {conv:.3f} | {box:.3f} | {conv / box:.2f} |")
        print(lines[-2], lines[-1], sep="\n", flush=True)
    table = "\n".join(lines)
    print(table)
    if not args.no_append:
        append_table(ROOT, "The local NCC's window sums", "bench/bench_lncc.py",
                     f"{platform.machine()}, {args.threads} threads; best of {args.repeats} (similarity), "
                     f"mean of {args.repeats} steps (refinement)", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
