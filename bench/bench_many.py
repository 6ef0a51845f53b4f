#!/usr/bin/env python
"""Pairs per hour: `cir-monai batch` (one process, and two under torchrun) against one `register` per pair and
ANTs SyN on the same held-out pairs, in one run.

    python bench/bench_many.py [--pairs 4] [--group standard] [--ants-python .integ/ants/bin/python] [--no-append]

Every job is timed from its start to its exit (imports, the model's loading and the writing included), on the
1 mm held-out pairs (:func:`cir_monai.benchmarking.heldout_pairs`):

* ``register × N``: one ``cir-monai register`` process per pair, as a shell loop over a study would run it;
* ``batch``: ``cir-monai batch DATALIST`` (:mod:`cir_monai.engines.batch`: one start-up, reading ahead, writing
  behind);
* ``batch, torchrun × 2``: the same datalist split between two processes (one thread each);
* ``ANTs SyN``: ``ants.registration(type_of_transform="SyN")`` of every pair in one Python process (antspyx in
  ``--ants-python``; ``make integration`` builds one), the warped image written like ours.

All use the default pipeline (refinement in the frame, then steps at the fixed grid) at λ = 1 and every
usable core. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cir_monai.benchmarking import add_heldout_options, append_table, heldout_pairs
from cir_monai.runtime import usable_cpus

ROOT = Path(__file__).resolve().parents[1]
SYN = """
import json, sys, ants
for pair in json.load(open(sys.argv[1])):
    fixed, moving = ants.image_read(pair["fixed"]), ants.image_read(pair["moving"])
    reg = ants.registration(fixed, moving, type_of_transform="SyN")
    ants.image_write(reg["warpedmovout"], sys.argv[2] + "/" + pair["id"] + "_warped.nii.gz")
"""


def timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_heldout_options(parser)
    parser.add_argument("--ants-python", default=str(ROOT / ".integ" / "ants" / "bin" / "python"))
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    cores = usable_cpus()
    env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(cores)}
    found = heldout_pairs(ROOT / "data", args.group, args.pairs, args.data)
    pairs = [dict(pair, id=f"pair{k}") for k, pair in enumerate(found)]
    cli = [sys.executable, "-m", "cir_monai"]
    with tempfile.TemporaryDirectory(prefix="bench_many_") as tmp:
        datalist = Path(tmp) / "datalist.json"
        datalist.write_text(json.dumps(pairs))
        threads = ["--threads", str(cores)]  # not chosen from the load average, which the previous job still raises
        loop = [[*cli, "register", p["fixed"], p["moving"], "--moving-label", p["moving_label"], "--out",
                 f"{tmp}/loop/{p['id']}", *threads] for p in pairs]
        seconds = {f"register × {len(pairs)} (a process per pair)": sum(timed(cmd, env) for cmd in loop),
                   "batch (one process)": timed([*cli, "batch", str(datalist), "--out", f"{tmp}/batch", *threads],
                                                env)}
        torchrun = Path(sys.executable).with_name("torchrun")
        seconds["batch, torchrun × 2 (one thread each)"] = timed(
            [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "cir_monai", "batch", str(datalist), "--out",
             f"{tmp}/torchrun"], env)
        if Path(args.ants_python).is_file():
            os.makedirs(f"{tmp}/syn")
            seconds["ANTs SyN (one process)"] = timed([args.ants_python, "-c", SYN, str(datalist), f"{tmp}/syn"], env)
        else:
            print(f"no {args.ants_python}: SyN skipped (make integration builds it)", file=sys.stderr)
    syn = seconds.get("ANTs SyN (one process)")
    lines = ["| job | seconds | pairs per hour | against SyN |", "|---|---|---|---|"]
    for name, value in seconds.items():
        ratio = f"{syn / value:.2f}×" if syn else "n/a"
        lines.append(f"| {name} | {value:.1f} | {len(pairs) * 3600 / value:.0f} | {ratio} |")
    table = "\n".join(lines)
    print(table)
    if not args.no_append:
        details = (f"{platform.machine()}, {cores} usable cores; {len(pairs)} 1 mm held-out pairs "
                   f"({args.group} group), λ = 1, the default refinement; each job timed start to exit")
        append_table(ROOT, "Many pairs: pairs per hour", "bench/bench_many.py", details, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
