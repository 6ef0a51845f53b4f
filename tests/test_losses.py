from __future__ import annotations

import pytest
import torch

from cir_monai.conventions import normalized_to_voxel_ddf
from cir_monai.losses import CLapIRNLoss, FoldingLoss, MultiResolutionNCC, SmoothnessLoss
from cir_monai.networks import CLapIRN, Warp


@pytest.mark.parametrize("code", ["0.0", "0.1", "0.4", "1.0"])
def test_reference_smoothness_and_similarity(parity, parity_metrics, code):
    ddf = normalized_to_voxel_ddf(parity[f"lite_field_{code}"])
    ref = parity_metrics[f"lite_{code}"]
    assert SmoothnessLoss()(ddf).item() == pytest.approx(ref["smooth_loss"], rel=1e-5)
    warped = Warp()(parity["moving_3d"], ddf)
    # MONAI's LNCC handles epsilon differently from the authors' NCC: close, not identical
    assert MultiResolutionNCC(3, 7, 3)(warped, parity["fixed_3d"]).item() == pytest.approx(ref["ncc_multires_w7_s3"], abs=5e-4)
    before = MultiResolutionNCC(3, 7, 1)(parity["moving_3d"], parity["fixed_3d"]).item()
    assert before == pytest.approx(ref["ncc_w7_before"], abs=5e-4)


def test_smoothness_of_a_ramp():
    ddf = torch.zeros(1, 3, 4, 5, 6)
    ddf[:, 1] = torch.arange(5.0).view(1, 5, 1) * 0.5  # gradient 0.5 along axis 1 only
    # mean over all channels and voxels of the squared difference, then over the 3 axes
    assert SmoothnessLoss(reference_scaling=False)(ddf).item() == pytest.approx(0.25 / 3 / 3)
    assert SmoothnessLoss()(ddf).item() == pytest.approx(4 * 0.25 / 3 / 3)


def test_ncc_of_identical_images_is_minus_sum_of_weights():
    image = torch.rand(2, 1, 16, 16, 16) + 0.1
    assert torch.allclose(MultiResolutionNCC(3, 7, 3)(image, image), torch.full((2,), -1.75), atol=1e-3)
    with pytest.raises(ValueError, match="kernel_size"):
        MultiResolutionNCC(3, 4, 1)


def test_folding_loss_is_positive_only_for_folds():
    assert FoldingLoss()(torch.zeros(1, 2, 5, 5)).item() == 0.0
    ddf = torch.zeros(1, 2, 5, 5)
    ddf[0, 0] = -2 * torch.arange(5.0).view(5, 1)  # x -> -x along axis 0
    assert FoldingLoss()(ddf).item() == pytest.approx(1.0)


def test_loss_weights_lambda_per_sample_and_backpropagates():
    torch.manual_seed(0)
    net = CLapIRN(3, start_channels=2).train()
    moving, fixed = torch.rand(2, 1, 16, 16, 16), torch.rand(2, 1, 16, 16, 16)
    lam = torch.tensor([0.0, 10.0])
    out = net(moving, fixed, lam)
    terms = CLapIRNLoss(3, folding_weight=0.5)(out, lam)
    expected = terms["similarity"] + lam * terms["smoothness"] + 0.5 * terms["folding"]
    assert torch.allclose(terms["loss"], expected.mean())
    terms["loss"].backward()
    assert net.levels[-1].head[2].weight.grad.abs().sum() > 0


def test_progressive_level_uses_its_window():
    net = CLapIRN(3, start_channels=2).train()
    out = net(torch.rand(1, 1, 16, 16, 16), torch.rand(1, 1, 16, 16, 16), 1.0, active_levels=1)
    loss = CLapIRNLoss(3)
    assert [m.kernel_size for m in loss.similarity[0].ncc] == [3]
    assert [m.kernel_size for m in loss.similarity[2].ncc] == [7, 5, 3]
    assert torch.isfinite(loss(out, 1.0)["loss"])
