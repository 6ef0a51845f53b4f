#!/usr/bin/env python
"""Baselines on the embedded test pairs: our cLapIRN vs ANTs SyN vs the authors' released lite model.

    python bench/bench_baselines.py [--model bundle/models/model.pt] [--lams 0,0.1,0.5,1,2,4,8,10]
        [--ants-transform SyN] [--lite-lams 0,1,4,10] [--pairs 8] [--threads 2] [--out runs/baselines] [--no-append]

Needs ``pip install -r requirements-bench.txt`` (antspyx). Methods, each scored with the same
functions of :mod:`cir_monai.metrics` (Dice per label and mean, HD95 in mm, std|J|, % det J ≤ 0,
SDlogJ; forward-difference Jacobian of the voxel DDF) on every pair:

* ``ours``: the trained cLapIRN at each λ, through :class:`cir_monai.engines.RegistrationEvaluator`
  on the pairs' own grid (2 mm, 80×96×80); seconds = the network's forward pass.
* ``ANTs``: :func:`cir_monai.baselines.ants_rows`: ``ants.registration(fixed, moving, type_of_transform=...)`` on
  the same NIfTI files (their own grid, which is the RAS grid the networks see for these pairs) and the same number
  of threads; seconds = the wall time of ``ants.registration``; the composed forward transform converted to a voxel
  DDF and scored as ours (moving label by nearest neighbour through it), with the conversion checked on every pair
  (the worst pair's check in the notes).
* ``lite``: the authors' released lite model (``official_clapirn_lite_oasis.pth``, OASIS, 1 mm,
  λ = 10 × their normalised code), converted on load. Its inputs are resampled to 1 mm (~160×192×160)
  as it was trained on 1 mm images, so its rows (and its own ``before`` row) are scored on that grid.

Writes ``per_pair.csv`` and ``summary.json`` to ``--out``, prints a markdown table and appends it,
with the command, to docs/benchmarks.md (unless ``--no-append``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import torch

from cir_monai.benchmarking import append_table, evaluator_rows, summarise

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "bundle" / "models" / "model.pt"
LITE = ROOT.parent / "shared" / "reference" / "official_clapirn_lite_oasis.pth"
LABEL_NAMES = {1: "CSF", 2: "GM", 3: "WM"}


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def markdown(summary: list[dict], labels: list[int]) -> str:
    ants = [s["seconds"] for s in summary if s["method"].startswith("ANTs")]
    columns = ["method", "λ", "Dice", *(f"Dice {LABEL_NAMES.get(v, v)}" for v in labels), "HD95 mm",
               "std\\|J\\|", "% det J ≤ 0", "SDlogJ", "s / pair", "× faster than ANTs"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for s in summary:
        speed = f"{ants[0] / s['seconds']:.1f}×" if ants and s["seconds"] > 0 else ""
        lines.append(
            f"| {s['method']} | {s['lam'] or '–'} | {s['dice_mean']:.3f} ± {s['dice_sd']:.3f} | "
            + " | ".join(f"{s.get(f'dice_{v}', float('nan')):.3f}" for v in labels)
            + f" | {s['hd95_mean']:.2f} | {s['jac_std']:.3f} | {s['folding_pct']:.3f} | {s['sdlogj']:.3f} | "
            f"{s['seconds']:.2f} | {speed} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="our model file")
    parser.add_argument("--lams", default="0,0.1,0.5,1,2,4,8,10", help="λ values of our model")
    parser.add_argument("--ants-transform", default="SyN", help="type_of_transform of ants.registration (e.g. SyNOnly)")
    parser.add_argument("--lite", default=str(LITE), help="the authors' lite weights ('' to skip)")
    parser.add_argument("--lite-lams", default="0,1,4,10", help="λ of the lite model (= 10 × the authors' code)")
    parser.add_argument("--lite-pixdim", type=float, default=1.0, help="the lite model's inputs' spacing (mm)")
    parser.add_argument("--methods", default="ours,ants,lite", help="subset of ours,ants,lite")
    parser.add_argument("--pairs", type=int, default=8, help="first N embedded test pairs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="device of the networks (ANTs is CPU only)")
    parser.add_argument("--ants-seed", type=int, default=0, help="ANTs --random-seed (affine metric sampling)")
    parser.add_argument("--data", default=str(ROOT / "data" / "embedded"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "baselines"))
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if set(methods) - {"ours", "ants", "lite"}:
        parser.error(f"unknown methods {sorted(set(methods) - {'ours', 'ants', 'lite'})}")

    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)  # read by ITK when ants first runs
    from cir_monai.io import load_network
    from cir_monai.runtime import tune_cpu_allocator
    from cir_monai.workflows import prepared_pairs

    tune_cpu_allocator()
    torch.set_num_threads(args.threads)
    pairs = prepared_pairs(args.data, "test", 2.0, (80, 96, 80), num_validation=4, num_test=8)[: args.pairs]
    pairs = [{**p, "id": p.get("id") or Path(p["fixed"]).parent.name} for p in pairs]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    notes, rows, checks, config = [], [], [], {"pairs": [p["id"] for p in pairs], "threads": args.threads}
    if "ours" in methods:
        net = load_network(args.model, args.device)
        rows += evaluator_rows("ours", net, pairs, _floats(args.lams), hd95=True, device=args.device)
        notes.append(f"ours: `{args.model}`, λ ∈ [0, {net.lam_max:g}], in its frame, scored on the pairs' own grid.")
    if "ants" in methods:
        import ants
        import ants.config

        from cir_monai.baselines import ants_rows

        ants.config.set_ants_deterministic(True, args.ants_seed)  # seeds antsRegistration's sampling ...
        os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)  # ... which also sets 1 thread: undo
        ants_r, checks = ants_rows(pairs, args.ants_transform)
        rows += ants_r
        worst = {k: max(c[k] for c in checks) for k in checks[0] if k != "pair"}
        generic = float(np.mean([r["dice_mean_genericlabel"] for r in ants_r]))
        notes.append(
            f"ANTs: antspyx {getattr(ants, '__version__', '?')} `ants.registration(type_of_transform="
            f"\"{args.ants_transform}\")`, {args.threads} ITK threads, `--random-seed {args.ants_seed}`; time = "
            f"`ants.registration` only; labels warped by nearest neighbour through the converted DDF, as the "
            f"networks' are (with ANTs' `genericLabel`: Dice {generic:.3f}). Conversion check (worst pair): MONAI's "
            f"warp vs ANTs' warped image max |Δ| {worst['warp_maxabs_inside']:.1e} of the image's range, 5-point "
            f"det J vs `create_jacobian_determinant_image` max |Δ| {worst['jac_maxabs_vs_ants']:.1e}.")
    if "lite" in methods and args.lite and Path(args.lite).is_file():
        net = load_network(args.lite, args.device)
        rows += evaluator_rows("authors' lite (OASIS)", net, pairs, _floats(args.lite_lams), hd95=True,
                               device=args.device, pixdim=args.lite_pixdim)
        notes.append(f"lite: the authors' released weights (OASIS, 1 mm), λ = 10 × their code, inputs resampled to "
                     f"{args.lite_pixdim:g} mm; our data are 2 mm images upsampled, not native 1 mm.")
    with open(out / "per_pair.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    summary = summarise(rows)
    labels = sorted({int(k.split("_")[1]) for row in rows for k in row if k.split("_")[-1].isdigit()})
    notes.insert(0, f"{len(pairs)} embedded test pairs; Dice = mean ± sd over pairs of the mean over labels "
                 f"({', '.join(f'{v} {LABEL_NAMES.get(v, v)}' for v in labels)}); std|J|, % det J ≤ 0, SDlogJ: "
                 f"forward differences of the voxel DDF; `identity` = before registration.")
    table = markdown(summary, labels) + "\n\n" + "\n".join(f"- {n}" for n in notes)
    (out / "summary.json").write_text(json.dumps(
        {"config": config, "summary": summary, "ants_ddf_checks": checks, "notes": notes}, indent=1))
    print(table)
    if not args.no_append:
        machine = f"{platform.processor() or platform.machine()}, {args.threads} threads, device {args.device}"
        print("appended to", append_table(ROOT, "Baselines: ours vs ANTs SyN vs the authors' lite model",
                                          "bench/bench_baselines.py", machine, table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
