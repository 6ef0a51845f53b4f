#!/usr/bin/env python
"""Per-pair refinement on the held-out set: Dice, EPE, std|J|, % folding and time against the number of steps N.

    python bench/bench_refine.py [--model bundle/models/model.pt] [--steps 0,25,50,100,200]
        [--lams 0,0.1,0.5,1,2,4,8,10] [--pairs 4] [--out runs/refine] [--no-append]

Every (N, λ) runs through :class:`cir_monai.engines.RegistrationEvaluator` with ``refine=N`` on the held-out pairs
(MNI 2009c + CerebrA, 1 mm; see bench_heldout.py), the network in its frame, scored on the fixed 1 mm grid. The
time per pair is the network plus N steps. Prints one markdown table (mean over pairs), appends it with the
command to docs/benchmarks.md, and draws ``refine_curve.png`` (Dice, EPE and std|J| against N, one line per λ) to
``--out`` (and, unless ``--no-append``, to docs/images/).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from cir_monai.benchmarking import (  # noqa: E402
    add_heldout_options,
    append_table,  # noqa: E402
    evaluator_rows,
    heldout_pairs,
    summarise,
)

ROOT = Path(__file__).resolve().parents[1]


def plot_curve(summary: list[dict], path: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    lams = sorted({s["lam"] for s in summary}, key=float)
    for lam in lams:
        rows = sorted((s for s in summary if s["lam"] == lam), key=lambda s: s["steps"])
        steps = [s["steps"] for s in rows]
        for ax, key in zip(axes, ("dice_mean", "epe_mm", "jac_std")):
            ax.plot(steps, [s[key] for s in rows], marker="o", label=f"λ = {lam}")
    for ax, name in zip(axes, ("mean Dice (102 CerebrA regions)", "end-point error (mm)", "std |J|")):
        ax.set_xlabel("refinement steps N")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle("Held-out anatomy: per-pair refinement of one conditional model, every λ")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "bundle" / "models" / "model.pt"))
    parser.add_argument("--steps", default="0,25,50,100,200")
    parser.add_argument("--lams", default="0,0.1,0.5,1,2,4,8,10")
    add_heldout_options(parser)
    parser.add_argument("--out", default=str(ROOT / "runs" / "refine"))
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from cir_monai.io import load_network
    from cir_monai.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = heldout_pairs(ROOT / "data", args.group, args.pairs, args.data)
    net = load_network(args.model)
    lams = [float(v) for v in args.lams.split(",")]
    summary = []
    for steps in [int(v) for v in args.steps.split(",")]:
        print(f"N = {steps}", file=sys.stderr, flush=True)
        rows = evaluator_rows("ours", net, pairs, lams, out / f"n{steps}", refine=steps)
        for entry in summarise(rows):
            if entry["method"] == "ours":
                summary.append({"steps": steps, **entry})
            elif steps == 0:
                summary.append({"steps": "", **entry})  # identity, once
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    picture = plot_curve([s for s in summary if s["method"] == "ours"], out / "refine_curve.png")
    lines = ["| N | λ | Dice | min gain over identity | EPE mm | std\\|J\\| | % det J ≤ 0 | SDlogJ | s / pair |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        name = "identity" if s["method"] == "identity" else s["steps"]
        lines.append(f"| {name} | {s['lam']} | {s['dice_mean']:.3f} | {s['min_gain']:+.3f} | {s['epe_mm']:.2f} | "
                     f"{s['jac_std']:.3f} | {s['folding_pct']:.3f} | {s['sdlogj']:.3f} | {s['seconds']:.1f} |")
    table = "\n".join(lines)
    print(table)
    if not args.no_append:  # the docs' picture and table together, or neither (a quick check leaves the docs alone)
        shutil.copyfile(picture, ROOT / "docs" / "images" / "refine_curve.png")
        model = Path(args.model).resolve()
        details = (f"{platform.machine()}, {args.threads} threads; {len(pairs)} held-out pairs ({args.group}), "
                   f"1 mm; model {model.relative_to(ROOT) if model.is_relative_to(ROOT) else model}; "
                   f"s / pair: network + N steps")
        append_table(ROOT, "Per-pair refinement against N (held-out)", "bench/bench_refine.py", details, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
