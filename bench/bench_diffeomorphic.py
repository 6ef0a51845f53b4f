#!/usr/bin/env python
"""Diffeomorphic vs displacement cLapIRN on the same short training budget: folding, smoothness, Dice.

    python bench/bench_diffeomorphic.py [--iterations 150,100,60] [--spacing 4] [--size 40,48,40] [--no-append]

Both variants train with the bundle's training workflow (``bundle/configs/train.yaml`` +
``configs/data/synth.yaml``, the generative pairs with the label term) on the same seeds, λ samples
and schedule, from scratch, on a coarse grid so the comparison takes minutes on 2 cores; the only
difference is ``configs/variants/diffeomorphic.yaml`` (``network_def#integration_steps: 7``). Both are
then scored by :class:`cir_monai.engines.RegistrationEvaluator` on the embedded validation pairs (2 mm;
the models predict in their coarse frame) at λ = 0.1, 1, 4: mean Dice, % of voxels with det J ≤ 0,
std|J|. Prints a table and appends it with the command to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

from cir_monai.benchmarking import append_table

ROOT = Path(__file__).resolve().parents[1]
LAMS = (0.1, 1.0, 4.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", default="150,100,60")
    parser.add_argument("--spacing", type=float, default=4.0)
    parser.add_argument("--size", default="40,48,40")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    from monai.bundle import ConfigWorkflow

    from cir_monai.engines import RegistrationEvaluator
    from cir_monai.io import load_network
    from cir_monai.workflows import prepared_pairs

    configs = ROOT / "bundle" / "configs"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, variant in (("displacement (paper)", []),
                              ("diffeomorphic (7 squarings)", [str(ROOT / "configs/variants/diffeomorphic.yaml")])):
            out = Path(tmp) / name.split()[0]
            files = [str(configs / "train.yaml"), str(ROOT / "configs/data/synth.yaml"), *variant]
            start = time.perf_counter()
            workflow = ConfigWorkflow(files, workflow_type="train", meta_file=str(configs / "metadata.json"),
                                      output_dir=str(out), dataset_dir=str(Path(tmp) / "data"), spacing=args.spacing,
                                      spatial_size=[int(v) for v in args.size.split(",")], val_interval=10**6,
                                      **{"train#trainer#iterations": [int(v) for v in args.iterations.split(",")],
                                         "train#trainer#freeze_steps": 10, "optimizer#lr": 1e-3,
                                         "log_every": 50})
            workflow.initialize()
            workflow.run()
            workflow.finalize()
            seconds = time.perf_counter() - start
            pairs = prepared_pairs(ROOT / "data" / "embedded", "validation", 2.0, (80, 96, 80))
            summary = RegistrationEvaluator(load_network(out / "model.pt"), pairs, lams=LAMS, output_dir=out / "eval",
                                            hd95=False, figures=False, progress=False).run(report=False)
            per = summary["per_lam"]
            rows.append((name, seconds, [per[f"{v:g}"] for v in LAMS], per["before"]["dice_mean"]))
    lines = ["| variant | training s | "
             + " | ".join(f"Dice / % det J ≤ 0 / std\\|J\\| at λ = {v:g}" for v in LAMS) + " |",
             "|---" * (2 + len(LAMS)) + "|"]
    for name, seconds, per, _ in rows:
        lines.append(f"| {name} | {seconds:.0f} | " + " | ".join(
            f"{m['dice_mean']:.3f} / {m['folding_pct']:.3f} / {m['jac_std']:.3f}" for m in per) + " |")
    table = "\n".join(lines) + f"\n\nDice before registration: {rows[0][3]:.3f} (4 embedded validation pairs)."
    print(table)
    if not args.no_append:
        append_table(ROOT, "Diffeomorphic vs displacement, same short budget", "bench/bench_diffeomorphic.py",
                     f"{platform.machine()}, 2 threads; trained at {args.spacing:g} mm {args.size}, "
                     f"iterations {args.iterations}", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
