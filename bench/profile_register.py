"""Where the time of one `cir-monai register` on a 1 mm brain pair goes, in one process.

    python bench/profile_register.py [--refine 0] [--fine-steps 0] [--threads 2] [--no-append]

(``--refine 20 --fine-steps 5``: the default pipeline.)

The pair is bench_register_1mm.py's (held-out pair seed 31000, 193×229×193 at 1 mm). The process times its own
imports (torch, then cir_monai with MONAI), then runs :func:`cir_monai.engines.inference.register_files` (what
`cir-monai register` calls) under cProfile and splits its time into the stages named below by the cumulative
time of their functions (the rest is reading, preprocessing and bookkeeping). Prints a table and appends it to
docs/benchmarks.md. It explains bench_register_1mm.py's `--refine 0` row: what a one-pair process pays besides
the network.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()
import torch  # noqa: E402  (timed: the import is what is measured)

T_TORCH = time.perf_counter()
from cir_monai.engines.inference import register_files  # noqa: E402

T_CIR = time.perf_counter()

import argparse  # noqa: E402
import cProfile  # noqa: E402
import pstats  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from cir_monai.benchmarking import append_table  # noqa: E402
from cir_monai.data.heldout import write_full_grid_pair  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: disjoint stages of RegistrationRunner.register: name -> (file suffix, function name) whose cumulative time it is
STAGES = {
    "network in the model's frame, field back to the fixed grid (+ refinement)": (
        "cir_monai/engines/prediction.py", "predict_in_frame"),
    "moving image and labels through the field": ("cir_monai/warping.py", "sample_moving"),
    "write the outputs (gzipped NIfTI, in threads)": ("cir_monai/io/results.py", "write_outputs"),
}
#: parts of the first stage, shown beneath it
PARTS = {
    "  of which the forward pass": ("cir_monai/networks/clapirn.py", "forward"),
    "  of which refinement": ("cir_monai/refine.py", "refine_ddf"),
    "    of which the steps at the fixed grid": ("cir_monai/refine.py", "refine_on_grid"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refine", type=int, default=0)
    parser.add_argument("--fine-steps", type=int, default=0, help="steps at the fixed grid (register's default: "
                                                                  "cir_monai.defaults.DEFAULT_FINE_STEPS)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="profile_register_"))
    paths = write_full_grid_pair(folder)
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    register_files(paths["fixed"], paths["moving"], lams=(1.0,), out=str(folder / "out"),
                   moving_label=paths["moving_label"], refine=args.refine, fine_steps=args.fine_steps)
    profile.disable()
    total = time.perf_counter() - start
    stats = pstats.Stats(profile).stats  # {(file, line, name): (calls, primitive, tottime, cumtime, callers)}
    def cumulative(suffix: str, name: str) -> float:
        return max((v[3] for (file, _, func), v in stats.items() if file.endswith(suffix) and func == name),
                   default=0.0)

    rows = [("import torch", T_TORCH - T0), ("import cir_monai and MONAI", T_CIR - T_TORCH)]
    named = 0.0
    for stage, where in STAGES.items():
        seconds = cumulative(*where)
        named += seconds
        rows.append((stage, seconds))
        if stage.startswith("network"):
            rows += [(part, cumulative(*inside)) for part, inside in PARTS.items() if cumulative(*inside) > 0]
    rows += [("reading, preprocessing, checks, model loading, staging", total - named),
             ("**total** (imports + register_files)", T_CIR - T0 + total)]
    lines = [f"| {stage} | {seconds:.2f} |" for stage, seconds in rows]
    table = "\n".join(["| stage | seconds |", "|---|---|", *lines])
    print(table)
    if not args.no_append:
        append_table(ROOT, "Where one register run's time goes", "bench/profile_register.py",
                     f"{args.threads} threads; one process; fixed 193×229×193 at 1 mm, λ = 1, refine {args.refine}, "
                     f"fine steps {args.fine_steps}; "
                     "stages by cProfile's cumulative time", table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
