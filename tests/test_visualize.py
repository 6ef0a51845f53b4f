"""Pictures: files that open, are not blank, and show what they claim."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import torch

from cir_monai.visualize import _slice, plot_lambda_panel, plot_overlay, plot_tradeoff


def _image(path):
    image = matplotlib.image.imread(str(path))
    assert image.ndim == 3 and float(image[..., :3].std()) > 0.05, f"{path} looks blank"
    return image


def test_slices_follow_the_view_axes():
    volume = np.zeros((4, 5, 6))
    volume[3, 1, 2] = 1.0
    # axial cuts z: shown (rows = y, columns = x)
    assert _slice(volume, 2, 2).shape == (5, 4) and _slice(volume, 2, 2)[1, 3] == 1.0
    assert _slice(volume, 1, 1).shape == (6, 4) and _slice(volume, 1, 1)[2, 3] == 1.0  # coronal: (z, x)
    assert _slice(volume, 0, 3).shape == (6, 5) and _slice(volume, 0, 3)[2, 1] == 1.0  # sagittal: (z, y)


def test_tradeoff_and_panel(tmp_path):
    per_lam = {"before": {"dice_mean": 0.5, "jac_std": 0.0, "folding_pct": 0.0}}
    per_lam.update({f"{lam:g}": {"dice_mean": 0.7 - 0.01 * lam, "jac_std": 0.3 - 0.02 * lam, "folding_pct": 0.1 / (1 + lam)}
                    for lam in (0, 1, 4, 10)})
    _image(plot_tradeoff(per_lam, tmp_path / "t.png", lam_star=1.0, max_folding=0.05))
    g = torch.Generator().manual_seed(0)
    fixed = torch.rand(16, 20, 12, generator=g)
    ddf = torch.zeros(3, 16, 20, 12)
    ddf[0] = 1.5 * torch.sin(torch.linspace(0, 3, 20))[None, :, None]
    _image(plot_lambda_panel(fixed, fixed, {0.1: (fixed, ddf), 8.0: (fixed, 0 * ddf)}, tmp_path / "p.png"))


def test_overlay_colours():
    from cir_monai.visualize import _rgb

    fixed = np.zeros((16, 16))
    fixed[4:12, 4:12] = 1.0
    moved = np.roll(fixed, 3, 0)
    rgb = _rgb(fixed, moved)
    assert np.allclose(rgb[8, 8], 1.0)  # both bright: white/grey
    assert np.allclose(rgb[4, 8], [1, 0, 1])  # fixed only: magenta
    assert np.allclose(rgb[13, 8], [0, 1, 0])  # moving only: green


def test_overlay_png(tmp_path):
    fixed = torch.zeros(16, 16, 16)
    fixed[4:12, 4:12, 4:12] = 1.0
    _image(plot_overlay(fixed, torch.roll(fixed, 3, 0), fixed, tmp_path / "o.png"))
