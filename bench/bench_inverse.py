#!/usr/bin/env python
"""The inverse field of ``cir-monai register --inverse`` on held-out brains: its composition residual, before/after.

    python bench/bench_inverse.py [--model bundle/models/model.pt] [--lams 0.1,1,4] [--refine 50] [--pairs 4]
        [--group standard] [--threads 1] [--device cpu] [--out runs/inverse] [--no-append]

For each held-out pair (:mod:`cir_monai.data.heldout`: MNI 2009c + CerebrA, 1 mm, see bench_heldout.py), each λ and
refinement 0 and ``--refine`` steps, the field ``u`` is the one :class:`cir_monai.engines.RegistrationRunner`
computes (:func:`~cir_monai.engines.prediction.predict_in_frame` in the model's 2 mm frame, brought to the fixed
1 mm grid, in its voxels), and it is inverted three ways (:func:`cir_monai.networks.warp.invert_ddf`):

* ``fixed point``: 30 steps of ``v ← −u(x + v(x))`` on the 1 mm grid (``method="fixed_point"``, before);
* ``Newton``: the default (``method="newton"``, after);
* ``2 mm``: the fixed point on the field in the 2 mm frame, the inverse then brought to the 1 mm grid as the field
  is (:meth:`~cir_monai.frame.FrameResampler.field_to_grid`): the cheap alternative.

Scored over the fixed image's foreground, in voxels of the fixed grid (1 mm), all pairs' voxels pooled:
``φ⁻¹∘φ`` = ``|u(x) + v(x + u(x))|`` (:func:`~cir_monai.networks.warp.composition_residual` ``(u, v)``, what
``register`` prints) as median, 99th percentile and maximum, its maximum away from folds (outside
:func:`~cir_monai.networks.warp.fold_mask`, margin 1 voxel), ``φ∘φ⁻¹`` = ``|v(y) + u(y + v(y))|`` (the equation the
inversion solves) as 99th percentile and maximum, the % of foreground voxels where ``det J ≤ 0`` (forward
differences: ``φ`` folds, no inverse exists) and the seconds of each inverse per pair. A second table says where
the voxels with ``φ⁻¹∘φ > 1`` voxel (fixed point) lie: near a fold, where ``φ`` compresses strongly (``det J ≤ 0.2``
within a voxel), where ``x + u(x)`` leaves the grid.

Writes ``per_pair.csv`` and ``summary.json`` to ``--out``, prints the markdown tables and, unless ``--no-append``,
appends them with the command to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from cir_monai.benchmarking import add_heldout_options, append_table, heldout_pairs

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("fixed point", "Newton", "2 mm")
#: det J at or below this (within a voxel) counts as "strongly compressed" in the table of where residuals are
COMPRESSED = 0.2


def inverses(ddf: torch.Tensor, frame_ddf: torch.Tensor, resampler, work, fixed) -> dict[str, tuple]:
    """``{method: (inverse (1, 3, *S), seconds)}`` for :data:`METHODS`."""
    from cir_monai.networks.warp import invert_ddf

    out = {}
    for method in METHODS:
        start = time.perf_counter()
        if method == "2 mm":
            inverse = resampler.field_to_grid(invert_ddf(frame_ddf, method="fixed_point"), work, fixed)
        else:
            inverse = invert_ddf(ddf, method="fixed_point" if method == "fixed point" else "newton")
        if inverse.is_cuda:
            torch.cuda.synchronize()
        out[method] = (inverse, time.perf_counter() - start)
    return out


def where_large(ddf: torch.Tensor, residual: torch.Tensor, brain: torch.Tensor) -> dict[str, int]:
    """Counts of the foreground voxels with ``residual > 1`` voxel: all, near a fold, strongly compressed (not near a
    fold), where ``x + u(x)`` leaves the grid."""
    from cir_monai.metrics import jacobian_determinant
    from cir_monai.networks.warp import fold_mask

    large = brain & (residual > 1.0)
    near_fold = fold_mask(ddf, margin=1)[0]
    det = F.pad(jacobian_determinant(ddf)[:, None], (0, 1, 0, 1, 0, 1), mode="replicate")  # (1, 1, *S) per cell
    compressed = (-F.max_pool3d(-det, 3, 1, 1))[0, 0] <= COMPRESSED  # some cell within a voxel at det J <= 0.2
    shape = torch.tensor(ddf.shape[2:], dtype=ddf.dtype, device=ddf.device).view(3, 1, 1, 1)
    index = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=ddf.dtype, device=ddf.device) for s in ddf.shape[2:]],
                                       indexing="ij"))
    target = index + ddf[0]
    outside = ((target < 0) | (target > shape - 1)).any(0)
    return {"large": int(large.sum()), "near_fold": int((large & near_fold).sum()),
            "compressed": int((large & compressed & ~near_fold).sum()), "outside_grid": int((large & outside).sum())}


def pair_results(net, runner, pair: dict, lams: list[float], refines: list[int], bar) -> tuple[list[dict], dict]:
    """Per (refine, λ): a row of per-pair statistics, and the pooled foreground values ``{key: {name: array}}``."""
    from cir_monai.engines.prediction import predict_in_frame
    from cir_monai.metrics import jacobian_determinant
    from cir_monai.networks.warp import composition_residual, fold_mask

    data = runner.preprocessing(dict(pair, moving_world=None))  # as RegistrationRunner.register (no affine step)
    fixed, moving = data["fixed"], data["moving"]
    work, moving_w = runner.resampler.to_frame(fixed), runner.resampler.to_frame(moving)
    brain = fixed.as_tensor()[0].to(runner.device) > 0
    rows, values = [], {}
    for refine in refines:
        for lam in lams:
            frame_ddf = predict_in_frame(net, runner.resampler, moving_w, work, lam, device=runner.device,
                                         refine=refine)
            ddf = runner.resampler.field_to_grid(frame_ddf, work, fixed).float()  # = predict_in_frame(grid=fixed)
            cells = jacobian_determinant(ddf)[0] <= 0  # (*(S − 1)): φ folds in the cell
            folded = float(cells[brain[:-1, :-1, :-1]].float().mean()) * 100.0
            away = brain & ~fold_mask(ddf, margin=1)[0]
            key = (refine, lam)
            row = {"pair": pair["id"], "refine": refine, "lam": lam, "folding_pct": folded}
            pooled = values.setdefault(key, {"folding": [folded]})
            for method, (inverse, seconds) in inverses(ddf, frame_ddf, runner.resampler, work, fixed).items():
                forward = composition_residual(ddf, inverse)[0]
                backward = composition_residual(inverse, ddf)[0]
                if method == "fixed point":
                    row.update({f"large_{k}": v for k, v in where_large(ddf, forward, brain).items()})
                for name, sample in (("fwd", forward[brain]), ("fwd_away", forward[away]), ("bwd", backward[brain])):
                    pooled.setdefault(f"{method}|{name}", []).append(sample.cpu().numpy())
                    row[f"{method}|{name}_max"] = float(sample.max())
                row[f"{method}|seconds"] = seconds
                pooled.setdefault(f"{method}|seconds", []).append(seconds)
            rows.append(row)
            bar.update(1)
    return rows, values


def summarise(values: dict, voxels: dict) -> list[dict]:
    """Pooled statistics per (refine, λ): quantiles over every pair's foreground voxels, mean seconds per pair."""
    out = []
    for (refine, lam), pooled in values.items():
        entry = {"refine": refine, "lam": lam, "folding_pct": float(np.mean(pooled["folding"])),
                 **voxels[(refine, lam)]}
        for method in METHODS:
            fwd = np.concatenate(pooled[f"{method}|fwd"])
            bwd = np.concatenate(pooled[f"{method}|bwd"])
            away = np.concatenate(pooled[f"{method}|fwd_away"])
            median, p99 = np.quantile(fwd, [0.5, 0.99])
            entry[method] = {"fwd_median": float(median), "fwd_p99": float(p99), "fwd_max": float(fwd.max()),
                             "fwd_away_max": float(away.max()), "bwd_p99": float(np.quantile(bwd, 0.99)),
                             "bwd_max": float(bwd.max()), "seconds": float(np.mean(pooled[f"{method}|seconds"]))}
        out.append(entry)
    return sorted(out, key=lambda e: (e["lam"], e["refine"]))


