#!/usr/bin/env python
"""`cir-monai register` and ANTs SyN on an idle machine and beside busy processes, in one run: the slowdowns.

    python bench/bench_busy.py [--busy 2] [--ants-python .integ/ants/bin/python] [--no-append]

The pair is the full-grid 1 mm held-out pair (:func:`cir_monai.data.heldout.write_full_grid_pair`, 193×229×193, what
``bench_register_1mm.py`` registers). Each job is its own process, timed from start to exit:

* ``register`` with the default threads (:func:`cir_monai.runtime.choose_threads`: the usable cores not busy with
  other work) and with ``--threads N`` (every usable core: what PyTorch takes by default);
* ANTs SyN (``ants.registration(type_of_transform="SyN")``, ITK threads = the usable cores) in ``--ants-python``,
  a Python with antspyx (``make integration`` builds one in ``.integ/ants``).

Then ``--busy`` processes spinning on the CPU are started and every job runs again. The table gives each job's idle
and busy seconds and their ratio (the slowdown); ratios, measured in one run, are what compare across machines.
Run it with nothing else on the machine (a training run paused: ``kill -STOP``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cir_monai.benchmarking import append_table
from cir_monai.data.heldout import write_full_grid_pair
from cir_monai.runtime import usable_cpus

ROOT = Path(__file__).resolve().parents[1]
SYN = """
import os, sys, ants
fixed, moving = ants.image_read(sys.argv[1]), ants.image_read(sys.argv[2])
ants.registration(fixed, moving, type_of_transform="SyN")
"""


def spin() -> None:
    while True:
        pass


def timed(command: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=2, help="busy processes beside the jobs")
    parser.add_argument("--ants-python", default=str(ROOT / ".integ" / "ants" / "bin" / "python"))
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    cores = usable_cpus()
    env = {**os.environ, "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(cores)}
    with tempfile.TemporaryDirectory(prefix="bench_busy_") as tmp:
        paths = write_full_grid_pair(Path(tmp))
        register = [sys.executable, "-m", "cir_monai", "register", paths["fixed"], paths["moving"], "--out",
                    f"{tmp}/out"]
        jobs = {"register (threads chosen)": register,
                f"register --threads {cores}": register + ["--threads", str(cores)]}
        if Path(args.ants_python).is_file():
            jobs["ANTs SyN"] = [args.ants_python, "-c", SYN, paths["fixed"], paths["moving"]]
        else:
            print(f"no {args.ants_python}: SyN skipped (make integration builds it)", file=sys.stderr)
        idle = {name: timed(cmd, env) for name, cmd in jobs.items()}
        spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
        for process in spinners:
            process.start()
        try:
            time.sleep(65)  # the load average catches up with the busy processes (1-minute average)
            busy = {name: timed(cmd, env) for name, cmd in jobs.items()}
        finally:
            for process in spinners:
                process.terminate()
    lines = ["| job | idle s | beside busy s | slowdown |", "|---|---|---|---|"]
    lines += [f"| {name} | {idle[name]:.1f} | {busy[name]:.1f} | {busy[name] / idle[name]:.2f}× |" for name in jobs]
    table = "\n".join(lines)
    print(table)
    if not args.no_append:
        details = (f"{platform.machine()}, {cores} usable cores, {args.busy} busy processes; the 1 mm held-out pair "
                   "(193×229×193), each job a process timed start to exit")
        append_table(ROOT, "A busy machine: register and SyN beside busy processes", "bench/bench_busy.py", details,
                     table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
