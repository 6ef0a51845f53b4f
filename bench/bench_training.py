#!/usr/bin/env python
"""Training benchmark: seconds per iteration at each pyramid level, ours and the authors' way, and peak memory.

    python bench/bench_training.py [--repeats 3] [--threads 2] [--no-append]

Configurations: the default CPU scale (80×96×80, start_channels 7) and 64×80×64 with
start_channels 7 (the size at which the authors' code is quoted at ~2.0 s per level-3
iteration on a 2-core machine). One iteration = forward in training mode, the loss of the
active level, backward, Adam step, batch size 1, as in :class:`cir_monai.engines.CLapIRNTrainer`.
Levels 2 and 3 are timed twice: with the lower levels frozen (the first ``freeze_steps``
iterations of a level, the authors' schedule too) and with every level trained.

Implementations, each configuration and implementation in its own process (peak RSS is per
process): ``ours`` (channels-last, fused instance norm and Adam, the head's transposed convolution
composed, oneDNN for every 3D convolution, the entry points' allocator setting) and
``reference-style`` (the same weights and loss run the authors' way: the package's plain path,
``cir_monai.networks.fast`` off, contiguous layout,
default allocator). The ratio column compares the two within one run. Appends the table to
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

from cir_monai.benchmarking import append_table

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"default 80×96×80": (80, 96, 80), "64×80×64": (64, 80, 64)}
IMPLS = ("ours", "reference-style")
#: (active levels, lower levels frozen)
STEPS = ((1, False), (2, True), (2, False), (3, True), (3, False))


def step_key(level: int, frozen: bool) -> str:
    return f"level{level}{'_frozen' if frozen else ''}"


def child(shape: tuple[int, ...], impl: str, repeats: int, threads: int) -> dict:
    import torch

    from cir_monai.losses import CLapIRNLoss
    from cir_monai.networks import CLapIRN

    if impl == "ours":
        from cir_monai.runtime import tune_cpu_allocator

        tune_cpu_allocator()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = CLapIRN(3, start_channels=7).train()
    if impl == "reference-style":  # the plain path, contiguous layout (this process only)
        from cir_monai.networks.fast import set_fast_paths

        set_fast_paths(False)
        net = net.set_channels_last(False)
    loss_fn = CLapIRNLoss(3)
    moving, fixed = torch.rand(1, 1, *shape), torch.rand(1, 1, *shape)
    result = {}
    for level, frozen in STEPS:
        for k, module in enumerate(net.levels):
            module.requires_grad_(not (frozen and k < level - 1))
        opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-4, fused=impl == "ours")
        times = []
        for i in range(repeats + 1):  # the first iteration warms up oneDNN and the allocator
            start = time.perf_counter()
            lam = torch.rand(1) * 10
            out = net(moving, fixed, lam, active_levels=level)
            loss = loss_fn(out, lam)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if i:
                times.append(time.perf_counter() - start)
        key = step_key(level, frozen)
        result[key] = statistics.median(times)
        print(f"  {shape} {impl:15s} {key:14s}: {result[key]:.3f} s/it", file=sys.stderr, flush=True)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-append", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("SHAPE", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        shape = tuple(int(v) for v in args.child[0].split(","))
        print(json.dumps(child(shape, args.child[1], args.repeats, args.threads)))
        return 0
    keys = [step_key(level, frozen) for level, frozen in STEPS]
    rows = []
    for name, shape in CONFIGS.items():
        results = {}
        for impl in IMPLS:
            cmd = [sys.executable, __file__, "--child", ",".join(map(str, shape)), impl, "--repeats", str(args.repeats),
                   "--threads", str(args.threads)]
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True, cwd=ROOT)
            results[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
        for impl, r in results.items():
            rows.append(f"| {name} | {impl} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + f" | {r['peak_mb']:,.0f} |")
        ours, ref = results["ours"], results["reference-style"]
        rows.append(f"| {name} | speed-up | " + " | ".join(f"{ref[k] / ours[k]:.2f}×" for k in keys) + " | |")
    table = (
        "| configuration | implementation | level 1 | level 2, level 1 frozen | level 2 | level 3, levels 1–2 frozen "
        "| level 3 | peak RSS MB |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    print(table)
    if not args.no_append:
        append_table(
            ROOT, "Training",
            "bench/bench_training.py",
            f"{args.threads} threads; s/it, batch 1, start_channels 7, median of {args.repeats} iterations "
            "after one warm-up",
            table,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
