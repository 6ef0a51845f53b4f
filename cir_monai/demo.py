# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Register the built-in phantom pair at several λ with one model and report what changed.

``python -m cir_monai.demo [--weights PATH] [--out DIR] [--lams 0.1,1,4]``

Uses the authors' released lite cLapIRN weights (``--weights``; by default
``../shared/reference/official_clapirn_lite_oasis.pth`` beside the repository).
Prints Dice (before/after), std|J|, % folding and time per λ, and writes a PNG
of the middle slices. This is the placeholder main job until the bundle's
train/infer/evaluate workflows land.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from cir_monai.convert import load_official_checkpoint
from cir_monai.data import synthetic_pair
from cir_monai.metrics import jacobian_statistics, mean_dice
from cir_monai.networks import Warp
from cir_monai.runtime import tune_cpu_allocator

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "official_clapirn_lite_oasis.pth"


def save_png(path: Path, pair: dict, warped: dict[float, torch.Tensor]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = pair["fixed"].shape[2] // 2
    panels = [("fixed", pair["fixed"]), ("moving", pair["moving"])] + [(f"warped λ={k:g}", v) for k, v in warped.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3))
    for ax, (title, img) in zip(axes, panels):
        ax.imshow(img[0, 0, z].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.contour(pair["fixed_label"][0, 0, z].numpy() >= 2, levels=[0.5], colors="r", linewidths=0.6)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle("red: fixed grey-matter boundary", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=os.environ.get("CIR_MONAI_WEIGHTS", str(DEFAULT_WEIGHTS)))
    parser.add_argument("--out", default="out/demo")
    parser.add_argument("--lams", default="0.1,1,4", help="comma-separated λ values in [0, 10]")
    parser.add_argument("--size", default="96,112,96", help="phantom size D,H,W")
    args = parser.parse_args(argv)
    if not Path(args.weights).is_file():
        print(
            f"error: no weights at {args.weights}. Give --weights PATH to the authors' "
            "official_clapirn_lite_oasis.pth (or set CIR_MONAI_WEIGHTS).",
            file=sys.stderr,
        )
        return 2
    try:
        lams = [float(v) for v in args.lams.split(",")]
        shape = tuple(int(v) for v in args.size.split(","))
    except ValueError:
        print(f"error: --lams and --size take comma-separated numbers, got {args.lams!r} and {args.size!r}", file=sys.stderr)
        return 2
    tune_cpu_allocator()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"building the phantom pair {shape} ...", flush=True)
    pair = synthetic_pair(shape, seed=0)
    net = load_official_checkpoint(args.weights)
    nearest = Warp("nearest")
    before = mean_dice(pair["moving_label"], pair["fixed_label"]).item()
    print(f"{'λ':>6} {'Dice':>7} {'std|J|':>8} {'fold %':>7} {'time s':>7}   (Dice before: {before:.3f})")
    warped = {}
    for lam in lams:
        start = time.perf_counter()
        with torch.no_grad():
            ddf = net(pair["moving"], pair["fixed"], lam)
        seconds = time.perf_counter() - start
        dice = mean_dice(nearest(pair["moving_label"].float(), ddf), pair["fixed_label"]).item()
        stats = jacobian_statistics(ddf)
        warped[lam] = net.warp(pair["moving"], ddf)
        print(f"{lam:6g} {dice:7.3f} {stats['jac_std'].item():8.3f} {stats['folding_pct'].item():7.3f} {seconds:7.2f}")
    save_png(out / "demo_slices.png", pair, warped)
    print(f"wrote {out / 'demo_slices.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
