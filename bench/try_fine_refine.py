#!/usr/bin/env python
"""Exploration for issue 32's item 2, not a feature: after the default pipeline (the network and 50 refinement steps
in the model's 2 mm frame), more refinement steps on the fixed image's own grid (1 mm for the held-out pairs).

    python bench/try_fine_refine.py [--group hard] [--steps 25] [--lr 0.1] [--grid-factor 2] [--pairs 4] [--threads 1]

Wraps :func:`cir_monai.engines.evaluation.predict_in_frame` in this process: its field, brought back to the fixed
grid, is refined there by :func:`cir_monai.refine.refine_ddf` (the same objective and λ, the update on a grid
``--grid-factor`` times coarser) against the preprocessed full-resolution images; then scored by the evaluator as
``bench_heldout.py`` scores every method (CerebrA Dice, EPE against the true field, std|J|, folding).
"""

from __future__ import annotations

import argparse

import torch

import cir_monai.engines.evaluation as evaluation
from cir_monai.benchmarking import add_heldout_options, evaluator_rows, heldout_pairs, summarise
from cir_monai.frame import FrameResampler
from cir_monai.io import load_network
from cir_monai.refine import refine_ddf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--grid-factor", type=int, default=2)
    parser.add_argument("--model", default="bundle/models/model.pt")
    add_heldout_options(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads or 1)
    seen = []
    to_frame = FrameResampler.to_frame

    def recording(self, image):  # the evaluator moves the fixed, then the moving image, into the frame
        seen.append(image)
        return to_frame(self, image)

    predict = evaluation.predict_in_frame

    def fine(network, resampler, moving_w, fixed_w, lam, grid=None, **kwargs):
        ddf = predict(network, resampler, moving_w, fixed_w, lam, grid=grid, **kwargs)
        moving, fixed = seen[-1].as_tensor()[None].float(), grid.as_tensor()[None].float()
        return refine_ddf(moving, fixed, ddf.float(), float(lam), args.steps, lr=args.lr, grid_factor=args.grid_factor)

    FrameResampler.to_frame = recording
    evaluation.predict_in_frame = fine
    pairs = heldout_pairs("data", args.group, args.pairs, args.data)
    rows = evaluator_rows(f"default + {args.steps} steps at the file grid", load_network(args.model), pairs, [1.0],
                          refine=50)
    for s in summarise(rows):
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()
               if k in ("method", "lam", "dice_mean", "epe_mm", "jac_std", "folding_pct", "seconds", "min_gain")})


if __name__ == "__main__":
    main()
