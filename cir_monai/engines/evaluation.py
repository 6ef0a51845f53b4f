# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Evaluate one model on labelled pairs at a list of λ (the paper's protocol, docs/method.md §5).

For every pair and every λ (and the identity, "before"): Dice per label and mean, HD95 (mm),
std|J|, % of voxels with det J ≤ 0, SDlogJ (forward-difference Jacobian, voxels) and the
inference time, in the preprocessed fixed image's grid; the mean over pairs per λ. It draws the
paper's Fig. 2-style panel ``lambda_panel.png`` and a before/after ``overlay.png`` of the first
pair (``figures=True``, default); the files (``<id>.csv`` per pair, ``summary.json``, ``summary.md``
with ``tradeoff.png``) are written by :mod:`cir_monai.engines.reporting`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cir_monai.conventions import voxel_to_world
from cir_monai.defaults import DEFAULT_LAMS, default_device
from cir_monai.engines.prediction import checked_lams, predict_in_frame, resolve_frame
from cir_monai.engines.reporting import COLUMNS, write_pair_csv, write_report
from cir_monai.frame import EMBEDDED_FRAME, FrameResampler
from cir_monai.metrics import dice_per_label, hd95_per_label, jacobian_statistics, present_labels
from cir_monai.networks import CLapIRN, Warp
from cir_monai.refine import refine_steps
from cir_monai.runtime import rank_and_world
from cir_monai.transforms import registration_preprocessing

__all__ = ["RegistrationEvaluator", "PANEL_LAMS", "score_field"]

#: λ values of the paper's Fig. 2 panel (those in the evaluated list are drawn)
PANEL_LAMS = (0.1, 1.0, 4.0, 8.0)


