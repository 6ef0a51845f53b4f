#!/usr/bin/env python
"""The paper's Table 1 and Fig. 3 in 2D, every model trained to convergence on CPU (issue 31).

    python bench/paper_2d.py pilot   [--out runs/paper_2d] [--threads 1]
    python bench/paper_2d.py runs    [--out runs/paper_2d] [--threads 1] [--only NAME ...]
    python bench/paper_2d.py analyse [--out runs/paper_2d] [--pairs 10] [--per-pair 5] [--boot 2000]

Every model trains through the bundle's training workflow (``bundle/configs/train.yaml`` + a variant of
``configs/variants/`` + ``configs/scale/cpu_2d.yaml``: the paper's network on 80×96 axial slices of the embedded pairs,
a fresh Adam per level, CIR-CM's mapping network frozen with the lower levels), each in its own resumable process
(:mod:`cir_monai.experiments`); run a stage again to resume it. Models are kept under ``OUT/models/<name>/`` with
their ``metrics.jsonl`` (the learning curves).

* ``pilot``: CIR-DM and the λ = 0.1 baseline at lr 1e-4, and CIR-DM at 1e-3, for 4k / 4k / 20k iterations: where
  both level off, and at which learning rate (``OUT/pilot_curves.png``; the overlay's lr is now the pilot's choice,
  1e-3, so the 1e-4 models override it).
* ``runs``: the seven fixed-λ baselines × 2 seeds, CIR-DM × 3, CIR-CM × 2, concat × 2 (21 models), ordered by seed.
* ``analyse``: whatever has finished, scored on held-out test slices (:func:`cir_monai.workflows.heldout_slice_pairs`:
  ``--per-pair`` axial slices of each of ``--pairs`` MNI 2009c + CerebrA pairs, 2 mm) at the seven λ by
  :func:`cir_monai.engines.validation.score_pairs` (Dice over the CerebrA regions of the slice, std|J|, % folding,
  and the objective similarity + λ · smoothness); then Table 1 and Fig. 3 (:mod:`cir_monai.comparison`), with
  bootstrap intervals over test pairs and seeds, the baselines' seed-to-seed noise floor, the label-free objective
  check and the paper's claims judged (:func:`cir_monai.comparison.verdict`). Writes ``OUT/results.md``,
  ``OUT/analysis.json``, ``OUT/paper_2d_fig3.png`` and ``OUT/curves.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCALE = ROOT / "configs" / "scale" / "cpu_2d.yaml"
VARIANTS = ROOT / "configs" / "variants"
LAMS = (0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0)
CONDITIONAL = ("concat", "CIR-CM", "CIR-DM")
COLOURS = {"Baseline": "tab:blue", "concat": "tab:orange", "CIR-CM": "tab:green", "CIR-DM": "tab:red"}
#: name → (method, variant, overrides, seed)
PILOT = {
    "CIR-DM lr1e-4": ("CIR-DM", "cir_dm.yaml", {"optimizer#lr": 0.0001}, 0),
    "baseline lam0.1 lr1e-4": ("baseline λ=0.1", "baseline.yaml", {"train#trainer#lam_fixed": 0.1,
                                                                   "optimizer#lr": 0.0001}, 0),
    "CIR-DM lr1e-3": ("CIR-DM lr1e-3", "cir_dm.yaml", {"optimizer#lr": 0.001}, 0),
}
#: ordered by seed, so that a partial run already holds one model of every kind (the stage takes ~13 core-hours)
RUNS = {
    name: spec
    for s in (0, 1, 2)
    for name, spec in {
        **{f"baseline lam{lam:g} seed{s}": (f"baseline λ={lam:g}", "baseline.yaml", {"train#trainer#lam_fixed": lam}, s)
           for lam in LAMS if s < 2},
        f"CIR-DM seed{s}": ("CIR-DM", "cir_dm.yaml", {}, s),
        **({f"CIR-CM seed{s}": ("CIR-CM", "cir_cm.yaml", {}, s), f"concat seed{s}": ("concat", "concat.yaml", {}, s)}
           if s < 2 else {}),
    }.items()
}


def baseline_name(lam: float) -> str:
    return f"baseline λ={lam:g}"


def folder(out: Path, name: str) -> Path:
    return out / "models" / name.replace(" ", "_")


def train(models: dict, out: Path, threads: int) -> None:
    from cir_monai.defaults import embedded_dir
    from cir_monai.experiments import train_in_process

    for k, (name, (_, variant, overrides, seed)) in enumerate(models.items()):
        seconds = train_in_process([VARIANTS / variant, SCALE], folder(out, name), seed, overrides, threads,
                                   dataset_dir=embedded_dir())
        print(f"[{k + 1}/{len(models)}] {name}: trained in {seconds / 60:.1f} min", flush=True)


def curves(models: dict, out: Path, path: Path) -> Path:
    from cir_monai.experiments import read_metrics
    from cir_monai.visualize import plot_learning_curves

    runs = {name: read_metrics(folder(out, name)) for name in models if (folder(out, name) / "metrics.jsonl").is_file()}
    return plot_learning_curves(runs, path, lams=(0.1, 1.0, 4.0), styles={name: style(*models[name]) for name in runs})


def style(method: str, _variant: str, overrides: dict, seed: int) -> dict:
    """A model's line in the curves: the baselines shaded by λ (light: small λ), the conditional models in
    :data:`COLOURS`; seeds 0 / 1 / 2 solid / dashed / dotted."""
    from matplotlib import colormaps

    lam = overrides.get("train#trainer#lam_fixed")
    colour = (colormaps["Blues"](0.35 + 0.6 * LAMS.index(lam) / (len(LAMS) - 1)) if lam is not None
              else COLOURS.get(method, "tab:gray"))
    return {"color": colour, "linestyle": ("-", "--", ":")[seed % 3]}


def curve_table(models: dict, out: Path, lams=(0.1, 1.0, 4.0)) -> str:
    """Each trained model's last validation Dice per λ and its slope over the last 5k iterations (per 1k, ± its
    standard error: :func:`cir_monai.experiments.late_slope`), and its training minutes."""
    from cir_monai.experiments import diverged, late_slope, read_metrics

    lines = ["| model | iterations | " + " | ".join(f"Dice λ={lam:g} (slope / 1k over the last 5k)" for lam in lams)
             + " | minutes |", "|---" * (3 + len(lams)) + "|"]
    for name in models:
        _, val = read_metrics(folder(out, name))
        done = folder(out, name) / "done.json"
        if not val:
            continue
        cells = []
        for lam in lams:
            slope, error = late_slope(val, f"val_dice@{lam:g}")
            cells.append(f"{val[-1][f'val_dice@{lam:g}']:.3f} ({slope:+.4f} ± {error:.4f})")
        minutes = f"{json.loads(done.read_text())['seconds'] / 60:.0f}" if done.is_file() else "running"
        minutes += " (diverged: left out of the analysis)" if diverged(val) else ""
        lines.append(f"| {name} | {val[-1]['iteration']} | " + " | ".join(cells) + f" | {minutes} |")
    return "\n".join(lines)


def scored(models: dict, out: Path, pairs: list[dict]) -> list[dict]:
    """Every finished model's rows on the test slices (cached per model), with ``method`` and ``seed``."""
    from cir_monai.engines.validation import score_pairs
    from cir_monai.experiments import diverged, read_metrics
    from cir_monai.io import load_network

    rows: list[dict] = []
    for name, (method, _, overrides, seed) in models.items():
        if not (folder(out, name) / "done.json").is_file():
            continue
        if diverged(read_metrics(folder(out, name))[1]):
            print(f"{name}: left out, it diverged (validation Dice below no registration's at every λ)",
                  file=sys.stderr)
            continue
        cache = out / "eval" / f"{folder(out, name).name}.json"
        if not cache.is_file():
            lams = [overrides["train#trainer#lam_fixed"]] if method.startswith("baseline") else list(LAMS)
            model_rows = score_pairs(load_network(folder(out, name) / "model.pt"), pairs, lams, "cpu")
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(model_rows))
        first = not any(r["method"] == "identity" for r in rows)
        for row in json.loads(cache.read_text()):
            # a test case is a slice; its cluster, which the bootstrap resamples, the 3D pair it was cut from
            case = {"cluster": row["pair"], "pair": f"{row['pair']}/{row['slice']}"}
            if row["lam"] != "":
                rows.append({**row, **case, "method": method, "seed": seed})
            elif first:
                rows.append({**row, **case})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["pilot", "runs", "analyse"])
    parser.add_argument("--out", default=str(ROOT / "runs" / "paper_2d"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="train only these models of the stage")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--per-pair", type=int, default=5)
    parser.add_argument("--boot", type=int, default=2000)
    parser.add_argument("--models", choices=["pilot", "runs"], default="runs", help="what `analyse` reads")
    args = parser.parse_args()
    out = Path(args.out)
    if args.stage in ("pilot", "runs"):
        models = PILOT if args.stage == "pilot" else RUNS
        train({k: v for k, v in models.items() if not args.only or k in args.only}, out, args.threads)
        print("curves:", curves(models, out, out / f"{args.stage}_curves.png"))
        print(curve_table(models, out))
        return
    import torch

    from cir_monai.comparison import markdown_analysis, mean_over_seeds, paper_analysis
    from cir_monai.visualize import plot_paper_fig3
    from cir_monai.workflows import heldout_slice_pairs

    torch.set_num_threads(args.threads)
    models = PILOT if args.models == "pilot" else RUNS
    pairs = heldout_slice_pairs(ROOT / "data" / "heldout_2d", args.pairs, args.per_pair)
    rows = scored(models, out, pairs)
    result = paper_analysis(rows, LAMS, baseline_name, CONDITIONAL, args.boot)
    (out / "analysis.json").write_text(json.dumps(result, indent=1))
    text = markdown_analysis(result)
    (out / "results.md").write_text(text + "\n")
    plot_paper_fig3(mean_over_seeds(rows), result["table1"], out / "paper_2d_fig3.png",
                    {k: v for k, v in COLOURS.items() if k == "Baseline" or k in result["intervals"]}, result["lams"],
                    baseline_name, title=f"Dice ({len(pairs)} held-out test slices)")
    curves(models, out, out / "curves.png")
    print(text)


if __name__ == "__main__":
    main()
