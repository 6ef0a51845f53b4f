#!/usr/bin/env python
"""The paper's Table 1 and Fig. 3 in 2D, every model trained to convergence on CPU (issue 31).

    python bench/paper_2d.py pilot [--out runs/paper_2d] [--threads 1]

``pilot``: fixes the schedule and the learning rate. Trains CIR-DM (``configs/variants/cir_dm.yaml``) and the
λ = 0.1 baseline (``baseline.yaml``) on the 2D overlay (``configs/scale/cpu_2d.yaml``: axial 80×96 slices, the
paper's network, 4k / 4k / 20k iterations, a fresh Adam per level) at lr 1e-4, and CIR-DM at 1e-3, one after the
other, each in its own resumable process (:mod:`cir_monai.experiments`); then draws their in-distribution
validation curves (``docs/images/paper_2d_pilot.png``). Run it again to resume.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCALE = ROOT / "configs" / "scale" / "cpu_2d.yaml"
VARIANTS = ROOT / "configs" / "variants"
#: the pilot's models: name → (variant, overrides)
PILOT = {
    "CIR-DM lr1e-4": ("cir_dm.yaml", {}),
    "baseline lam0.1 lr1e-4": ("baseline.yaml", {"train#trainer#lam_fixed": 0.1}),
    "CIR-DM lr1e-3": ("cir_dm.yaml", {"optimizer#lr": 0.001}),
}


def folder(out: Path, name: str) -> Path:
    return out / "models" / name.replace(" ", "_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["pilot"])
    parser.add_argument("--out", default=str(ROOT / "runs" / "paper_2d"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot-only", action="store_true", help="draw the curves of what has trained so far")
    args = parser.parse_args()

    from cir_monai.defaults import embedded_dir
    from cir_monai.experiments import read_metrics, train_in_process
    from cir_monai.visualize import plot_learning_curves

    out = Path(args.out)
    if not args.plot_only:
        for name, (variant, overrides) in PILOT.items():
            seconds = train_in_process([VARIANTS / variant, SCALE], folder(out, name), 0, overrides, args.threads,
                                       dataset_dir=embedded_dir())
            print(f"{name}: trained in {seconds / 60:.1f} min", flush=True)
    runs = {name: read_metrics(folder(out, name)) for name in PILOT}
    picture = plot_learning_curves(runs, out / "pilot_curves.png", lams=(0.1, 1.0, 4.0))
    print(f"curves: {picture}")


if __name__ == "__main__":
    main()
