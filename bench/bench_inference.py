#!/usr/bin/env python
"""Inference benchmark: parameters, multiply-adds and median CPU time per pair.

    python bench/bench_inference.py [--repeats 3] [--threads 2] [--no-append]

Models (method.md §2): the full cLapIRN (start_channels 7) at 144×192×160 and
the authors' lite layout (start_channels 4) at 160×192×224, random weights
(time does not depend on them). Implementations, each in its own process so
that memory and allocator settings do not leak between them:

* ``ours``: ``CLapIRN`` in evaluation mode (channels-last 3D convolutions, fused
  conditional instance norm, no training-only outputs), with the entry points'
  allocator setting (:func:`cir_monai.runtime.tune_cpu_allocator`);
* ``ours, default malloc``: the same without the allocator setting;
* ``reference-style``: the same weights on the package's plain path, the way the authors' code
  runs them (``cir_monai.networks.fast`` off: ``instance_norm`` then the affine style, ``up``
  features built and concatenated at every level, PyTorch's own convolution choice; contiguous
  layout; training mode, which computes the warped image at every level), default allocator.

Prints a markdown table and appends it, with the command, to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cir_monai.benchmarking import append_table
from cir_monai.networks.fast import set_fast_paths

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "full": dict(kwargs=dict(spatial_dims=3, start_channels=7), shape=(144, 192, 160), target_s=9.5),
    "lite": dict(kwargs=dict(spatial_dims=3, start_channels=4, lite=True), shape=(160, 192, 224), target_s=4.4),
}
IMPLS = ("ours", "ours, default malloc", "reference-style")


def child(model: str, impl: str, repeats: int, threads: int) -> dict:
    import torch

    if impl == "ours":
        from cir_monai.runtime import tune_cpu_allocator

        tune_cpu_allocator()
    from cir_monai.networks import CLapIRN
    from cir_monai.networks.profiling import count_macs, count_parameters

    torch.set_num_threads(threads)
    spec = MODELS[model]
    torch.manual_seed(0)
    net = CLapIRN(**spec["kwargs"]).eval()
    moving, fixed = torch.rand(1, 1, *spec["shape"]), torch.rand(1, 1, *spec["shape"])
    params = count_parameters(net)
    macs = count_macs(net, moving, fixed, 1.0)
    if impl == "reference-style":  # the plain path, contiguous, every level's warp (this process only)
        set_fast_paths(False)
        net = net.set_channels_last(False).train()
    times = []
    with torch.no_grad():
        for i in range(repeats + 1):  # the first call warms up oneDNN and the allocator
            start = time.perf_counter()
            net(moving, fixed, 1.0)
            if i:
                times.append(time.perf_counter() - start)
            print(f"  {model:5s} {impl:22s} run {i}/{repeats}: {time.perf_counter() - start:6.2f} s",
                  file=sys.stderr, flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(params=params, macs=macs, median_s=statistics.median(times), times=times, peak_mb=peak_mb)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="full,lite")
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to docs/benchmarks.md")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "IMPL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.repeats, args.threads)))
        return 0

    rows = []
    for model in args.models.split(","):
        results = {}
        for impl in IMPLS:
            cmd = [sys.executable, __file__, "--child", model, impl, "--repeats", str(args.repeats),
                   "--threads", str(args.threads)]
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, check=True)
            results[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
        ref = results["reference-style"]["median_s"]
        for impl, r in results.items():
            rows.append(
                f"| {model} | {'×'.join(map(str, MODELS[model]['shape']))} | {impl} | {r['params']:,} | "
                f"{r['macs'] / 1e9:.1f} | {r['median_s']:.2f} | {ref / r['median_s']:.2f}× | {r['peak_mb']:,.0f} |"
            )
    header = (
        "| model | size | implementation | parameters | GMACs | median s / pair | speed-up vs reference-style "
        "| peak RSS MB |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    table = header + "\n" + "\n".join(rows)
    print(table)
    if not args.no_append:
        machine = f"{platform.processor() or platform.machine()}, {args.threads} threads"
        path = append_table(ROOT, "Inference", "bench/bench_inference.py",
                            f"{machine}; {args.repeats} timed runs after one warm-up", table)
        print(f"appended to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