def markdown(summary: list[dict]) -> str:
    def cell(entry: dict, method: str) -> str:
        s = entry[method]
        return f"{s['fwd_median']:.3f}, {s['fwd_p99']:.2f}, {s['fwd_max']:.2f}"

    lines = ["| λ | refine | % det J ≤ 0 | φ⁻¹∘φ median, p99, max: fixed point (before) | Newton (after) | 2 mm | "
             "φ⁻¹∘φ max off folds: fixed point, Newton | φ∘φ⁻¹ p99, max: fixed point | Newton | "
             "s / inverse: fixed point, Newton, 2 mm |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for e in summary:
        fp, nw, mm = (e[m] for m in METHODS)
        lines.append(f"| {e['lam']:g} | {e['refine']} | {e['folding_pct']:.3f} | {cell(e, 'fixed point')} | "
                     f"{cell(e, 'Newton')} | {cell(e, '2 mm')} | {fp['fwd_away_max']:.2f}, {nw['fwd_away_max']:.2f} | "
                     f"{fp['bwd_p99']:.4f}, {fp['bwd_max']:.2f} | {nw['bwd_p99']:.4f}, {nw['bwd_max']:.2f} | "
                     f"{fp['seconds']:.1f}, {nw['seconds']:.1f}, {mm['seconds']:.1f} |")
    return "\n".join(lines)


def markdown_where(summary: list[dict]) -> str:
    lines = ["| λ | refine | voxels with φ⁻¹∘φ > 1 (fixed point) | % of them near a fold | "
             f"% strongly compressed (det J ≤ {COMPRESSED}), not near a fold | % where x + u(x) leaves the grid |",
             "|---|---|---|---|---|---|"]
    for e in summary:
        share = (lambda k: f"{100.0 * e[k] / e['large']:.0f}") if e["large"] else (lambda k: "–")
        lines.append(f"| {e['lam']:g} | {e['refine']} | {e['large']} | {share('near_fold')} | {share('compressed')} | "
                     f"{share('outside_grid')} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "bundle" / "models" / "model.pt"))
    parser.add_argument("--lams", default="0.1,1,4")
    parser.add_argument("--refine", type=int, default=None, help="refinement steps of the refined rows (default: "
                        "register's, cir_monai.defaults.DEFAULT_REFINE; 0: no refined rows)")
    add_heldout_options(parser)
    parser.set_defaults(threads=1)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "inverse"))
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from cir_monai.defaults import DEFAULT_REFINE, default_device
    from cir_monai.engines import RegistrationRunner
    from cir_monai.io import load_network
    from cir_monai.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = heldout_pairs(ROOT / "data", args.group, args.pairs, args.data)
    lams = [float(v) for v in args.lams.split(",")]
    refine = DEFAULT_REFINE if args.refine is None else args.refine
    refines = sorted({0, refine})
    net = load_network(args.model, default_device(args.device))
    rows, values = [], {}
    with tempfile.TemporaryDirectory() as scratch, tqdm(total=len(pairs) * len(lams) * len(refines),
                                                        desc="fields inverted", unit="field") as bar:
        runner = RegistrationRunner(net, pairs, lams=lams, output_dir=scratch, device=args.device,
                                    progress=False)  # for its preprocessing, frame resampler and device
        for index, pair in enumerate(pairs):
            pair = dict(pair, id=runner.pair_id(index, pair))
            pair_rows, pair_values = pair_results(net, runner, pair, lams, refines, bar)
            rows += pair_rows
            for key, pooled in pair_values.items():
                for name, items in pooled.items():
                    values.setdefault(key, {}).setdefault(name, []).extend(items)
    voxels = {}
    for row in rows:
        counts = voxels.setdefault((row["refine"], row["lam"]), dict.fromkeys(
            ("large", "near_fold", "compressed", "outside_grid"), 0))
        for k in counts:
            counts[k] += row[f"large_{k}"]
    summary = summarise(values, voxels)
    with open(out / "per_pair.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    table = markdown(summary) + "\n\nWhere the large residuals are:\n\n" + markdown_where(summary)
    print(table)
    if not args.no_append:
        details = (f"{platform.machine()}, {args.threads} thread(s), shared machine: seconds are ratios only; "
                   f"{len(pairs)} held-out pairs ({args.group}), 1 mm; voxels of the fixed grid over the fixed "
                   "foreground, all pairs pooled; φ⁻¹∘φ = |u(x) + v(x + u(x))| (what register prints), φ∘φ⁻¹ = "
                   "|v(y) + u(y + v(y))| (what the inversion solves); before: 30 fixed-point steps, after: Newton "
                   "(invert_ddf's default), 2 mm: fixed point in the model's frame, then resampled; model "
                   + str(Path(args.model).relative_to(ROOT) if Path(args.model).is_relative_to(ROOT) else args.model))
        append_table(ROOT, "Inverse field: composition residual on held-out brains", "bench/bench_inverse.py", details,
                     table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
