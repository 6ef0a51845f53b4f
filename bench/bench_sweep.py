#!/usr/bin/env python
"""Cost of a λ sweep with one conditional model against training one model per λ.

    python bench/bench_sweep.py [--model bundle/models/model.pt] [--lams 0,0.1,0.5,1,2,4,8,10]
        [--pairs 4] [--schedule 1500,1000,250] [--threads 2] [--no-append]

In one run, on the embedded validation pairs (2 mm, 80×96×80):

1. the bound: per pair, one preprocessing pass (load, reorient, normalise) plus one forward
   pass per λ, each timed on its own (median of ``--repeats``);
2. the sweep: :func:`cir_monai.sweep.run_sweep` end to end, split into its preprocessing,
   its forward passes (registration work) and the rest (Dice, HD95, Jacobian statistics,
   pictures, report);
3. the alternative: training one (non-conditional) model per λ, estimated as
   ``len(lams) × Σ_level iterations × s/it``, with s/it measured here by
   ``bench/bench_training.py``'s iteration (same process kind, same threads) and the
   iterations of ``--schedule`` (default: the schedule of the shipped model).

Prints a table and appends it to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cir_monai.benchmarking import append_table

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "bundle" / "models" / "model.pt"))
    parser.add_argument("--lams", default="0,0.1,0.5,1,2,4,8,10")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--schedule", default="1500,1000,250", help="training iterations per level of one model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from cir_monai.io import load_network
    from cir_monai.runtime import tune_cpu_allocator
    from cir_monai.sweep import run_sweep
    from cir_monai.transforms import registration_preprocessing
    from cir_monai.workflows import prepared_pairs

    tune_cpu_allocator()
    torch.set_num_threads(args.threads)
    lams = [float(v) for v in args.lams.split(",")]
    schedule = [int(v) for v in args.schedule.split(",")]
    net = load_network(args.model)
    pairs = prepared_pairs(ROOT / "data" / "embedded", "validation", 2.0, (80, 96, 80))[: args.pairs]

    # 1. the bound, each part timed on its own
    pre = registration_preprocessing()
    bound, pre_times, inf_times = 0.0, [], []
    with torch.no_grad():
        for pair in pairs:
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                data = pre(dict(pair))
                times.append(time.perf_counter() - start)
            pre_times.append(statistics.median(times))
            moving, fixed = data["moving"].as_tensor()[None], data["fixed"].as_tensor()[None]
            net(moving, fixed, 1.0)  # warm-up
            for lam in lams:
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    net(moving, fixed, lam)
                    times.append(time.perf_counter() - start)
                inf_times.append(statistics.median(times))
            bound += pre_times[-1] + sum(inf_times[-len(lams):])

    # 2. the sweep end to end
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        summary = run_sweep(net, pairs, out, lams=lams, max_folding=100.0, progress=False)
        sweep_total = time.perf_counter() - start
    timing = summary["timing"]
    sweep_registration = sum(timing["preprocess_seconds"]) + timing["inference_seconds"]

    # 3. training one model per λ
    cmd = [sys.executable, str(ROOT / "bench" / "bench_training.py"), "--child", "80,96,80", "--repeats", "2",
           "--threads", str(args.threads)]
    per_level = json.loads(subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True, cwd=ROOT)
                           .stdout.strip().splitlines()[-1])
    one_model = sum(n * per_level[f"level{i + 1}_s"] for i, n in enumerate(schedule))
    n, k = len(pairs), len(lams)
    rows = [
        ("preprocessing, per pair (median)", statistics.median(pre_times)),
        ("one forward pass, per λ and pair (median)", statistics.median(inf_times)),
        (f"bound: {n} pairs × (1 preprocessing + {k} forward passes)", bound),
        ("sweep: its preprocessing + forward passes", sweep_registration),
        ("sweep: end to end (with metrics, pictures, report)", sweep_total),
        (f"training one model ({'/'.join(map(str, schedule))} it at "
         f"{per_level['level1_s']:.2f}/{per_level['level2_s']:.2f}/{per_level['level3_s']:.2f} s/it)", one_model),
        (f"training {k} models, one per λ", k * one_model),
    ]
    table = "| quantity | seconds |\n|---|---|\n" + "\n".join(f"| {name} | {value:,.1f} |" for name, value in rows)
    ratio = sweep_registration / bound
    table += (f"\n\nSweep registration work / bound = {ratio:.2f}; {k} trainings / sweep end to end = "
              f"{k * one_model / sweep_total:,.0f}×.")
    print(table)
    if not args.no_append:
        append_table(ROOT, "λ sweep vs one model per λ", "bench/bench_sweep.py",
                     f"{args.threads} threads; model {Path(args.model).name}; {n} embedded validation pairs, {k} λ",
                     table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
