#!/usr/bin/env python
"""The paper's Table 1 and Fig. 3 at CPU scale: one conditional model against seven fixed-λ LapIRNs.

    python bench/paper_table1.py [--scale configs/scale/cpu_4mm.yaml] [--out runs/paper_table1]
        [--threads 1] [--pairs 4] [--evaluate-only] [--no-append]

Trains, with the same schedule and budget and from scratch, every method of Mok & Chung (MICCAI
2021) Table 1 through the bundle's training workflow (``bundle/configs/train.yaml`` + a variant
from ``configs/variants/`` + the ``--scale`` overlay):

* Baseline: seven LapIRNs (``baseline.yaml``), one per λ ∈ {0.1, 0.5, 1, 2, 4, 8, 10};
* Traditional: λ concatenated to the input (``concat.yaml``);
* CIR-CM: one centralized mapping network (``cir_cm.yaml``);
* CIR-DM: one mapping network per block (``cir_dm.yaml``), the paper's method, twice (seeds 0 and 1):
  the two seeds' spread is the noise floor of every comparison.

Each model trains in its own process under ``OUT/models/<name>/`` and resumes from its checkpoint
when the command is run again; a finished model is skipped. Then every model is evaluated on the
held-out set (:mod:`cir_monai.data.heldout`, the MNI 2009c + CerebrA pairs that no training sees,
scored on their 1 mm grid) at the seven λ (a baseline at its own λ), without refinement, cached
per model under ``OUT/eval/``. %DSC and %std|J| are the paper's
(:mod:`cir_monai.comparison`: per test case and λ, against the baseline trained at that λ).

Writes ``OUT/rows.csv``, ``OUT/table1.json``, ``OUT/results.md``
and the Fig. 3-style picture ``OUT/paper_fig3.png``, prints Table 1 beside the paper's and appends it to
docs/benchmarks.md; ``docs/paper_reproduction.md`` is written by hand from them. This 1,200-iteration run cannot
judge the paper's claims (``docs/paper_reproduction.md``); the claims are judged, with intervals, by the 2D run
(``bench/paper_2d.py analyse``). The maths is
:mod:`cir_monai.comparison`'s, the picture :func:`cir_monai.visualize.plot_paper_fig3`. The same command with
``--scale configs/scale/paper_1mm.yaml``
runs the paper's schedule (a GPU job).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from cir_monai.benchmarking import add_heldout_options, append_table, evaluator_rows, heldout_pairs
from cir_monai.comparison import markdown_per_lambda, markdown_table1, per_lambda, table1
from cir_monai.experiments import train_in_process
from cir_monai.visualize import plot_paper_fig3

ROOT = Path(__file__).resolve().parents[1]
LAMS = (0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0)
#: Mok & Chung (MICCAI 2021) Table 1, OASIS: DSC, %DSC, std|J|, %std|J|, training hours (all λ), test seconds
PAPER = {
    "Initial": (0.552, None, None, None, None, None),
    "Baseline": (0.770, None, 1.157, None, 200.3, 0.204),
    "concat": (0.780, 1.41, 0.970, 4.62, 28.4, 0.212),
    "CIR-CM": (0.767, -0.57, 0.900, -5.23, 28.8, 0.227),
    "CIR-DM": (0.770, -0.19, 0.963, -3.78, 28.5, 0.216),
}
CONDITIONAL = ("concat", "CIR-CM", "CIR-DM", "CIR-DM seed 1")
COLOURS = {"Baseline": "tab:blue", "concat": "tab:orange", "CIR-CM": "tab:green", "CIR-DM": "tab:red",
           "CIR-DM seed 1": "tab:pink"}


def baseline_name(lam: float) -> str:
    return f"baseline λ={lam:g}"


def models() -> list[dict]:
    """Every model of the experiment: its name, Table 1 method, variant overlay, overrides and seed."""
    out = [
        {
            "name": baseline_name(lam),
            "method": "Baseline",
            "variant": "baseline.yaml",
            "overrides": {"train#trainer#lam_fixed": lam},
            "seed": 0,
            "lams": [lam],
        }
        for lam in LAMS
    ]
    for name, method, variant, seed in (
        ("concat", "Traditional (concat)", "concat.yaml", 0),
        ("CIR-CM", "CIR-CM", "cir_cm.yaml", 0),
        ("CIR-DM", "CIR-DM", "cir_dm.yaml", 0),
        ("CIR-DM seed 1", "CIR-DM seed 1", "cir_dm.yaml", 1),
    ):
        out.append(
            {"name": name, "method": method, "variant": variant, "overrides": {}, "seed": seed, "lams": list(LAMS)}
        )
    return out


def folder(out: Path, name: str) -> Path:
    return out / "models" / name.replace(" ", "_").replace("λ=", "lam")


def evaluate(model: dict, out: Path, pairs: list[dict]) -> list[dict]:
    """The model's held-out rows at its λ values (cached in ``OUT/eval/<name>.json``)."""
    from cir_monai.io import load_network

    cache = out / "eval" / (folder(out, model["name"]).name + ".json")
    if cache.is_file():
        return json.loads(cache.read_text())
    net = load_network(folder(out, model["name"]) / "model.pt")
    rows = evaluator_rows(model["name"], net, pairs, model["lams"], out / "eval" / "work")
    rows = [{**r, "lam": float(r["lam"]) if r["method"] != "identity" else ""} for r in rows]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(rows))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale",
        default="configs/scale/cpu_4mm.yaml",
        help="the schedule/grid overlay (relative to the repository root); configs/scale/paper_1mm.yaml is the paper's",
    )
    parser.add_argument("--out", default=str(ROOT / "runs" / "paper_table1"))
    parser.add_argument("--evaluate-only", action="store_true", help="only evaluate the models already trained (the "
                        "table is written once every model is; can run beside the training run)")
    parser.add_argument("--no-append", action="store_true")
    add_heldout_options(parser)
    parser.set_defaults(threads=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    todo = models()
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    for k, model in enumerate(todo):
        if args.evaluate_only:
            done = folder(out, model["name"]) / "done.json"
            seconds[model["name"]] = json.loads(done.read_text())["seconds"] if done.is_file() else float("nan")
            continue
        t0 = time.perf_counter()
        seconds[model["name"]] = train_in_process([ROOT / "configs" / "variants" / model["variant"], ROOT / args.scale],
                                                  folder(out, model["name"]), model["seed"], model["overrides"],
                                                  args.threads)
        elapsed = time.perf_counter() - start
        fresh = time.perf_counter() - t0 > 5
        print(
            f"[{k + 1}/{len(todo)}] {model['name']}: trained in {seconds[model['name']] / 60:.1f} min"
            + (
                f"; elapsed {elapsed / 60:.1f} min, ETA {elapsed / (k + 1) * (len(todo) - k - 1) / 60:.0f} min"
                if fresh
                else " (done before)"
            ),
            flush=True,
        )
    pairs = heldout_pairs(ROOT / "data", args.group, args.pairs, args.data)
    rows: list[dict] = []
    missing = []
    for k, model in enumerate(todo):
        if not (folder(out, model["name"]) / "done.json").is_file():
            missing.append(model["name"])  # --evaluate-only beside a training run: evaluate what is trained
            continue
        model_rows = evaluate(model, out, pairs)
        rows += [r for r in model_rows if r["method"] != "identity" or k == 0]
        print(f"[{k + 1}/{len(todo)}] evaluated {model['name']}", flush=True)
    if missing:
        print(f"not trained yet: {', '.join(missing)}; run the command again when they are", flush=True)
        return 0
    with open(out / "rows.csv", "w", newline="") as f:
        keys = ["method", "pair", "lam", "dice_mean", "jac_std", "folding_pct", "sdlogj", "epe_mm", "seconds"]
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    table = table1(rows, CONDITIONAL, baseline_name, LAMS, seconds)
    lam_table = per_lambda(rows, CONDITIONAL, baseline_name, LAMS)
    (out / "table1.json").write_text(
        json.dumps(
            {
                "table1": table,
                "per_lambda": {m: {f"{k:g}": v for k, v in d.items()} for m, d in lam_table.items()},
            },
            indent=1,
        )
    )
    plot_paper_fig3(rows, table, out / "paper_fig3.png", COLOURS, LAMS, baseline_name,
                    title="Dice (held-out, 102 CerebrA regions)")
    md1, md2 = markdown_table1(table, PAPER), markdown_per_lambda(lam_table)
    total_h = sum(v for v in seconds.values() if np.isfinite(v)) / 3600
    results = "\n\n".join([f"Command: `python bench/paper_table1.py {' '.join(sys.argv[1:])}` (scale overlay "
                            f"`{args.scale}`, {len(pairs)} held-out pairs ({args.group}), training {total_h:.2f} h)",
                            md1, md2])
    (out / "results.md").write_text(results + "\n")
    print(results)
    if not args.no_append:
        append_table(
            ROOT, "Paper Table 1 at CPU scale",
            "bench/paper_table1.py",
            f"scale {args.scale}, {len(pairs)} held-out pairs ({args.group}), training {total_h:.2f} h",
            md1 + "\n\n" + md2,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