class RegistrationEvaluator:
    """Metrics of a model over pairs × λ, written as CSV / JSON / markdown.

    Args:
        network: a :class:`CLapIRN` in evaluation mode.
        pairs: dicts of file paths with ``fixed_label`` and ``moving_label``.
        lams: λ values.
        output_dir: where the tables go.
        spatial_size, pixdim, orientation, percentiles: preprocessing (the grid metrics are measured on).
        frame: where the network predicts: ``"model"`` (its training frame, default), ``"input"`` (the
            measurement grid) or a frame dict (:func:`~cir_monai.engines.prediction.resolve_frame`);
            the field is brought back to the measurement grid (:class:`~cir_monai.frame.FrameResampler`).
        hd95: compute HD95 (slow with many labels at 1 mm; NaN when off).
        labels: label values to score (default: those present in both segmentations of a pair).
        device: ``"cuda"`` when available else ``"cpu"`` by default.
        progress: show a progress bar over the pairs × λ registrations (the pair and λ at hand, an ETA) and one
            over each refinement's steps.
        figures: draw the pictures of the report (PNG).
        refine: per-pair refinement steps (:func:`cir_monai.refine.refine_ddf`; 0: the network alone); the
            reported time includes them.
        fine_steps: after that, more steps on the measurement grid (:func:`cir_monai.refine.refine_on_grid`, as
            ``register --fine-steps``; 0: none); counted in the reported time.
    """

    def __init__(
        self,
        network: CLapIRN,
        pairs: Sequence[dict],
        lams: Sequence[float] = DEFAULT_LAMS,
        output_dir: str | os.PathLike = "evaluation",
        spatial_size: Sequence[int] | None = None,
        pixdim: float | Sequence[float] | None = None,
        orientation: str | None = EMBEDDED_FRAME["orientation"],
        percentiles: tuple[float, float] = tuple(EMBEDDED_FRAME["percentiles"]),
        frame: str | dict = "model",
        hd95: bool = True,
        labels: Sequence[int] | None = None,
        device: str | torch.device | None = None,
        progress: bool = True,
        figures: bool = True,
        refine: int = 0,
        fine_steps: int = 0,
    ) -> None:
        self.device = default_device(device)
        self.network = network.to(self.device).eval()
        self.lams = checked_lams(lams, network)
        missing = [i for i, p in enumerate(pairs) if "fixed_label" not in p or "moving_label" not in p]
        if missing:
            raise ValueError(f"evaluation needs fixed_label and moving_label for every pair; pairs {missing} lack them")
        self.pairs = list(pairs)
        self.output_dir = Path(output_dir)
        self.labels = labels
        self.progress = progress
        self.figures = figures
        self.preprocessing = registration_preprocessing(spatial_size, pixdim, orientation, percentiles)
        self.resampler = FrameResampler(resolve_frame(network, frame)["spacing"])
        self.hd95 = bool(hd95)
        self.refine = int(refine)
        self.fine_steps = refine_steps(fine_steps, "fine_steps")

    @torch.no_grad()
    def evaluate_pair(self, pair: dict, keep: Sequence[float] = (), bar: tqdm | None = None
                      ) -> tuple[list[dict], list[int], dict, dict]:
        """Metrics of one pair at "before" and every λ.

        Args:
            pair: file paths (``fixed``, ``moving``, ``fixed_label``, ``moving_label``; optionally
                ``ddf_truth``, the true field as written by :mod:`cir_monai.data.heldout`: a NIfTI
                ``(X, Y, Z, 1, 3)`` in voxels of the fixed grid, which then gives the end-point
                error in mm over the fixed brain, i.e. the fixed image's non-zero voxels).
            keep: λ values whose warped image and DDF to return (for pictures).
            bar: a progress bar advanced by one per λ, showing the pair and λ at hand (:meth:`run`'s).

        Returns:
            rows (one dict of :data:`COLUMNS` per λ), the scored labels, Dice per label per λ, and
            ``{"fixed", "moving": (X, Y, Z), "fields": {λ: (warped (X, Y, Z), ddf (3, X, Y, Z))},
            "preprocess_seconds"}``.
        """
        start = time.perf_counter()
        data = self.preprocessing(dict(pair))
        preprocess_seconds = time.perf_counter() - start
        fixed, moving = data["fixed"], data["moving"]
        spacing = [float(s) for s in np.sqrt((np.asarray(fixed.affine)[:3, :3] ** 2).sum(0))]
        f_lab = data["fixed_label"].as_tensor()[None].round().long()
        m_lab = data["moving_label"].as_tensor()[None].round().long()
        labels = list(self.labels) if self.labels is not None else present_labels(f_lab, m_lab)
        truth = _load_truth(pair["ddf_truth"], fixed) if pair.get("ddf_truth") else None
        brain = fixed.as_tensor()[0] > 0  # end-point error over the fixed brain (labels leave white matter out)
        fixed_w, moving_w = self.resampler.to_frame(fixed), self.resampler.to_frame(moving)
        rows, per_label = [], {}
        kept = {"fixed": fixed.as_tensor()[0], "moving": moving.as_tensor()[0], "fields": {},
                "preprocess_seconds": preprocess_seconds}
        identity = torch.zeros(1, f_lab.ndim - 2, *f_lab.shape[2:])
        for lam in [None] + self.lams:
            if lam is None:
                ddf, seconds = identity, 0.0
            else:
                if bar is not None:
                    bar.set_postfix_str(f"{pair.get('id', Path(pair['moving']).name)} λ={lam:g}")
                start = time.perf_counter()
                ddf = predict_in_frame(self.network, self.resampler, moving_w, fixed_w, lam, grid=fixed,
                                       device=self.device, refine=self.refine,
                                       progress=f"λ={lam:g} refining" if self.progress else None,
                                       fine_steps=self.fine_steps, moving_on_grid=moving)
                seconds = time.perf_counter() - start
                ddf = ddf.cpu()
                if lam in keep:
                    kept["fields"][lam] = (Warp("bilinear")(moving.as_tensor()[None].float(), ddf)[0, 0], ddf[0])
            scores, dice = score_field(ddf, m_lab, f_lab, labels, spacing=spacing if self.hd95 else None,
                                       truth=truth, brain=brain, affine=fixed.affine)
            name = "before" if lam is None else f"{lam:g}"
            per_label[name] = dice
            rows.append({"lam": name, **scores, "seconds": seconds})
            if bar is not None and lam is not None:
                bar.update(1)
        return rows, labels, per_label, kept

    def run(self, report: bool = True) -> dict:
        """Evaluate every pair; returns the summary.

        Args:
            report: write ``summary.json`` / ``summary.md`` (:func:`write_report`); off when the
                caller writes its own report from the summary (the λ sweep).

        In a ``torch.distributed`` process group (``torchrun``, ``bundle/configs/multi_gpu_evaluate.yaml``) rank ``r``
        of ``W`` evaluates pairs ``r, r + W, ...`` and writes their CSVs; the rows are gathered, every rank returns the
        whole summary and rank 0 writes the report (its pictures are of pair 0, which rank 0 evaluates).
        """
        self.output_dir.mkdir(parents=True, exist_ok=True)
        all_rows: dict[str, list[dict]] = {}
        per_label_all: dict[str, dict[str, list[float]]] = {}
        keep = [v for v in self.lams if v in PANEL_LAMS] or self.lams[:: max(1, len(self.lams) // 4)][:4]
        overlay_lam = min(self.lams, key=lambda v: abs(v - 1.0))
        example = None
        started = time.perf_counter()
        preprocess_seconds = []
        rank, world = rank_and_world()
        mine = list(enumerate(self.pairs))[rank::world]  # under torchrun: every world-th pair (rank 0 has pair 0)
        with tqdm(total=len(mine) * len(self.lams), desc="evaluating" if world == 1 else f"rank {rank}: evaluating",
                  unit="registration", disable=not self.progress) as bar:
            for index, pair in mine:
                pair_id = pair.get("id") or f"pair_{index:03d}"
                wanted = sorted(set(keep) | {overlay_lam}) if self.figures and index == 0 else ()
                rows, labels, per_label, kept = self.evaluate_pair(dict(pair, id=pair_id), keep=wanted, bar=bar)
                preprocess_seconds.append(kept["preprocess_seconds"])
                if wanted:
                    example = (pair_id, kept)
                write_pair_csv(self.output_dir / f"{pair_id}.csv", rows, labels, per_label)
                all_rows[pair_id] = rows
                per_label_all[pair_id] = {"labels": labels, **per_label}
        if world > 1:  # every rank's pairs, in the datalist's order, on every rank (the model zoo's multi-GPU pattern)
            import torch.distributed as dist

            gathered: list = [None] * world
            dist.all_gather_object(gathered, (all_rows, per_label_all, preprocess_seconds))
            order = [pair.get("id") or f"pair_{index:03d}" for index, pair in enumerate(self.pairs)]
            rows = {k: v for part, _, _ in gathered for k, v in part.items()}
            labels = {k: v for _, part, _ in gathered for k, v in part.items()}
            all_rows, per_label_all = {k: rows[k] for k in order}, {k: labels[k] for k in order}
            preprocess_seconds = [t for _, _, times in gathered for t in times]
        names = [r["lam"] for r in next(iter(all_rows.values()))]
        summary = {"pairs": len(all_rows), "per_lam": {}, "per_pair": all_rows, "per_label_dice": per_label_all,
                   "timing": {"preprocess_seconds": preprocess_seconds,
                              "inference_seconds": sum(r["seconds"] for rows in all_rows.values() for r in rows),
                              "evaluation_seconds": time.perf_counter() - started}}
        for i, name in enumerate(names):
            summary["per_lam"][name] = {key: _nanmean([rows[i][key] for rows in all_rows.values()])
                                        for key in COLUMNS[1:]}
        figures = {}
        if example is not None:
            from cir_monai.visualize import plot_lambda_panel, plot_overlay

            pair_id, kept = example
            panel = {v: kept["fields"][v] for v in keep}
            figures["lambda_panel"] = plot_lambda_panel(kept["fixed"], kept["moving"], panel,
                                                        self.output_dir / "lambda_panel.png").name
            figures["overlay"] = plot_overlay(kept["fixed"], kept["moving"], kept["fields"][overlay_lam][0],
                                              self.output_dir / "overlay.png",
                                              title=f"{pair_id}, λ = {overlay_lam:g}").name
            summary["figure_pair"] = pair_id
        summary["figures"] = figures
        if report and rank == 0:
            write_report(self.output_dir, summary, figures=self.figures)
        return summary


@torch.no_grad()
def score_field(ddf: torch.Tensor, moving_label: torch.Tensor, fixed_label: torch.Tensor, labels: Sequence[int],
                spacing: Sequence[float] | None = None, truth: torch.Tensor | None = None,
                brain: torch.Tensor | None = None, affine=None) -> tuple[dict, list[float]]:
    """The metrics of one field, the same for evaluation and for the trainer's validation.

    The moving labels are warped by nearest neighbour and scored against the fixed ones, on the field's device.

    Args:
        ddf: ``(1, n, *S)`` voxels of the fixed grid.
        moving_label, fixed_label: ``(1, 1, *S)`` integer label maps on that grid.
        labels: the label values scored (e.g. :func:`~cir_monai.metrics.present_labels` of the pair).
        spacing: voxel size in mm for HD95 (``None``: HD95 not computed, NaN).
        truth, brain, affine: the true field ``(1, n, *S)``, the voxels it is scored over and the grid's
            voxel→world affine, for the end-point error (mm); ``None``: NaN.

    Returns:
        ``{"dice_mean", "hd95_mean", "jac_std", "folding_pct", "sdlogj", "epe_mm"}`` and the Dice per label.
    """
    ddf = ddf.float()
    fixed_label = fixed_label.to(ddf.device)
    warped = Warp("nearest", "zeros")(moving_label.to(ddf.device).float(), ddf).round().long()
    dice, _ = dice_per_label(warped, fixed_label, labels)
    hd = hd95_per_label(warped, fixed_label, labels, spacing=spacing)[0] if spacing is not None else None
    epe = float("nan")
    if truth is not None:
        error = voxel_to_world(ddf - truth.to(ddf.device), affine).norm(dim=1)
        epe = float(error[0][brain.to(ddf.device)].mean())
    stats = jacobian_statistics(ddf)
    scores = {
        "dice_mean": float(torch.nanmean(dice[0])) if dice.shape[1] else float("nan"),
        "hd95_mean": float(torch.nanmean(hd[0])) if hd is not None and hd.shape[1] else float("nan"),
        "jac_std": float(stats["jac_std"][0]),
        "folding_pct": float(stats["folding_pct"][0]),
        "sdlogj": float(stats["sdlogj"][0]),
        "epe_mm": epe,
    }
    return scores, dice[0].tolist()


def _nanmean(values: Sequence[float]) -> float:
    """Mean of the finite values; NaN when there are none (without numpy's warning)."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _load_truth(path: str | os.PathLike, fixed) -> torch.Tensor:
    """A true DDF written as NIfTI ``(X, Y, Z, 1, 3)`` → ``(1, 3, X, Y, Z)``.

    Its voxels must be those of the preprocessed fixed grid (same shape and affine: no
    reorientation, resampling or cropping in between), else the end-point error would be wrong.
    """
    import nibabel as nib

    image = nib.load(str(path))
    data = np.asarray(image.dataobj, dtype=np.float32)
    shape = tuple(fixed.shape[1:])
    if data.ndim != 5 or data.shape[:3] != shape or data.shape[-1] != 3:
        raise ValueError(f"{path}: ddf_truth must be (X, Y, Z, 1, 3) on the fixed grid {shape}, got {data.shape}")
    if not np.allclose(image.affine, np.asarray(fixed.affine), atol=1e-3):
        raise ValueError(f"{path}: ddf_truth's grid (affine) differs from the preprocessed fixed image's; evaluate "
                         "known-truth pairs without reorientation, resampling or cropping")
    return torch.from_numpy(np.moveaxis(data[:, :, :, 0, :], -1, 0).copy())[None]
