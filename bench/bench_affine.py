#!/usr/bin/env python
"""`--affine` on a moved pair: its time, and Dice with and without it, against the aligned pair (one run).

    python bench/bench_affine.py [--model bundle/models/model.pt] [--lam 1] [--threads 2] [--no-append]

The pair (as tests/test_affine.py): the embedded MNI152 brain at 2 mm (96×112×96) as the fixed image;
the moving one is it under a random deformation (``make_subject``, seed 3), then moved by the issue's
affine (rotations 12° about z and 6° about x, translation 14 / −9 / 7 mm, scaling 7 %). Dice: mean over
the 3 tissue labels of the warped moving labels against the fixed ones. Times: the affine registration
(ITK, Mattes MI, 3 levels) and the whole runner call for one λ, wall seconds.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from cir_monai.benchmarking import append_table

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "bundle" / "models" / "model.pt"))
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from cir_monai.affine import affine_register, known_misalignment, move_volume
    from cir_monai.data import PairConfig, load_template, make_subject
    from cir_monai.engines import RegistrationRunner
    from cir_monai.io import load_network
    from cir_monai.metrics import mean_dice

    image, label, grid = load_template(spacing=2.0, shape=(96, 112, 96))
    subject = make_subject(torch.from_numpy(image)[None, None], torch.from_numpy(label.astype(np.int64))[None, None],
                           seed=3, config=PairConfig(max_displacement=3.0))
    moving, moving_label = subject["image"][0, 0].numpy(), subject["label"][0, 0].numpy()
    centre = grid[:3, :3] @ ((np.array(image.shape) - 1) / 2) + grid[:3, 3]
    moved_by = known_misalignment(centre)
    net = load_network(args.model)
    fixed_label = torch.from_numpy(label.astype(np.int64))[None, None]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {"fixed": image, "moving": moving, "moving_label": moving_label,
                 "moved": move_volume(moving, grid, moved_by, 1),
                 "moved_label": move_volume(moving_label, grid, moved_by, 0)}
        for key, data in files.items():
            nib.save(nib.Nifti1Image(data.astype(np.int16 if "label" in key else np.float32), grid),
                     str(tmp / f"{key}.nii.gz"))
        start = time.perf_counter()
        affine_register(tmp / "fixed.nii.gz", tmp / "moved.nii.gz")
        affine_seconds = time.perf_counter() - start
        for name, moving_key, affine in (("aligned pair", "moving", False), ("moved pair", "moved", False),
                                         ("moved pair, --affine", "moved", True)):
            pair = {"fixed": str(tmp / "fixed.nii.gz"), "moving": str(tmp / f"{moving_key}.nii.gz"),
                    "moving_label": str(tmp / f"{moving_key}_label.nii.gz"),
                    "id": name.replace(" ", "_").replace(",", "")}
            start = time.perf_counter()
            out = RegistrationRunner(net, [pair], lams=(args.lam,), output_dir=tmp / "out", affine=affine,
                                     progress=False).run()
            seconds = time.perf_counter() - start
            warped = np.asarray(nib.load(out[pair["id"]][args.lam]["warped_label"]).dataobj).astype(np.int64)
            before = np.rint(np.asarray(nib.load(pair["moving_label"]).dataobj)).astype(np.int64)
            rows.append((name, mean_dice(torch.from_numpy(before)[None, None], fixed_label).item(),
                         mean_dice(torch.from_numpy(warped)[None, None], fixed_label).item(), seconds))
    lines = ["| pair | Dice before | Dice after (λ = %g) | s (runner, one λ) |" % args.lam, "|---|---|---|---|"]
    lines += [f"| {n} | {b:.3f} | {a:.3f} | {s:.1f} |" for n, b, a, s in rows]
    table = "\n".join(lines) + f"\n\nThe ITK affine registration alone: {affine_seconds:.1f} s."
    print(table)
    if not args.no_append:
        append_table(ROOT, "Affine pre-alignment (--affine)", "bench/bench_affine.py",
                     f"{platform.machine()}, {args.threads} threads; 2 mm, 96×112×96", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
