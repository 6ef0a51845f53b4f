#!/usr/bin/env python
"""Inference and training speed of two versions of the package, in one run: ``--before REV`` and this tree.

    python bench/bench_before_after.py --before dd5574a [--repeats 3] [--no-append]

Checks out ``REV`` into a temporary git worktree and runs each version's own ``bench_inference.py``
(full model, 144×192×160) and ``bench_training.py`` (one step per level, 64×80×64 and 80×96×80)
with that version's package first on ``PYTHONPATH``, alternating versions, so both see the same
machine state. Prints the two versions' tables side by side and appends them, with this command,
to docs/benchmarks.md. Use it when a change touches the network or the trainer.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from cir_monai.benchmarking import append_table

ROOT = Path(__file__).resolve().parents[1]


def run(tree: Path, script: str, args: list[str]) -> str:
    env = dict(os.environ, PYTHONPATH=str(tree))
    proc = subprocess.run([sys.executable, str(tree / "bench" / script), "--no-append", *args], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"{script} in {tree} failed:\n{proc.stderr[-3000:]}")
    return "\n".join(line for line in proc.stdout.splitlines() if line.startswith("|"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="git revision to compare against")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cir-before-") as tmp:
        before = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(before), args.before], cwd=ROOT, check=True)
        try:
            tables = {}
            for script, extra in (("bench_inference.py", ["--models", "full"]), ("bench_training.py", [])):
                for name, tree in (("before", before), ("after", ROOT)):
                    print(f"{script} ({name}) …", file=sys.stderr, flush=True)
                    tables[(script, name)] = run(tree, script, ["--repeats", str(args.repeats), *extra])
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False)
    text = []
    for script in ("bench_inference.py", "bench_training.py"):
        for name in ("before", "after"):
            label = f"{name} ({args.before})" if name == "before" else "after (this tree)"
            text += [f"**{script}, {label}**", "", tables[(script, name)], ""]
    table = "\n".join(text).strip()
    print(table)
    if not args.no_append:
        append_table(ROOT, "Speed before and after a change", "bench/bench_before_after.py",
                     f"each version's own bench scripts, alternating, {args.repeats} repeats", table)


if __name__ == "__main__":
    main()
