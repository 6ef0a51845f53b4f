# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""What the benchmark scripts share: rows of scores from the evaluator, their means, the held-out pairs by
group, and the log of every published table (``docs/benchmarks.md``).

A benchmark script (``bench/``) parses its arguments, calls these and the library, and prints a table; a row is one
method on one pair at one λ: ``{"method", "pair", "lam", "dice_mean", "hd95_mean", "epe_mm", "jac_std",
"folding_pct", "sdlogj", "seconds", "dice_<label>"...}``, scored by
:func:`cir_monai.engines.evaluation.score_field` for every method (the networks through
:class:`~cir_monai.engines.RegistrationEvaluator`, the classical baselines through :mod:`cir_monai.baselines`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

__all__ = ["SCORES", "evaluator_rows", "summarise", "add_heldout_options", "heldout_pairs", "append_table"]

#: the scores of a row, besides the Dice per label
SCORES = ("dice_mean", "hd95_mean", "epe_mm", "jac_std", "folding_pct", "sdlogj", "seconds")


def evaluator_rows(method: str, network, pairs: Sequence[dict], lams: Sequence[float],
                   output_dir: str | os.PathLike | None = None, refine: int = 0, hd95: bool = False,
                   **evaluator_args) -> list[dict]:
    """Rows of a network on file pairs at each λ, and the pairs unregistered (method ``"identity"``, λ ``""``),
    through :class:`~cir_monai.engines.RegistrationEvaluator` (``evaluator_args``: its other arguments, e.g.
    ``pixdim``, ``orientation``, ``device``); ``seconds`` is the prediction (and ``refine`` steps) per pair."""
    from cir_monai.engines import RegistrationEvaluator

    out = output_dir if output_dir is not None else tempfile.mkdtemp(prefix="cir_monai_bench_")
    evaluator = RegistrationEvaluator(network, pairs, lams=lams, output_dir=out, hd95=hd95, figures=False,
                                      progress=True, refine=refine, **evaluator_args)
    rows = []
    for pair in pairs:
        pair_rows, labels, per_label, _ = evaluator.evaluate_pair(pair)
        for row in pair_rows:
            name = "identity" if row["lam"] == "before" else method
            rows.append({"method": name, "pair": pair["id"], "lam": "" if name == "identity" else row["lam"],
                         **{k: row[k] for k in SCORES},
                         **{f"dice_{v}": d for v, d in zip(labels, per_label[row["lam"]])}})
        print(f"  {method} {pair['id']}: " + ", ".join(f"λ {r['lam']} Dice {r['dice_mean']:.3f}" for r in pair_rows),
              file=sys.stderr, flush=True)
    return rows


def summarise(rows: Sequence[dict], by: Sequence[str] = ("method", "lam")) -> list[dict]:
    """The mean of every score over the rows of each ``by`` group (first-seen order), NaN-free where any value is
    finite; ``pairs``, ``dice_sd`` (spread over pairs) and ``min_gain`` (the smallest Dice gain over the same
    pair's identity row, when the rows hold one)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in by), []).append(row)
    identity = {r["pair"]: r["dice_mean"] for r in rows if r["method"] == "identity"}
    out = []
    for key, group in groups.items():
        entry = {**dict(zip(by, key)), "pairs": len(group)}
        for name in dict.fromkeys(k for r in group for k in r if k in SCORES or k.startswith("dice_")):
            values = [r[name] for r in group if name in r and np.isfinite(r[name])]
            entry[name] = float(np.mean(values)) if values else float("nan")
        entry["dice_sd"] = float(np.std([r["dice_mean"] for r in group]))
        if all(r["pair"] in identity for r in group):
            entry["min_gain"] = float(min(r["dice_mean"] - identity[r["pair"]] for r in group))
        out.append(entry)
    return out


def add_heldout_options(parser: argparse.ArgumentParser) -> None:
    """The held-out pairs' options of a benchmark script: ``--pairs``, ``--threads``, ``--group``, ``--data``."""
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--group", default="standard", help="held-out group (cir_monai.data.evaluation_sets.GROUPS): "
                        "standard, hard (larger, finer deformations and stronger intensity changes) or cross "
                        "(6 pairs of 3 different average brains, tissue-class Dice, no true field)")
    parser.add_argument("--data", default=None, help="where the pairs are written (default data/heldout[_GROUP])")


def heldout_pairs(root: str | os.PathLike, group: str = "standard", num_pairs: int = 4,
                  data: str | os.PathLike | None = None) -> list[dict]:
    """The file pairs of held-out ``group`` (:func:`cir_monai.data.evaluation_sets.prepare_group`), written once
    under ``data`` (default ``root/heldout`` for the standard group, ``root/heldout_<group>`` otherwise)."""
    from cir_monai.data import load_pairs
    from cir_monai.data.evaluation_sets import prepare_group

    folder = data or Path(root) / ("heldout" if group == "standard" else f"heldout_{group}")
    return load_pairs(prepare_group(folder, group, num_pairs), split="test")


def append_table(root: str | os.PathLike, title: str, script: str, details: str, table: str) -> Path:
    """Append to ``root/docs/benchmarks.md``: ``### <title>, <UTC time>``, the exact command (``python <script>`` and
    this process's arguments), torch's version, the commit of ``root``, ``details``, then the table."""
    import torch

    root = Path(root)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                            text=True).stdout.strip()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python", script, *sys.argv[1:]])
    path = root / "docs" / "benchmarks.md"
    with open(path, "a") as f:
        f.write(f"\n### {title}, {stamp}\n\n`{command}` (torch {torch.__version__}, commit {commit or 'unknown'}; "
                f"{details})\n\n{table}\n")
    return path
