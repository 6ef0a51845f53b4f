"""Pictures: files that open and show what they claim, checked on their pixels (colours of the curves, overlays
and det J maps in the panels where they belong)."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
import torch

from cir_monai.visualize import _slice, plot_lambda_panel, plot_learning_curves, plot_overlay, plot_tradeoff


def _image(path):
    image = matplotlib.image.imread(str(path))
    assert image.ndim == 3, f"{path} is not an RGB(A) picture"
    return image


def test_slices_follow_the_view_axes():
    volume = np.zeros((4, 5, 6))
    volume[3, 1, 2] = 1.0
    # axial cuts z: shown (rows = y, columns = x)
    assert _slice(volume, 2, 2).shape == (5, 4) and _slice(volume, 2, 2)[1, 3] == 1.0
    assert _slice(volume, 1, 1).shape == (6, 4) and _slice(volume, 1, 1)[2, 3] == 1.0  # coronal: (z, x)
    assert _slice(volume, 0, 3).shape == (6, 5) and _slice(volume, 0, 3)[2, 1] == 1.0  # sagittal: (z, y)


def _mask(image, rgb, tol=0.12):
    """Pixels of colour ``rgb`` (0-1) within ``tol`` per channel."""
    return (np.abs(image[..., :3] - np.asarray(rgb)) < tol).all(-1)


TAB_BLUE, TAB_GREEN, TAB_RED = (0.122, 0.467, 0.706), (0.173, 0.627, 0.173), (0.839, 0.153, 0.157)


@pytest.mark.parametrize("slope", [-0.01, 0.01])
def test_tradeoff_draws_each_curve_in_its_panel_with_its_slope(tmp_path, slope):
    per_lam = {"before": {"dice_mean": 0.5, "jac_std": 0.0, "folding_pct": 0.0}}
    per_lam.update({f"{lam:g}": {"dice_mean": 0.7 + slope * lam, "jac_std": 0.3 - 0.02 * lam,
                                 "folding_pct": 0.1 / (1 + lam)} for lam in (0, 1, 4, 10)})
    image = _image(plot_tradeoff(per_lam, tmp_path / "t.png", lam_star=1.0, max_folding=0.05))
    half = image.shape[1] // 2
    blue, green, red = _mask(image, TAB_BLUE), _mask(image, TAB_GREEN), _mask(image, TAB_RED)
    assert blue[:, :half].sum() > 100 and blue[:, half:].sum() < 20  # Dice: left panel only
    assert green[:, half:].sum() > 100 and green[:, :half].sum() < 20  # std|J|: right panel only
    assert red[:, half:].sum() > 100  # % folding on the right panel's twin axis
    # the Dice curve rises or falls as the data do (image rows grow downwards; the legend sits in the corner
    # opposite neither end, so compare the curve's first and last tenth of columns)
    rows, cols = np.nonzero(blue[:, :half])
    first = rows[cols < cols.min() + (cols.max() - cols.min()) / 10].mean()
    last = rows[cols > cols.max() - (cols.max() - cols.min()) / 10].mean()
    assert (last < first) == (slope > 0), (first, last)


def test_lambda_panel_shows_det_j_where_the_field_deforms(tmp_path):
    g = torch.Generator().manual_seed(0)
    fixed = torch.rand(16, 20, 12, generator=g)
    ddf = torch.zeros(3, 16, 20, 12)
    ddf[0] = 3.0 * torch.sin(torch.linspace(0, 6, 16))[:, None, None]  # det J = 1 + ∂u/∂x swings around 1
    image = _image(plot_lambda_panel(fixed, fixed, {0.1: (fixed, ddf), 8.0: (fixed, 0 * ddf)}, tmp_path / "p.png"))
    height, width = image.shape[:2]
    det_columns = slice(int(0.52 * width), int(0.80 * width))  # the det J panels (the colour bar lies further right)
    deformed = image[height // 3 + 10: 2 * height // 3 - 10, det_columns]
    identity = image[2 * height // 3 + 10: height - 10, det_columns]

    def saturated(part):  # RdBu_r far from det J = 1 (white): strong red or blue
        rgb = part[..., :3]
        return int(((rgb.max(-1) - rgb.min(-1)) > 0.5).sum())

    assert saturated(deformed) > 200
    assert saturated(identity) == 0  # det J = 1 everywhere: white, no colour


def test_overlay_colours():
    from cir_monai.visualize import _rgb

    fixed = np.zeros((16, 16))
    fixed[4:12, 4:12] = 1.0
    moved = np.roll(fixed, 3, 0)
    rgb = _rgb(fixed, moved)
    assert np.allclose(rgb[8, 8], 1.0)  # both bright: white/grey
    assert np.allclose(rgb[4, 8], [1, 0, 1])  # fixed only: magenta
    assert np.allclose(rgb[13, 8], [0, 1, 0])  # moving only: green


@pytest.mark.parametrize("aligned", [True, False])
def test_overlay_shows_misalignment_before_and_none_after_a_perfect_warp(tmp_path, aligned):
    fixed = torch.zeros(16, 16, 16)
    fixed[4:12, 4:12, 4:12] = 1.0
    moving = torch.roll(fixed, 3, 0)
    image = _image(plot_overlay(fixed, moving, fixed if aligned else moving, tmp_path / "o.png"))
    top, bottom = image[: image.shape[0] // 2], image[image.shape[0] // 2:]

    def misaligned(part):  # magenta (fixed only) and green (moving only) pixels
        return int(_mask(part, (1, 0, 1), 0.2).sum()), int(_mask(part, (0, 1, 0), 0.2).sum())

    assert min(misaligned(top)) > 50  # before: both colours
    assert (max(misaligned(bottom)) == 0) == aligned


def test_learning_curves_draw_each_run_in_its_colour_and_panel(tmp_path):
    """Two runs: the first (C0, blue) has a loss curve and validation at λ = 1 only, the second (C1, orange) only
    validation at λ = 4: each colour appears in the panels its records fill and not in the others."""
    train = [{"iteration": k, "loss": 1.0 / k, "level": 1 if k < 50 else 2} for k in range(1, 101)]
    val = [{"iteration": k, "val_dice@1": 0.5 + k / 1000} for k in range(10, 101, 10)]
    other = [{"iteration": k, "val_dice@4": 0.6} for k in range(10, 101, 10)]
    image = _image(plot_learning_curves({"a": (train, val), "b": ([], other)}, tmp_path / "c.png", lams=(1.0, 4.0)))
    third = image.shape[1] // 3
    blue, orange = _mask(image, TAB_BLUE), _mask(image, (1.0, 0.498, 0.055))
    assert blue[:, :third].sum() > 100 and blue[:, third:2 * third].sum() > 100  # loss and Dice at λ = 1
    assert orange[:, 2 * third:].sum() > 100 and orange[:, third:2 * third].sum() < 20  # Dice at λ = 4 only


def test_paper_fig3_draws_boxes_per_method_and_the_mae_bars(tmp_path):
    """Baselines in blue and the conditional method in red, in the Dice and std|J| panels and (red only) as the two
    MAE bars."""
    from cir_monai.visualize import plot_paper_fig3

    rows = [{"method": f"b{lam:g}" if m == "Baseline" else m, "pair": p, "lam": lam, "dice_mean": 0.5 + 0.01 * i,
             "jac_std": 0.2 + 0.01 * i} for m in ("Baseline", "cond") for lam in (1.0, 4.0)
            for i, p in enumerate("abcd")]
    table = [{"method": "cond", "mae_dsc": 0.02, "mae_jac": 0.03}]
    image = _image(plot_paper_fig3(rows, table, tmp_path / "f.png", {"Baseline": "tab:blue", "cond": "tab:red"},
                                   (1.0, 4.0), lambda lam: f"b{lam:g}"))
    blue, red = _mask(image, TAB_BLUE), _mask(image, TAB_RED)
    width = image.shape[1]
    left, bars = slice(0, int(width * 0.35)), slice(int(width * 0.75), width)
    assert blue[:, left].sum() > 100 and red[:, left].sum() > 100
    assert red[:, bars].sum() > 100 and blue[:, bars].sum() < 20
