from __future__ import annotations

import pytest
import torch

from cir_monai.metrics import dice_per_label, hd95_per_label, jacobian_determinant, jacobian_statistics, mean_dice


def affine_ddf(matrix: torch.Tensor, spatial) -> torch.Tensor:
    """DDF of x -> A x (voxels)."""
    grid = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float64) for s in spatial], indexing="ij"))
    moved = torch.einsum("ij,j...->i...", matrix.double(), grid)
    return (moved - grid)[None].float()


@pytest.mark.parametrize("scheme", ["forward", "central", "central4"])
def test_identity_and_affine(scheme):
    spatial = (6, 7, 8)
    det = jacobian_determinant(torch.zeros(1, 3, *spatial), scheme)
    assert torch.allclose(det, torch.ones_like(det))
    matrix = torch.tensor([[1.2, 0.1, 0.0], [0.0, 0.9, 0.2], [0.05, 0.0, 1.1]])
    det = jacobian_determinant(affine_ddf(matrix, spatial), scheme)
    assert torch.allclose(det, torch.full_like(det, torch.linalg.det(matrix).item()), atol=1e-4)
    expected_shape = {"forward": (1, 5, 6, 7), "central": (1, *spatial), "central4": (1, 2, 3, 4)}[scheme]
    assert det.shape == expected_shape


def test_central4_is_exact_for_a_cubic_field():
    """The 5-point stencil differentiates polynomials up to degree 4 exactly: u_0 = 0.01·x³ gives
    det J = 1 + 0.03·x², where the 2-point central difference is off by 0.01 everywhere."""
    x = torch.arange(9, dtype=torch.float64).view(9, 1, 1).expand(9, 7, 7)
    ddf = torch.zeros(1, 3, 9, 7, 7, dtype=torch.float64)
    ddf[0, 0] = 0.01 * x**3
    det = jacobian_determinant(ddf, "central4")
    expected = 1 + 0.03 * torch.arange(2, 7, dtype=torch.float64).view(1, 5, 1, 1) ** 2
    assert torch.allclose(det, expected.expand_as(det), atol=1e-12)
    central = jacobian_determinant(ddf, "central")[:, 2:-2, 2:-2, 2:-2]
    assert torch.allclose(central - det, torch.full_like(det, 0.01), atol=1e-12)


def test_2d_determinant_and_folding():
    matrix = torch.tensor([[-1.0, 0.0], [0.0, 2.0]])  # a reflection folds every voxel
    stats = jacobian_statistics(affine_ddf(matrix, (5, 6)))
    assert stats["jac_mean"].item() == pytest.approx(-2.0, abs=1e-5)
    assert stats["folding_pct"].item() == pytest.approx(100.0)
    assert stats["jac_std"].item() == pytest.approx(0.0, abs=1e-5)


def test_sdlogj_of_two_regions():
    ddf = torch.zeros(1, 2, 3, 9)
    ddf[0, 1, :, 5:] = torch.arange(4.0)  # stretch ×2 along the last axis on part of the grid
    stats = jacobian_statistics(ddf)  # forward differences: det 1 on 5 of 8 columns, 2 on 3
    dets = torch.tensor([1.0] * 5 + [2.0] * 3)
    assert stats["sdlogj"].item() == pytest.approx(dets.log().std(correction=0).item(), abs=1e-6)
    assert stats["jac_std"].item() == pytest.approx(dets.std(correction=0).item(), abs=1e-6)
    assert stats["jac_mean"].item() == pytest.approx(11 / 8, abs=1e-6)


def test_bad_ddf():
    with pytest.raises(ValueError, match="ddf must have shape"):
        jacobian_determinant(torch.zeros(1, 2, 4, 4, 4))
    with pytest.raises(ValueError, match="scheme"):
        jacobian_determinant(torch.zeros(1, 2, 4, 4), "backward")


def test_dice_per_label_multi_label():
    target = torch.zeros(1, 1, 4, 10, dtype=torch.int64)
    target[..., :5] = 3
    target[..., 5:] = 7
    pred = target.clone()
    pred[..., 4] = 7  # label 3 loses one column to label 7
    scores, labels = dice_per_label(pred, target)
    assert labels == [3, 7]
    assert scores[0, 0].item() == pytest.approx(2 * 16 / (16 + 20))
    assert scores[0, 1].item() == pytest.approx(2 * 20 / (24 + 20))
    assert mean_dice(pred, target).item() == pytest.approx(scores.mean().item())
    assert mean_dice(target, target).item() == pytest.approx(1.0)


def test_dice_only_labels_present_in_both():
    target = torch.tensor([[[[1, 1, 2, 2]]]])
    pred = torch.tensor([[[[1, 1, 1, 5]]]])
    _, labels = dice_per_label(pred, target)
    assert labels == [1]


def test_hd95_of_a_shift():
    target = torch.zeros(1, 1, 20, 20, 20)
    target[:, :, 5:15, 5:15, 5:15] = 1
    pred = torch.roll(target, shifts=2, dims=2)
    hd, labels = hd95_per_label(pred, target, spacing=(1.5, 1.0, 1.0))
    assert labels == [1] and hd[0, 0].item() == pytest.approx(3.0)


def test_label_shape_mismatch():
    with pytest.raises(ValueError, match="label maps"):
        dice_per_label(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
