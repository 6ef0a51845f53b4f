# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Pictures of registrations and of the λ trade-off (matplotlib, PNG).

- :func:`plot_tradeoff`: mean Dice, std|J| and % folding against λ, λ* marked.
- :func:`plot_lambda_panel`: like Fig. 2 of Mok & Chung (MICCAI 2021): for each λ, the warped
  moving image with the deformation grid, and the Jacobian determinant map, on axial,
  coronal and sagittal slices through the centre, std|J| in the corner.
- :func:`plot_overlay`: fixed (magenta) over moving (green) before and after registration.
- :func:`plot_learning_curves`: training loss and validation Dice per λ against the iteration, per model.
- :func:`plot_paper_fig3`: like Fig. 3 of the paper: Dice and std|J| per λ per method, and the MAE against the
  fixed-λ baselines.

Arrays are ``(X, Y, Z)`` in RAS (what :func:`cir_monai.transforms.registration_preprocessing` gives);
DDFs are ``(3, X, Y, Z)`` in voxels, MONAI convention (sampled point = voxel + ddf). A slice
is drawn with its first array axis to the right and its second up (radiological left/right
is not flipped). Every function writes one PNG atomically and returns its path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cir_monai.atomic import atomic_path
from cir_monai.metrics import jacobian_determinant, jacobian_statistics  # noqa: E402

__all__ = ["plot_tradeoff", "plot_lambda_panel", "plot_overlay", "plot_learning_curves", "plot_paper_fig3",
           "VIEWS"]

