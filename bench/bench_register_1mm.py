#!/usr/bin/env python
"""`cir-monai register` on a 1 mm brain pair end to end, against ANTs SyN on the same pair, in one run.

    python bench/bench_register_1mm.py [--model bundle/models/model.pt] [--lam 1] [--refine 0,30]
        [--input-frame-refine 0] [--fine-steps 10,30+5] [--threads 2] [--no-ants] [--no-append]

The pair: a held-out pair (:func:`cir_monai.data.heldout.heldout_pair`, seed 31000: two "subjects" of
the MNI ICBM152 2009c T1 brain under independent deformations, with their CerebrA labels) on the
template's full 1 mm grid, 193×229×193, empty margins included (as a user's scan comes). Each method runs in
its own process, so the times are
wall times of the whole job (reading, preprocessing, registration, writing) and the peak memory is
that process's maximum resident set size:

* ``cir-monai register FIXED MOVING --moving-label LABEL --lam 1``: the default pipeline (the shipped model
  predicts in its 2 mm frame, refined by ``DEFAULT_REFINE`` steps there, then ``DEFAULT_FINE_STEPS`` steps at the
  fixed image's 1 mm grid; warped image, label and DDF are written at 1 mm);
* ``--refine N --fine-steps 0`` for each N of ``--refine``: the frame's refinement alone (0: the network alone);
* the same with ``--frame input`` for each N of ``--input-frame-refine``: the network predicts on the fixed
  image's own 1 mm grid instead of its 2 mm frame (how much a model loses outside the frame it was trained in);
* ``--refine DEFAULT_REFINE --fine-steps M`` for each M of ``--fine-steps``: the frame's default steps, then M steps
  on the fixed image's own 1 mm grid (:func:`cir_monai.refine.refine_on_grid`); an entry ``R+M`` runs ``--refine R
  --fine-steps M``;
* the import floor: a process that only imports the runner (torch, MONAI and what MONAI imports), the part of
  every ``cir-monai register`` time that no registration work can remove;
* ANTs SyN (``ants.registration(type_of_transform="SyN")`` plus the warped label and image written),
  needs ``pip install -r requirements-bench.txt``.

Prints a table and appends it, with the command, to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from cir_monai.benchmarking import append_table
from cir_monai.data.heldout import write_full_grid_pair
from cir_monai.defaults import DEFAULT_FINE_STEPS, DEFAULT_REFINE

ROOT = Path(__file__).resolve().parents[1]

ANTS_JOB = """
import sys, ants
fixed, moving, label, out = sys.argv[1:5]
f, m = ants.image_read(fixed), ants.image_read(moving)
reg = ants.registration(f, m, type_of_transform="SyN", outprefix=out + "/reg_")
ants.image_write(reg["warpedmovout"], out + "/warped.nii.gz")
lab = ants.apply_transforms(f, ants.image_read(label), reg["fwdtransforms"], interpolator="genericLabel")
ants.image_write(lab, out + "/warped_label.nii.gz")
"""


#: runs one command as this wrapper's only child and prints that child's peak RSS (kB): getrusage(CHILDREN)
#: is a maximum over every child a process ever had, so each job gets a fresh wrapper
PEAK_WRAPPER = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def timed(command: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of one child process."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, *command], check=True, env=env, capture_output=True,
                         text=True)
    seconds = time.perf_counter() - start
    return seconds, int(out.stdout.strip().splitlines()[-1]) / 1024**2


def gm_free_dice(warped_label: str, fixed_label: str) -> float:
    """Mean Dice over the CerebrA regions present in both."""
    import torch

    from cir_monai.metrics import dice_per_label, present_labels

    w = torch.from_numpy(np.rint(np.asarray(nib.load(warped_label).dataobj)).astype(np.int64))[None, None]
    f = torch.from_numpy(np.asarray(nib.load(fixed_label).dataobj).astype(np.int64))[None, None]
    dice, _ = dice_per_label(w, f, present_labels(w, f))
    return float(torch.nanmean(dice[0]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "bundle" / "models" / "model.pt"))
    parser.add_argument("--lam", default="1")
    parser.add_argument("--refine", default="0", help="refinement steps in the frame alone (--fine-steps 0), one "
                                                       "register run each, after the default pipeline's run")
    parser.add_argument("--input-frame-refine", default="0",
                        help="refinement steps of the --frame input runs (1 mm), one each; empty: none")
    parser.add_argument("--fine-steps", default="",
                        help="steps at the fixed grid after the default refinement, one run each; R+M: after R "
                             "steps in the frame")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-ants", action="store_true")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=str(args.threads))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_1mm_") as tmp:
        tmp = Path(tmp)
        paths = write_full_grid_pair(tmp)
        shape = "×".join(str(s) for s in nib.load(paths["fixed"]).shape)
        runs = [[]]  # the default pipeline
        runs += [["--refine", v, "--fine-steps", "0"] for v in args.refine.split(",") if v]
        runs += [["--refine", v, "--fine-steps", "0", "--frame", "input"] for v in args.input_frame_refine.split(",")
                 if v]
        for entry in filter(None, args.fine_steps.split(",")):
            frame_steps, _, fine = entry.rpartition("+")
            runs.append(["--refine", frame_steps or str(DEFAULT_REFINE), "--fine-steps", fine])
        for index, extra in enumerate(runs):
            ours = tmp / f"ours_{index}"
            seconds, peak = timed([sys.executable, "-m", "cir_monai", "register", paths["fixed"], paths["moving"],
                                   "--moving-label", paths["moving_label"], "--lam", args.lam, "--model", args.model,
                                   *extra, "--out", str(ours)], env)
            warped = next(ours.glob("*/lam_*/warped_label.nii.gz"))
            name = " ".join(["cir-monai register", *extra]) if extra else (
                f"cir-monai register (the default: {DEFAULT_REFINE} steps in the frame + {DEFAULT_FINE_STEPS} at 1 mm)")
            rows.append((name, seconds, peak, gm_free_dice(str(warped), paths["fixed_label"])))
        rows.insert(0, ("identity", 0.0, 0.0, gm_free_dice(paths["moving_label"], paths["fixed_label"])))
        # the floor under any `cir-monai register`: starting Python and importing torch, MONAI (which imports
        # ignite, scipy, matplotlib …) and the runner, with no work done
        seconds, peak = timed([sys.executable, "-c", "import cir_monai.engines.inference"], env)
        rows.append(("(import only: python -c 'import cir_monai.engines.inference')", seconds, peak, float("nan")))
        if not args.no_ants:
            ants_out = tmp / "ants"
            ants_out.mkdir()
            seconds, peak = timed([sys.executable, "-c", ANTS_JOB, paths["fixed"], paths["moving"],
                                   paths["moving_label"], str(ants_out)], env)
            rows.append(("ANTs SyN", seconds, peak, gm_free_dice(str(ants_out / "warped_label.nii.gz"),
                                                                 paths["fixed_label"])))
    ants_s = next((r[1] for r in rows if r[0] == "ANTs SyN"), None)
    lines = ["| method | wall s | peak RSS GB | share of ANTs' time | CerebrA Dice |", "|---|---|---|---|---|"]
    for name, seconds, peak, dice in rows:
        share = f"{seconds / ants_s:.2f}" if ants_s and seconds else ""
        score = "" if dice != dice else f"{dice:.3f}"
        lines.append(f"| {name} | {seconds:.1f} | {peak:.2f} | {share} | {score} |")
    table = "\n".join(lines)
    print(table)
    if not args.no_append:
        append_table(ROOT, "Register a 1 mm brain pair end to end", "bench/bench_register_1mm.py",
                     f"{platform.machine()}, {args.threads} threads; fixed {shape} at 1 mm, λ = {args.lam}; "
                     "each method a separate process, wall time and its peak RSS", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
