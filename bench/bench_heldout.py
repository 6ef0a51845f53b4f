#!/usr/bin/env python
"""The held-out real-anatomy set: the shipped model at several λ vs identity, its peers (ANTs SyN, ConvexAdam, elastix,
FireANTs) and the authors' lite model.

    python bench/bench_heldout.py [--model bundle/models/model.pt] [--lams 0,0.1,1,4,10] [--refine 50] [--pairs 4]
        [--ants-transform SyN] [--no-ants] [--peers convexadam,elastix,fireants] [--no-lite] [--out runs/heldout]
        [--fine-steps 25 [--fine-lams 1]] [--no-append]

The pairs (:mod:`cir_monai.data.heldout`): the MNI ICBM152 2009c T1 with the CerebrA atlas (102
regions), which no training of this project sees, as two subjects under independent known
deformations, 1 mm, ~157×193×167. Every method is scored on the fixed image's 1 mm grid, with the
moving labels warped by nearest neighbour through its DDF: Dice per label and mean, end-point error
(mm, over the fixed brain) against the true field, std|J|, % det J ≤ 0 and SDlogJ (forward
differences, voxels). Ours runs three times: the network alone (``ours``), refined for each pair by ``--refine``
steps in its frame (``ours + refine N``; s / pair counts the steps), and then ``--fine-steps M`` more steps at the
fixed image's 1 mm grid at the ``--fine-lams`` (``ours + refine N + M at the fixed grid``,
:func:`cir_monai.refine.refine_on_grid`): with the defaults, the default pipeline of ``cir-monai register``.
Ours and the lite model run through :class:`cir_monai.engines.RegistrationEvaluator`
in their own frames (the shipped model: 2 mm; the lite model: 1 mm), the field brought back to the 1 mm
grid; ANTs and the other peers (``--peers``: ConvexAdam and elastix with their package defaults, FireANTs with its brain
script's settings) through
:mod:`cir_monai.baselines` (needs ``pip install -r requirements-bench.txt``).

Writes ``per_pair.csv``, ``summary.json`` and ``heldout_tradeoff.png`` to ``--out``, prints a markdown table
and, unless ``--no-append``, copies the picture to docs/images/ and appends the table with the command to
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from cir_monai.benchmarking import add_heldout_options, append_table, evaluator_rows, heldout_pairs, summarise

ROOT = Path(__file__).resolve().parents[1]
LITE = ROOT.parent / "shared" / "reference" / "official_clapirn_lite_oasis.pth"


def markdown(summary: list[dict]) -> str:
    lines = ["| method | λ | Dice | min gain over identity | EPE mm | std\\|J\\| | % det J ≤ 0 | SDlogJ | s / pair |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        epe = f"{s['epe_mm']:.2f}" if np.isfinite(s["epe_mm"]) else "–"  # no true field (the cross group)
        lines.append(f"| {s['method']} | {s['lam']} | {s['dice_mean']:.3f} | {s['min_gain']:+.3f} | {epe} | "
                     f"{s['jac_std']:.3f} | {s['folding_pct']:.3f} | {s['sdlogj']:.3f} | "
                     f"{s['seconds']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "bundle" / "models" / "model.pt"))
    parser.add_argument("--lams", default="0,0.1,1,4,10")
    parser.add_argument("--lite-lams", default="0,1,10")
    parser.add_argument("--refine", type=int, default=None, help="refinement steps of the refined rows (default: "
                        "register's, cir_monai.defaults.DEFAULT_REFINE; 0: no refined rows)")
    parser.add_argument("--fine-steps", type=int, default=None, help="rows of the refined pipeline with this many "
                        "steps at the fixed grid after it (default: register's, DEFAULT_FINE_STEPS; 0: none)")
    parser.add_argument("--fine-lams", default="1", help="the λ of the --fine-steps rows")
    parser.add_argument("--ants-transform", default="SyN")
    parser.add_argument("--no-ants", action="store_true")
    parser.add_argument("--peers", default="", help="more peers, comma-separated (cir_monai.baselines.PEERS: "
                        "convexadam, elastix, fireants; pip install -r requirements-bench.txt)")
    parser.add_argument("--no-lite", action="store_true")
    add_heldout_options(parser)
    parser.add_argument("--out", default=str(ROOT / "runs" / "heldout"))
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    if not args.no_ants and importlib.util.find_spec("ants") is None:  # before the minutes of the other rows
        parser.error("the ANTs SyN rows need antspyx: pip install -r requirements-bench.txt (or pass --no-ants)")
    torch.set_num_threads(args.threads)
    import os

    from cir_monai.runtime import tune_cpu_allocator

    tune_cpu_allocator()  # as the entry points: page faults on fresh 1 mm volumes cost a third otherwise

    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", str(args.threads))

    from cir_monai.io import load_network
    from cir_monai.visualize import plot_tradeoff

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = heldout_pairs(ROOT / "data", args.group, args.pairs, args.data)
    lams = [float(v) for v in args.lams.split(",")]
    from cir_monai.defaults import DEFAULT_FINE_STEPS, DEFAULT_REFINE

    net = load_network(args.model)
    rows = evaluator_rows("ours", net, pairs, lams, out)
    refine = DEFAULT_REFINE if args.refine is None else args.refine
    if refine:
        refined = evaluator_rows(f"ours + refine {refine}", net, pairs, lams, out / "refined", refine=refine)
        rows += [r for r in refined if r["method"] != "identity"]
    fine_steps = DEFAULT_FINE_STEPS if args.fine_steps is None else args.fine_steps
    if fine_steps:
        fine = evaluator_rows(f"ours + refine {refine} + {fine_steps} at the fixed grid", net, pairs,
                              [float(v) for v in args.fine_lams.split(",")], out / "fine", refine=refine,
                              fine_steps=fine_steps)
        rows += [r for r in fine if r["method"] != "identity"]
    if not args.no_lite and LITE.is_file():
        lite_rows = evaluator_rows("authors' lite (OASIS)", load_network(LITE), pairs,
                                   [float(v) for v in args.lite_lams.split(",")], out)
        rows += [r for r in lite_rows if r["method"] != "identity"]
    if not args.no_ants:
        from cir_monai.baselines import ants_rows

        rows += ants_rows(pairs, args.ants_transform, hd95=False)[0]
    for peer in [p.strip() for p in args.peers.split(",") if p.strip()]:
        from cir_monai.baselines import peer_rows

        rows += peer_rows(pairs, peer)
    summary = summarise(rows)
    with open(out / "per_pair.csv", "w", newline="") as f:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    curve = f"ours + refine {refine}" if refine else "ours"  # the default pipeline, every λ
    per_lam = {s["lam"]: s for s in summary if s["method"] == curve}
    per_lam["before"] = next(s for s in summary if s["method"] == "identity")
    references = {f"{s['method']}" + (f" λ={s['lam']}" if s["lam"] else ""): s for s in summary
                  if s["method"] not in (curve, "identity") and (s["lam"] in ("", "1"))}
    data = ("cross-template pairs, tissue classes" if args.group == "cross"
            else "2009c + CerebrA" + (f", {args.group}" if args.group != "standard" else ""))
    picture = plot_tradeoff(per_lam, out / "heldout_tradeoff.png", references=references,
                            title=f"Held-out anatomy ({data}, 1 mm): one model, every λ ({curve})")
    # the documented trade-off pictures need several λ: a quick check (one λ, or --no-append) leaves them alone
    if args.group in ("standard", "cross") and not args.no_append and len(lams) > 1:
        name = "heldout_tradeoff.png" if args.group == "standard" else f"heldout_{args.group}_tradeoff.png"
        shutil.copyfile(picture, ROOT / "docs" / "images" / name)
    table = markdown(summary)
    print(table)
    if not args.no_append:
        scored = ("mean Dice of 3 tissue classes from each image's own intensities (cir_monai.data.cross_template), "
                  "no true field" if args.group == "cross" else "mean Dice over the CerebrA regions present")
        details = (f"{platform.machine()}, {args.threads} threads; {len(pairs)} held-out pairs ({args.group}), 1 mm, "
                   f"{scored}; model "
                   + str(Path(args.model).relative_to(ROOT) if Path(args.model).is_relative_to(ROOT) else args.model))
        append_table(ROOT, "Held-out anatomy", "bench/bench_heldout.py", details, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
