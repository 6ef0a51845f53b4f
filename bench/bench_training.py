#!/usr/bin/env python
"""Training benchmark: seconds per iteration at each pyramid level, and peak memory.

    python bench/bench_training.py [--repeats 3] [--no-append]

Configurations: the default CPU scale (80×96×80, 2 mm, start_channels 7) and 64×80×64 with
start_channels 7 (the size at which the authors' code needs ~2.0 s per level-3 iteration on a
2-core machine). One iteration = forward in training mode, the loss of the active level,
backward, Adam step, batch size 1, as in :class:`cir_monai.engines.CLapIRNTrainer`. Each
configuration runs in its own process (peak RSS is per process). Appends the table to
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlog import append_table

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"default 80×96×80": (80, 96, 80), "64×80×64": (64, 80, 64)}


def child(shape: tuple[int, ...], repeats: int, threads: int) -> dict:
    import torch

    from cir_monai.losses import CLapIRNLoss
    from cir_monai.networks import CLapIRN
    from cir_monai.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = CLapIRN(3, start_channels=7).train()
    loss_fn = CLapIRNLoss(3)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    moving, fixed = torch.rand(1, 1, *shape), torch.rand(1, 1, *shape)
    result = {}
    for level in (1, 2, 3):
        times = []
        for i in range(repeats + 1):
            start = time.perf_counter()
            lam = torch.rand(1) * 10
            out = net(moving, fixed, lam, active_levels=level)
            loss = loss_fn(out, lam)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - start)
        result[f"level{level}_s"] = statistics.median(times)
        print(f"  {shape} level {level}: {result[f'level{level}_s']:.3f} s/it", file=sys.stderr, flush=True)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(tuple(int(v) for v in args.child.split(",")), args.repeats, args.threads)))
        return 0
    rows = []
    for name, shape in CONFIGS.items():
        cmd = [sys.executable, __file__, "--child", ",".join(map(str, shape)), "--repeats", str(args.repeats), "--threads", str(args.threads)]
        r = json.loads(subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True, cwd=ROOT).stdout.strip().splitlines()[-1])
        rows.append(f"| {name} | 7 | {r['level1_s']:.3f} | {r['level2_s']:.3f} | {r['level3_s']:.3f} | {r['peak_mb']:,.0f} |")
    table = "| configuration | start_channels | s/it level 1 | s/it level 2 | s/it level 3 | peak RSS MB |\n|---|---|---|---|---|---|\n" + "\n".join(rows)
    print(table)
    if not args.no_append:
        append_table("Training", "bench/bench_training.py", f"{args.threads} threads; batch 1, median of {args.repeats} iterations after one warm-up", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
