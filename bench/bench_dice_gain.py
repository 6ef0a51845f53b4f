#!/usr/bin/env python
"""Does the default CPU scale learn within ~10 minutes? Train, then report validation Dice.

    python bench/bench_dice_gain.py [--iterations 300,200,40] [--lr 1e-3] [--out runs/dice_gain] [--no-append]

Trains CIR-DM (start_channels 7) with :class:`cir_monai.engines.CLapIRNTrainer` on on-the-fly
pairs of the embedded MNI152 data set at the default grid (2 mm, 80×96×80) and validates on the
embedded validation pairs (``python -m cir_monai.data prepare``) at λ = 0.1, 1, 4: mean Dice of
the tissue labels before registration and after, std|J| and % folding, and the wall time.
Appends the result to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

from cir_monai.benchmarking import append_table

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", default="300,200,40", help="steps per level, coarse to fine")
    parser.add_argument("--freeze", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", default=str(ROOT / "runs" / "dice_gain"))
    parser.add_argument("--data", default=str(ROOT / "data" / "embedded"))
    parser.add_argument("--val-every", type=int, default=100, help="validation period during training (logged)")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from cir_monai.data import DEFAULT_SHAPE, DEFAULT_SPACING, load_pairs, prepare_embedded
    from cir_monai.engines import CLapIRNTrainer, validate
    from cir_monai.engines.handlers import TrainingCheckpoint, default_handlers
    from cir_monai.engines.validation import LevelValidation, LevelValidator
    from cir_monai.networks import CLapIRN
    from cir_monai.runtime import tune_cpu_allocator
    from cir_monai.workflows import embedded_training_dataset, validation_tensors

    tune_cpu_allocator()
    torch.set_num_threads(2)
    datalist = prepare_embedded(args.data)
    val = validation_tensors(load_pairs(datalist.parent, split="validation"))
    torch.manual_seed(0)
    net = CLapIRN(3, start_channels=7)
    iterations = tuple(int(v) for v in args.iterations.split(","))
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr, fused=True)
    out = Path(args.out)
    handlers = [TrainingCheckpoint(out / "checkpoint.pt", net, optimizer, every=50),
                LevelValidation(LevelValidator(net, val, (0.1, 1.0, 4.0), "cpu"), args.val_every),
                *default_handlers(out, 10)]
    trainer = CLapIRNTrainer(
        net, embedded_training_dataset(args.data, DEFAULT_SPACING, DEFAULT_SHAPE), out, optimizer=optimizer,
        iterations=iterations, freeze_steps=args.freeze, log_every=10, handlers=handlers, resume=False,
    )
    start = time.perf_counter()
    trainer.run()
    minutes = (time.perf_counter() - start) / 60
    scores = validate(net, val, (0.1, 1.0, 4.0), torch.device("cpu"))
    line = (
        f"| {args.iterations} | {args.lr:g} | {minutes:.1f} | {scores['dice_before']:.3f} | "
        + " | ".join(f"{scores[f'dice@{lam:g}']:.3f} / {scores[f'jac_std@{lam:g}']:.3f} / "
                     f"{scores[f'folding_pct@{lam:g}']:.2f}" for lam in (0.1, 1.0, 4.0))
        + " |"
    )
    table = (
        "| iterations per level | lr | minutes | Dice before | λ=0.1: Dice / std\\|J\\| / % fold | λ=1 | λ=4 |\n"
        "|---|---|---|---|---|---|---|\n" + line
    )
    print(table)
    if not args.no_append:
        append_table(ROOT, "Dice gain of a short CPU training", "bench/bench_dice_gain.py",
                     "2 threads; embedded validation pairs, mean Dice over the 3 tissue labels", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
