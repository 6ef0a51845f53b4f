"""Append a benchmark table to docs/benchmarks.md with the command, machine and commit that produced it."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def append_table(title: str, script: str, details: str, table: str) -> Path:
    """Write ``### <title>, <UTC time>``, the exact command, ``details`` and the commit, then the table."""
    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python", script, *sys.argv[1:]])
    path = ROOT / "docs" / "benchmarks.md"
    with open(path, "a") as f:
        f.write(f"\n### {title}, {stamp}\n\n`{command}` (torch {torch.__version__}, commit {commit or 'unknown'}; "
                f"{details})\n\n{table}\n")
    return path