#: (name, axis cut through, (horizontal axis, vertical axis)) for a (X, Y, Z) RAS volume
VIEWS = (("axial", 2, (0, 1)), ("coronal", 1, (0, 2)), ("sagittal", 0, (1, 2)))


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _slice(volume: np.ndarray, axis: int, index: int | None = None) -> np.ndarray:
    """The centre slice of ``volume`` (``(..., X, Y, Z)``) across ``axis``, transposed for ``imshow``."""
    index = volume.shape[-3 + axis] // 2 if index is None else index
    cut = np.take(volume, index, axis=volume.ndim - 3 + axis)
    return np.swapaxes(cut, -1, -2)


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as staged:
        fig.savefig(staged, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_tradeoff(
    per_lam: Mapping[str, Mapping[str, float]],
    path: str | os.PathLike,
    lam_star: float | None = None,
    max_folding: float | None = None,
    title: str = "One model, every λ",
    references: Mapping[str, Mapping[str, float]] | None = None,
) -> Path:
    """Dice, std|J| and % folding against λ.

    Args:
        per_lam: ``{λ as text: {"dice_mean", "jac_std", "folding_pct", ...}}``; a ``"before"``
            entry (identity) is drawn as a horizontal line.
        path: the PNG to write.
        lam_star: the selected λ, marked with a vertical line.
        max_folding: the folding bound (% of voxels) used to select λ*, drawn on the folding axis.
        references: other methods ``{name: {"dice_mean", "jac_std"}}`` (e.g. ANTs SyN), drawn as
            dotted horizontal lines on both panels.
    """
    lams = sorted((float(k), v) for k, v in per_lam.items() if k != "before")
    x = [k for k, _ in lams]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(x, [v["dice_mean"] for _, v in lams], "o-", color="tab:blue", label="registered")
    if "before" in per_lam:
        left.axhline(per_lam["before"]["dice_mean"], color="grey", ls="--", label="before (identity)")
    left.set(xlabel="λ", ylabel="mean Dice", title="Overlap")
    right.plot(x, [v["jac_std"] for _, v in lams], "o-", color="tab:green", label="std|J|")
    for (name, ref), color in zip((references or {}).items(), ("tab:purple", "tab:orange", "tab:brown", "tab:pink")):
        left.axhline(ref["dice_mean"], color=color, ls=":", label=name)
        right.axhline(ref["jac_std"], color=color, ls=":", lw=1)
    right.set(xlabel="λ", ylabel="std|J|", title="Smoothness")
    twin = right.twinx()
    twin.plot(x, [v["folding_pct"] for _, v in lams], "s--", color="tab:red", label="% det J ≤ 0")
    twin.set_ylabel("% det J ≤ 0", color="tab:red")
    if max_folding is not None:
        twin.axhline(max_folding, color="tab:red", ls=":", lw=1)
    twin.set_ylim(bottom=0)
    if lam_star is not None:
        left.axvline(lam_star, color="black", lw=1.2, ls="-.", label=f"λ* = {lam_star:g}")
        right.axvline(lam_star, color="black", lw=1.2, ls="-.")
    left.legend(loc="best", fontsize=8)
    lines = right.get_lines()[:1] + twin.get_lines()[:1]
    right.legend(lines, [line.get_label() for line in lines], loc="upper right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(w_pad=3.0)
    return _save(fig, path)


def _grid_lines(ax, ddf2: np.ndarray, step: int) -> None:
    """Deformed grid of an in-plane displacement ``ddf2`` ``(2, W, H)`` (image axes), every ``step`` voxels."""
    w, h = ddf2.shape[1:]
    gx, gy = np.meshgrid(np.arange(w), np.arange(h), indexing="ij")
    px, py = gx + ddf2[0], gy + ddf2[1]
    for i in range(0, w, step):
        ax.plot(px[i, :], py[i, :], color="gold", lw=0.5)
    for j in range(0, h, step):
        ax.plot(px[:, j], py[:, j], color="gold", lw=0.5)


def plot_lambda_panel(
    fixed,
    moving,
    fields: Mapping[float, tuple],
    path: str | os.PathLike,
    grid_step: int | None = None,
) -> Path:
    """The paper's Fig. 2 for one pair: warped image + deformation grid and det J per λ.

    Args:
        fixed, moving: ``(X, Y, Z)`` images (RAS, the registration grid).
        fields: ``{λ: (warped (X, Y, Z), ddf (3, X, Y, Z) voxels)}``, one row each, in key order.
        path: the PNG to write.
        grid_step: voxels between grid lines (default: 1/16 of the largest side).
    """
    fixed, moving = _np(fixed), _np(moving)
    step = grid_step or max(2, max(fixed.shape) // 16)
    rows = 1 + len(fields)
    fig, axes = plt.subplots(rows, 6, figsize=(15, 2.6 * rows), squeeze=False)
    for c, (name, axis, _) in enumerate(VIEWS):
        axes[0, c].imshow(_slice(fixed, axis), cmap="gray", origin="lower")
        axes[0, c].set_title(f"fixed, {name}", fontsize=9)
        axes[0, 3 + c].imshow(_slice(moving, axis), cmap="gray", origin="lower")
        axes[0, 3 + c].set_title(f"moving, {name}", fontsize=9)
    for r, (lam, (warped, ddf)) in enumerate(fields.items(), start=1):
        warped, ddf = _np(warped), _np(ddf).astype(np.float32)
        det = _np(jacobian_determinant(torch.as_tensor(ddf)[None], scheme="central"))[0]
        std = float(jacobian_statistics(torch.as_tensor(ddf)[None])["jac_std"][0])
        for c, (name, axis, (h, v)) in enumerate(VIEWS):
            ax = axes[r, c]
            ax.imshow(_slice(warped, axis), cmap="gray", origin="lower")
            _grid_lines(ax, np.stack([_slice(ddf[h], axis).T, _slice(ddf[v], axis).T]), step)
            ax.set_xlim(-0.5, warped.shape[h] - 0.5)
            ax.set_ylim(-0.5, warped.shape[v] - 0.5)
            ax.set_title(f"λ = {lam:g}, warped, {name}", fontsize=9)
            im = axes[r, 3 + c].imshow(_slice(det, axis), cmap="RdBu_r", vmin=0.0, vmax=2.0, origin="lower")
            axes[r, 3 + c].set_title(f"λ = {lam:g}, det J, {name}", fontsize=9)
        axes[r, 0].text(0.02, 0.97, f"std|J| = {std:.3f}", transform=axes[r, 0].transAxes, color="white",
                        va="top", fontsize=8, bbox=dict(facecolor="black", alpha=0.6, pad=1.5))
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if fields:
        fig.colorbar(im, ax=axes[1:, 3:].ravel().tolist(), shrink=0.6, label="det J")
    return _save(fig, path)


def _rgb(fixed: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Fixed in magenta, ``other`` in green: grey where they agree."""
    def norm(a):
        lo, hi = np.percentile(a, (1, 99))
        return np.clip((a - lo) / max(hi - lo, 1e-8), 0, 1)

    f, o = norm(fixed), norm(other)
    return np.stack([f, o, f], axis=-1)


def plot_overlay(fixed, moving, warped, path: str | os.PathLike, title: str = "") -> Path:
    """Fixed (magenta) over moving (green) before, and over the warped moving after registration.

    Args:
        fixed, moving, warped: ``(X, Y, Z)`` images on the same grid (RAS).
        path: the PNG to write.
        title: figure title (e.g. the pair and λ).
    """
    fixed, moving, warped = _np(fixed), _np(moving), _np(warped)
    fig = Figure(figsize=(10, 6.5))  # not pyplot's: the many-pair runner draws it in its writing thread
    axes = fig.subplots(2, 3)
    for c, (name, axis, _) in enumerate(VIEWS):
        for r, (label, other) in enumerate((("before", moving), ("after", warped))):
            axes[r, c].imshow(_rgb(_slice(fixed, axis), _slice(other, axis)), origin="lower")
            axes[r, c].set_title(f"{label}, {name}", fontsize=9)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
    fig.suptitle((title + "\n" if title else "") + "fixed magenta, moving green, grey where they agree", fontsize=10)
    return _save(fig, path)


def plot_learning_curves(
    runs: Mapping[str, tuple[list[dict], list[dict]]], path: str | os.PathLike, lams=(0.1, 1.0, 4.0),
    window: int = 10, styles: Mapping[str, dict] | None = None,
) -> Path:
    """Learning curves of several training runs: whether each has levelled off.

    Args:
        runs: name → ``(training records, validation records)`` as :func:`cir_monai.experiments.read_metrics`
            gives them (``iteration``, ``loss``, ``level``; ``iteration``, ``val_dice@λ``).
        lams: the validation λ drawn, one panel each (a model validated without a λ is skipped there).
        window: the training loss is a running mean over this many records (each ``log_every`` iterations).
        styles: name → matplotlib line settings (``color``, ``linestyle``), e.g. one colour per model and one line
            style per seed when there are many runs (default: the colour cycle, solid).

    The first panel is the training loss (objective at the sampled λ, so noisy: the running mean shows its trend);
    then the validation Dice at each λ. Dotted lines: where a run's level changes.
    """
    fig, axes = plt.subplots(1, 1 + len(lams), figsize=(4.2 * (1 + len(lams)), 3.6), squeeze=False)
    axes = axes[0]
    for i, (name, (train, val)) in enumerate(runs.items()):
        style = {"color": f"C{i % 10}", **(styles or {}).get(name, {})}
        colour = style["color"]
        if train:
            its = np.array([r["iteration"] for r in train])
            loss = np.array([r["loss"] for r in train])
            smooth = np.convolve(loss, np.ones(window) / window, mode="valid") if len(loss) >= window else loss
            axes[0].plot(its[len(its) - len(smooth):], smooth, label=name, linewidth=1, **style)
            levels = np.array([r["level"] for r in train])
            for change in its[1:][np.diff(levels) != 0]:
                for ax in axes:
                    ax.axvline(change, color=colour, linestyle=":", linewidth=0.8)
        for ax, lam in zip(axes[1:], lams):
            key = f"val_dice@{lam:g}"
            points = [(r["iteration"], r[key]) for r in val if key in r]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=2.5, label=name, linewidth=1, **style)
    axes[0].set(title=f"training loss (running mean of {window})", xlabel="iteration")
    for ax, lam in zip(axes[1:], lams):
        ax.set(title=f"validation Dice at λ = {lam:g}", xlabel="iteration")
    axes[0].legend(fontsize=7 if len(runs) <= 10 else 5, ncol=1 if len(runs) <= 10 else 2)
    fig.tight_layout()
    return _save(fig, path)


def plot_paper_fig3(rows, table, path: str | os.PathLike, methods: Mapping[str, str], lams,
                    baseline_method, title: str = "Dice") -> Path:
    """Fig. 3 of Mok & Chung (MICCAI 2021) for a reproduction: box plots over the test cases of Dice and std|J| at
    each λ for every method (``methods``: name → colour; ``"Baseline"`` means the fixed-λ model trained at each
    λ, ``baseline_method(λ)``), and the MAE of Dice and of std|J| against the baselines per conditional method
    (:func:`cir_monai.comparison.table1`'s ``mae_dsc`` / ``mae_jac``)."""
    fig, axes = plt.subplots(1, 4, figsize=(22, 5), gridspec_kw={"width_ratios": [3, 3, 1.2, 1.2]})
    width = 0.8 / len(methods)
    for ax, key, name in ((axes[0], "dice_mean", title), (axes[1], "jac_std", "std|J|")):
        for m, (method, colour) in enumerate(methods.items()):
            data = [[r[key] for r in rows if r["lam"] not in ("", None) and np.isclose(float(r["lam"]), lam)
                     and r["method"] == (baseline_method(lam) if method == "Baseline" else method)] for lam in lams]
            box = ax.boxplot(data, positions=np.arange(len(lams)) + (m - (len(methods) - 1) / 2) * width,
                             widths=width * 0.9, patch_artist=True, showfliers=False)
            for patch in box["boxes"]:
                patch.set_facecolor(colour)
            ax.plot([], [], color=colour, lw=8, label=method)
        ax.set_xticks(np.arange(len(lams)), [f"{lam:g}" for lam in lams])
        ax.set(xlabel="λ", title=name)
        ax.legend(fontsize=8)
    named = [r for r in table if "mae_dsc" in r]
    for ax, key, name in ((axes[2], "mae_dsc", "MAE of Dice vs the baselines"),
                          (axes[3], "mae_jac", "MAE of std|J| vs the baselines")):
        ax.bar(range(len(named)), [r[key] for r in named], color=[methods.get(r["method"], "grey") for r in named])
        ax.set_xticks(range(len(named)), [r["method"] for r in named], rotation=30, ha="right")
        ax.set_title(name)
    fig.tight_layout()
    return _save(fig, path)
