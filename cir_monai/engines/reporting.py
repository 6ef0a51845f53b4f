# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Reports of an evaluation: the per-pair CSV, ``summary.json`` and the markdown ``summary.md`` (with ``tradeoff.png``).

Computing is :class:`~cir_monai.engines.evaluation.RegistrationEvaluator`'s; this module only writes
what it returns (also for the λ sweep, :mod:`cir_monai.sweep`). Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cir_monai.atomic import write_json, write_text

__all__ = ["COLUMNS", "write_pair_csv", "write_report"]

#: the columns of a pair's CSV (then one ``dice_<label>`` column per label)
COLUMNS = ("lam", "dice_mean", "hd95_mean", "jac_std", "folding_pct", "sdlogj", "epe_mm", "seconds")


def write_pair_csv(path: str | os.PathLike, rows: Sequence[dict], labels: Sequence[int], per_label: dict) -> Path:
    """One pair's rows (one per λ and "before") with the Dice of each label, as CSV."""
    label_cols = [f"dice_{v}" for v in labels]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(COLUMNS) + label_cols)
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **dict(zip(label_cols, per_label[row["lam"]]))})
    return write_text(path, text.getvalue())


def _per_label_means(summary: dict) -> tuple[list[int], dict[str, list[float]]]:
    """Mean Dice per label over pairs, per λ (labels present in any pair)."""
    per_pair = summary.get("per_label_dice", {})
    labels = sorted({v for p in per_pair.values() for v in p["labels"]})
    out = {}
    for name in summary["per_lam"]:
        out[name] = [
            float(np.nanmean([p[name][p["labels"].index(v)] for p in per_pair.values() if v in p["labels"]]
                             or [np.nan]))
            for v in labels
        ]
    return labels, out


def write_report(
    output_dir: str | os.PathLike,
    summary: dict,
    figures: bool = True,
    lam_star: float | None = None,
    max_folding: float | None = None,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write ``summary.json`` and the markdown report ``summary.md`` (with ``tradeoff.png``).

    Args:
        output_dir: the evaluation folder (holds the other pictures named in ``summary["figures"]``).
        summary: what :meth:`RegistrationEvaluator.run` returns.
        figures: draw ``tradeoff.png`` and embed the pictures.
        lam_star, max_folding: the selected λ and its folding bound (the λ sweep), marked and stated.
        title: the report's title.
        notes: extra lines under the title (e.g. how λ* was chosen).

    Returns:
        the path of ``summary.md``.
    """
    output_dir = Path(output_dir)
    pictures = dict(summary.get("figures", {}))
    if figures:
        from cir_monai.visualize import plot_tradeoff

        pictures = {"tradeoff": plot_tradeoff(summary["per_lam"], output_dir / "tradeoff.png", lam_star=lam_star,
                                              max_folding=max_folding).name, **pictures}
        summary["figures"] = pictures
    if lam_star is not None:
        summary["lam_star"] = lam_star
    write_json(output_dir / "summary.json", summary)
    title = title or f"Evaluation: {summary['pairs']} pairs"
    epe = any(np.isfinite(m.get("epe_mm", float("nan"))) for m in summary["per_lam"].values())  # known-truth pairs only
    lines = [f"# {title}", ""]
    lines += [*notes, ""] if notes else []
    lines += ["Means over pairs; `before` is the identity (no registration). Dice over the labels present in both "
              "segmentations; HD95 in mm; Jacobian determinant by forward differences on the registration grid.", "",
              "| λ | Dice | HD95 mm | std\\|J\\| | % det J ≤ 0 | SDlogJ |" + (" EPE mm |" if epe else "")
              + " s / pair |",
              "|---|---|---|---|---|---|" + ("---|" if epe else "") + "---|"]
    for name, m in summary["per_lam"].items():
        star = " **(λ*)**" if lam_star is not None and name != "before" and float(name) == lam_star else ""
        lines.append(f"| {name}{star} | {m['dice_mean']:.3f} | {m['hd95_mean']:.2f} | {m['jac_std']:.3f} | "
                     f"{m['folding_pct']:.3f} | {m['sdlogj']:.3f} |" + (f" {m['epe_mm']:.2f} |" if epe else "")
                     + f" {m['seconds']:.2f} |")
    labels, per_label = _per_label_means(summary)
    if labels:
        lines += ["", "Mean Dice per label:", "", "| λ | " + " | ".join(f"label {v}" for v in labels) + " |",
                  "|---" * (len(labels) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(f"{d:.3f}" for d in dice) + " |" for name, dice in per_label.items()]
    captions = {"tradeoff": "Dice, std|J| and folding against λ", "lambda_panel":
                f"warped moving image with the deformation grid, and det J, per λ ({summary.get('figure_pair', '')})",
                "overlay": "fixed (magenta) over moving (green), before and after"}
    for key, name in pictures.items():
        lines += ["", f"![{captions.get(key, key)}]({name})"]
    return write_text(output_dir / "summary.md", "\n".join(lines) + "\n")
