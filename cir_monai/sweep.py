# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The λ sweep: one trained model, every validation pair at every λ, and the choice of λ*.

This is what conditional registration is for (Mok & Chung, MICCAI 2021, §1): the smoothness
weight λ is an input, so finding the right λ for a data set costs one inference per pair and
λ instead of one training run per λ.

:func:`sweep` (``cir-monai sweep``) loads the model and the pairs and calls :func:`run_sweep`, which evaluates
(:class:`~cir_monai.engines.RegistrationEvaluator`: each pair is
preprocessed once, then registered at every λ), picks λ* with :func:`select_lambda`, and writes

- ``summary.md`` / ``summary.json`` / ``<pair>.csv`` / ``tradeoff.png`` (λ* marked) / ``lambda_panel.png``;
- ``lam_star.json``: ``{"lam_star", "rule", "max_folding", "tolerance", "refine", "model", "data", "lams"}``, which
  ``cir-monai register --lam <sweep folder>`` reads (λ* and the refinement it was chosen for, which register then
  runs unless told otherwise);
- ``register_lam.yaml``: an overlay for the bundle's register workflow
  (``--config_file "['bundle/configs/register.yaml','<sweep folder>/register_lam.yaml']"``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from cir_monai.atomic import write_json, write_text
from cir_monai.defaults import DEFAULT_FINE_STEPS, DEFAULT_LAMS, DEFAULT_REFINE, MAX_FOLDING_PCT

__all__ = ["RULES", "LAM_STAR_FILE", "check_rule", "select_lambda", "read_lam_star", "read_sweep", "run_sweep",
           "sweep"]

#: λ* selection rules
RULES = ("max_dice", "smoothest")
LAM_STAR_FILE = "lam_star.json"


def check_rule(rule: str, max_folding: float, tolerance: float) -> None:
    """The λ* rule's settings (:func:`select_lambda`), checked before any work.

    Raises:
        ValueError: an unknown rule, or a negative folding bound or Dice tolerance.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    if float(max_folding) < 0:
        raise ValueError(f"max_folding must be ≥ 0 (% of voxels), got {max_folding}")
    if float(tolerance) < 0:
        raise ValueError(f"tolerance must be ≥ 0 (Dice), got {tolerance}")


def select_lambda(
    per_lam: Mapping[str, Mapping[str, float]], max_folding: float = MAX_FOLDING_PCT, rule: str = "max_dice",
    tolerance: float = 0.01,
) -> float:
    """Pick λ* from the sweep's per-λ means.

    Only λ whose mean % of voxels with det J ≤ 0 is at most ``max_folding`` qualify. Among them:

    - ``"max_dice"`` (default): the λ with the highest mean Dice (ties: the larger, smoother λ);
    - ``"smoothest"``: the largest λ whose mean Dice is within ``tolerance`` of that highest Dice.

    Args:
        per_lam: ``{λ as text: {"dice_mean", "folding_pct", ...}}`` (a ``"before"`` entry is ignored).
        max_folding: the folding bound in % of voxels.
        rule: one of :data:`RULES`.
        tolerance: Dice tolerance of the ``"smoothest"`` rule.

    Raises:
        ValueError: unknown rule, or no λ keeps folding within the bound (the message gives the lowest).
    """
    check_rule(rule, max_folding, tolerance)
    values = [(float(k), v) for k, v in per_lam.items() if k != "before" and not math.isnan(v["dice_mean"])]
    if not values:
        raise ValueError("the sweep has no λ values with a Dice score (no labels overlap?)")
    ok = [(lam, v) for lam, v in values if v["folding_pct"] <= max_folding]
    if not ok:
        lam, v = min(values, key=lambda kv: kv[1]["folding_pct"])
        raise ValueError(f"no λ keeps folding at or under {max_folding:g} % of voxels (lowest: "
                         f"{v['folding_pct']:.3f} % at λ = {lam:g}); raise --max-folding or add larger λ")
    best = max(ok, key=lambda kv: (kv[1]["dice_mean"], kv[0]))
    if rule == "max_dice":
        return best[0]
    return max(lam for lam, v in ok if v["dice_mean"] >= best[1]["dice_mean"] - tolerance)


def read_sweep(path: str | os.PathLike) -> dict:
    """The record of a sweep folder or its ``lam_star.json``: ``lam_star`` (float), ``refine`` and ``fine_steps`` (the
    refinement steps in the frame and at the fixed grid λ* was chosen for; 0 for sweeps written before they were
    recorded, which scored without them), with the rule's settings.

    Raises:
        FileNotFoundError: no ``lam_star.json`` there (the path in the message).
        ValueError: the file does not hold a λ*.
    """
    path = Path(path)
    file = path / LAM_STAR_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no λ sweep result at {path} (expected {file}; run `cir-monai sweep` first)")
    try:
        record = json.loads(file.read_text())
        return dict(record, lam_star=float(record["lam_star"]), refine=int(record.get("refine", 0)),
                    fine_steps=int(record.get("fine_steps", 0)))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{file} does not hold a λ* ({type(err).__name__}: {err})") from err


def read_lam_star(path: str | os.PathLike) -> float:
    """λ* from a sweep folder or its ``lam_star.json`` (:func:`read_sweep`)."""
    return read_sweep(path)["lam_star"]


def run_sweep(
    network: torch.nn.Module,
    pairs: Sequence[dict],
    output_dir: str | os.PathLike,
    lams: Sequence[float] = DEFAULT_LAMS,
    max_folding: float = MAX_FOLDING_PCT,
    rule: str = "max_dice",
    tolerance: float = 0.01,
    model: str = "",
    data: str = "",
    device: str | torch.device | None = None,
    pixdim: float | Sequence[float] | None = None,
    progress: bool = True,
    shown_dir: str | os.PathLike | None = None,
    refine: int = DEFAULT_REFINE,
    fine_steps: int = DEFAULT_FINE_STEPS,
) -> dict:
    """Evaluate ``network`` on labelled ``pairs`` at every λ, pick λ* and write the report.

    Args:
        network: a trained :class:`~cir_monai.networks.CLapIRN`.
        pairs: file pairs with ``fixed_label`` and ``moving_label``.
        output_dir: where the tables, pictures and ``lam_star.json`` go.
        lams: the λ values to try.
        max_folding, rule, tolerance: the λ* rule (see :func:`select_lambda`).
        model, data: recorded in ``lam_star.json``.
        device, pixdim: as for the evaluator.
        progress: progress bar over pairs.
        shown_dir: the folder named in the report's "use it" line (default ``output_dir``; the
            command line writes to a staging folder that is moved there afterwards).
        refine: per-pair refinement steps at every λ (:func:`cir_monai.refine.refine_ddf`; default: ``register``'s,
            so that λ* is chosen for the registrations ``register`` makes; recorded in ``lam_star.json``).
        fine_steps: then more steps at each pair's fixed grid (:func:`cir_monai.refine.refine_on_grid`; default:
            ``register``'s; recorded too).

    Returns:
        the evaluation summary with ``lam_star`` added.
    """
    from cir_monai.engines.evaluation import RegistrationEvaluator
    from cir_monai.engines.reporting import write_report

    check_rule(rule, max_folding, tolerance)  # fail before the work
    output_dir = Path(output_dir)
    evaluator = RegistrationEvaluator(network, pairs, lams=lams, output_dir=output_dir, pixdim=pixdim, device=device,
                                      progress=progress, refine=refine, fine_steps=fine_steps)
    summary = evaluator.run(report=False)  # one report, written below with λ*
    lam_star = select_lambda(summary["per_lam"], max_folding=max_folding, rule=rule, tolerance=tolerance)
    shown = Path(shown_dir) if shown_dir is not None else output_dir
    rule_text = {
        "max_dice": f"highest mean Dice among the λ whose mean folding is at most {max_folding:g} % of voxels",
        "smoothest": f"largest λ within {tolerance:g} Dice of the best, among those with mean folding at most "
                     f"{max_folding:g} %",
    }[rule]
    notes = [f"**λ\\* = {lam_star:g}** ({rule_text}; rule `{rule}`).", "",
             f"Model `{model}`, data `{data}`, {summary['pairs']} pairs × {len(evaluator.lams)} λ, "
             f"{refine} refinement steps and {fine_steps} at the fixed grid per registration (as "
             f"`register --lam {shown}` will run). "
             f"Use it: `cir-monai register FIXED MOVING --lam {shown}` or the bundle overlay "
             f"`{shown / 'register_lam.yaml'}`."]
    write_report(output_dir, summary, lam_star=lam_star, max_folding=max_folding, title="λ sweep", notes=notes)
    record = {"lam_star": lam_star, "rule": rule, "max_folding": max_folding, "tolerance": tolerance,
              "refine": int(refine), "fine_steps": int(fine_steps), "model": str(model), "data": str(data),
              "lams": evaluator.lams}
    write_json(output_dir / LAM_STAR_FILE, record)
    write_text(output_dir / "register_lam.yaml",
        f"# λ* from the sweep in this folder ({rule}, folding ≤ {max_folding:g} %, chosen for {refine} refinement "
        f"steps and {fine_steps} at the fixed grid)\nlams: [{lam_star:g}]\nrefine: {int(refine)}\n"
        f"fine_steps: {int(fine_steps)}\n")
    return summary


def sweep(data: str | os.PathLike = "embedded", out: str | os.PathLike = "runs/sweep",
          lams: Sequence[float] = DEFAULT_LAMS,
          max_folding: float = MAX_FOLDING_PCT, rule: str = "max_dice", tolerance: float = 0.01,
          split: str = "validation", model: str | os.PathLike | None = None, device: str | torch.device | None = None,
          pixdim: float | None = None, refine: int = DEFAULT_REFINE, fine_steps: int = DEFAULT_FINE_STEPS) -> dict:
    """The λ sweep of ``cir-monai sweep``: check the settings, load the model (``None``: the shipped one) and
    the labelled pairs of ``data`` (:func:`cir_monai.workflows.data_pairs`), and write :func:`run_sweep`'s
    report into ``out`` atomically (:func:`~cir_monai.atomic.staged_folder`, replacing an earlier report).

    Returns:
        the summary with ``lam_star`` (see :func:`run_sweep`).
    """
    from cir_monai.atomic import staged_folder
    from cir_monai.defaults import default_device, default_model
    from cir_monai.engines.prediction import check_options, checked_lams
    from cir_monai.io import load_network
    from cir_monai.refine import refine_steps
    from cir_monai.workflows import data_pairs

    check_rule(rule, max_folding, tolerance)
    check_options(refine=refine)
    refine_steps(fine_steps, "fine_steps")
    device = default_device(device)
    network = load_network(model, device)
    checked_lams(lams, network)  # before the data are built
    pairs = data_pairs(data, split)
    with staged_folder(out, fresh=True) as staging:
        return run_sweep(network, pairs, staging, lams=lams, max_folding=float(max_folding), rule=rule,
                         tolerance=float(tolerance), model=str(model or default_model()), data=str(data), device=device,
                         pixdim=pixdim, shown_dir=out, refine=refine, fine_steps=fine_steps)
