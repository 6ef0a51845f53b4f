from __future__ import annotations

import pytest
import torch
from monai.losses import LocalNormalizedCrossCorrelationLoss

from cir_monai.conventions import normalized_to_voxel_ddf
from cir_monai.losses import BoxLNCC, CLapIRNLoss, FoldingLoss, MultiResolutionNCC, SmoothnessLoss, box_sum
from cir_monai.networks import CLapIRN, Warp


@pytest.mark.parametrize("code", ["0.0", "0.1", "0.4", "1.0"])
def test_reference_smoothness_and_similarity(parity, parity_metrics, code):
    ddf = normalized_to_voxel_ddf(parity[f"lite_field_{code}"])
    ref = parity_metrics[f"lite_{code}"]
    assert SmoothnessLoss()(ddf).item() == pytest.approx(ref["smooth_loss"], rel=1e-5)
    warped = Warp()(parity["moving_3d"], ddf)
    # MONAI's LNCC handles epsilon differently from the authors' NCC: close, not identical
    assert MultiResolutionNCC(3, 7, 3)(warped, parity["fixed_3d"]).item() == pytest.approx(ref["ncc_multires_w7_s3"],
                                                                                           abs=5e-4)
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


@pytest.mark.parametrize("shape", [(2, 1, 17, 20, 15), (2, 1, 23, 19)])
@pytest.mark.parametrize("kernel", [3, 5, 7])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_box_window_sums_are_monais_local_ncc(shape, kernel, reduction):
    """BoxLNCC (the refinement's fast path) is MONAI's local NCC, value and gradient, within float rounding;
    random images (the worst case for cancellation in the variances) with a flat region, where the variance floor
    applies."""
    gen = torch.Generator().manual_seed(kernel)
    pred = torch.rand(shape, generator=gen).requires_grad_()
    target = torch.rand(shape, generator=gen)
    target[..., :6, :6] = 0.5
    n = len(shape) - 2
    reference = LocalNormalizedCrossCorrelationLoss(n, kernel_size=kernel, kernel_type="rectangular",
                                                    reduction=reduction)
    want = reference(pred, target)
    (grad_want,) = torch.autograd.grad(want.sum(), pred)
    got = BoxLNCC(n, kernel, reduction=reduction)(pred, target)
    (grad_got,) = torch.autograd.grad(got.sum(), pred)
    assert got.shape == want.shape
    scale = max(1.0, want.detach().abs().max().item())
    torch.testing.assert_close(got, want, atol=1e-5 * scale, rtol=1e-5)
    # window 3 on noise has near-zero variances, which amplify the sums' rounding: bounded against the largest
    torch.testing.assert_close(grad_got, grad_want, atol=1e-4 * grad_want.abs().max().item(), rtol=1e-3)


@pytest.mark.parametrize("shape", [(1, 2, 9, 3, 6), (2, 1, 11, 2)])
@pytest.mark.parametrize("kernel", [1, 3, 7])
def test_box_sum_is_a_zero_padded_box_convolution_and_its_own_adjoint(shape, kernel):
    """box_sum against a convolution with a box of ones (zero padding), on axes shorter than the window too; its
    backward pass (the same sum of the gradient) against autograd's numerical Jacobian, in float64."""
    n = len(shape) - 2
    x = torch.rand(shape, dtype=torch.float64, requires_grad=True)
    conv = torch.nn.functional.conv3d if n == 3 else torch.nn.functional.conv2d
    ones = torch.ones(shape[1], 1, *(kernel,) * n, dtype=torch.float64)
    want = conv(x, ones, padding=kernel // 2, groups=shape[1])
    torch.testing.assert_close(box_sum(x, kernel), want)
    assert torch.autograd.gradcheck(lambda t: box_sum(t, kernel), (x,))


@pytest.mark.parametrize("shape", [(2, 3, 7, 5, 6), (1, 2, 8, 9), (1, 3, 2, 4, 5)])
@pytest.mark.parametrize("reference_scaling", [True, False])
def test_smoothness_closed_form_gradient_is_autograds(shape, reference_scaling):
    """SmoothnessLoss(closed_form_grad=True): the plain loss's value and autograd's gradient through it, per sample
    (the (B,) output weighted by a different number per sample), on an axis of two voxels too."""
    ddf = torch.randn(shape, requires_grad=True)
    weights = torch.rand(shape[0]) + 0.5
    plain = SmoothnessLoss(reference_scaling)
    fast = SmoothnessLoss(reference_scaling, closed_form_grad=True)
    torch.testing.assert_close(fast(ddf), plain(ddf))
    (grad_fast,) = torch.autograd.grad((fast(ddf) * weights).sum(), ddf)
    (grad_plain,) = torch.autograd.grad((plain(ddf) * weights).sum(), ddf)
    torch.testing.assert_close(grad_fast, grad_plain)


def test_box_sums_hold_where_a_brain_meets_the_background():
    """A phantom brain in an empty field (two thirds background, as a 1 mm brain box): where the windows straddle the
    edge the variances are small, and a sum that rounds coarsely (a running sum did) changes the NCC there."""
    from cir_monai.data.synthetic import phantom

    fixed, _ = phantom((40, 48, 40), seed=0)
    moving, _ = phantom((40, 48, 40), seed=1)
    fixed, moving = torch.nn.functional.pad(fixed, (12,) * 6), torch.nn.functional.pad(moving, (12,) * 6)
    pred = moving.clone().requires_grad_()
    reference = LocalNormalizedCrossCorrelationLoss(3, kernel_size=7, kernel_type="rectangular", reduction="none")
    want = reference(pred, fixed)
    (grad_want,) = torch.autograd.grad(want.mean(), pred)
    got = BoxLNCC(3, 7, reduction="none")(pred, fixed)
    (grad_got,) = torch.autograd.grad(got.mean(), pred)
    assert (fixed == 0).float().mean() > 0.6
    assert abs(got.mean().item() - want.mean().item()) < 1e-6
    torch.testing.assert_close(got, want, atol=2e-3, rtol=0)
    torch.testing.assert_close(grad_got, grad_want, atol=1e-4 * grad_want.abs().max().item(), rtol=1e-3)


def test_box_sums_give_the_same_similarity_pyramid():
    image, other = torch.rand(1, 1, 24, 28, 20), torch.rand(1, 1, 24, 28, 20)
    torch.testing.assert_close(MultiResolutionNCC(3, 7, 3, box_sums=True)(image, other),
                               MultiResolutionNCC(3, 7, 3)(image, other), atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="equal shapes"):
        BoxLNCC(3, 3)(image, other[..., :-1])


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


def test_label_dice_term_rewards_overlap_and_serves_coarse_levels():
    from cir_monai.losses import LabelDiceLoss

    label = torch.zeros(1, 1, 16, 16, 16, dtype=torch.long)
    label[..., 4:12, 4:12, 4:8] = 1
    label[..., 4:12, 4:12, 8:12] = 2
    shifted = torch.roll(label, 3, dims=2)
    term = LabelDiceLoss(3)
    zero = torch.zeros(1, 3, 16, 16, 16, requires_grad=True)
    assert term(zero, label, label).item() == pytest.approx(0.0, abs=1e-4)
    misaligned = term(zero, shifted, label)
    assert misaligned.item() > 0.2
    misaligned.sum().backward()
    assert zero.grad.abs().sum() > 0  # the field gets a gradient from the label term
    back = torch.zeros(1, 3, 16, 16, 16)
    back[:, 0] = 3.0  # moving(x + 3) = label(x)
    assert term(back, shifted, label).item() < 0.05
    # a coarse level: labels pooled twice to its grid (soft, so aligned is not 0, but better than misaligned)
    coarse = term(torch.zeros(1, 3, 4, 4, 4), label, label)
    assert coarse.shape == (1,) and coarse.item() < term(torch.zeros(1, 3, 4, 4, 4), shifted, label).item()
    with pytest.raises(ValueError, match="does not pool"):
        term(torch.zeros(1, 3, 5, 5, 5), label, label)


def test_clapirn_loss_adds_the_label_term_only_when_weighted():
    from cir_monai.losses import CLapIRNLoss
    from cir_monai.networks import CLapIRN

    torch.manual_seed(0)
    net = CLapIRN(3, start_channels=2, num_levels=2).train()
    fixed, moving = torch.rand(1, 1, 16, 16, 16), torch.rand(1, 1, 16, 16, 16)
    labels = (fixed * 3).long(), (moving * 3).long()
    out = net(moving, fixed, 1.0)
    plain = CLapIRNLoss(3, 2)(out, 1.0)
    weighted = CLapIRNLoss(3, 2, label_weight=2.0)(out, 1.0, labels[1], labels[0])
    assert plain["label"].item() == 0.0
    assert weighted["loss"].item() == pytest.approx(plain["loss"].item() + 2.0 * weighted["label"].item(), rel=1e-5)
    with pytest.raises(ValueError, match="needs moving_label"):
        CLapIRNLoss(3, 2, label_weight=1.0)(out, 1.0)


def test_field_error_is_the_mean_end_point_error_in_the_foreground_at_every_level():
    from cir_monai.losses import FieldErrorLoss

    term = FieldErrorLoss(3)
    fixed = torch.zeros(1, 1, 16, 16, 16)
    fixed[..., 4:12, 4:12, 4:12] = 1.0
    truth = torch.zeros(1, 3, 16, 16, 16)
    truth[:, 0], truth[:, 2] = 3.0, 4.0  # |truth| = 5 voxels everywhere
    assert term(truth.clone(), truth, fixed).item() == pytest.approx(0.0, abs=1e-2)
    assert term(torch.zeros_like(truth), truth, fixed).item() == pytest.approx(5.0, rel=1e-4)
    # only the foreground counts: an error outside the brain costs nothing
    off = truth.clone()
    off[..., :2, :, :] += 10.0
    assert term(off, truth, fixed).item() == pytest.approx(0.0, abs=1e-2)
    # a coarse level: its field is in voxels of its own grid (half the size: half the voxels)
    coarse_fixed = torch.nn.functional.avg_pool3d(fixed, 2)
    coarse = torch.zeros(1, 3, 8, 8, 8)
    coarse[:, 0], coarse[:, 2] = 1.5, 2.0
    assert term(coarse, truth, coarse_fixed).item() == pytest.approx(0.0, abs=1e-2)
    assert term(torch.zeros(1, 3, 8, 8, 8), truth, coarse_fixed).item() == pytest.approx(2.5, rel=1e-4)
    with pytest.raises(ValueError, match="does not pool"):
        term(torch.zeros(1, 3, 5, 5, 5), truth, torch.ones(1, 1, 5, 5, 5))


def test_clapirn_loss_adds_the_field_term_only_when_weighted():
    torch.manual_seed(0)
    net = CLapIRN(3, start_channels=2, num_levels=2).train()
    fixed, moving = torch.rand(1, 1, 16, 16, 16), torch.rand(1, 1, 16, 16, 16)
    truth = torch.randn(1, 3, 16, 16, 16)
    out = net(moving, fixed, 1.0)
    plain = CLapIRNLoss(3, 2)(out, 1.0)
    weighted = CLapIRNLoss(3, 2, field_weight=0.5)(out, 1.0, ddf_truth=truth)
    assert plain["field"].item() == 0.0 and weighted["field"].item() > 0.5
    assert weighted["loss"].item() == pytest.approx(plain["loss"].item() + 0.5 * weighted["field"].item(), rel=1e-5)
    with pytest.raises(ValueError, match="needs ddf_truth"):
        CLapIRNLoss(3, 2, field_weight=1.0)(out, 1.0)


def test_field_error_pools_a_varying_truth_to_the_coarse_grid():
    """A truth that varies in space (a ramp along axis 0, 0.5 voxel per voxel): at a level with half the grid the
    matching field is the truth at the coarse voxels' centres (fine index 2j) halved, and the error is measured
    in the level's own foreground; a field that forgets the halving, or samples the wrong voxels, is penalised."""
    from cir_monai.losses import FieldErrorLoss

    term = FieldErrorLoss(3)
    truth = torch.zeros(1, 3, 16, 16, 16)
    truth[:, 0] = 0.5 * torch.arange(16.0).view(16, 1, 1)
    coarse_fixed = torch.zeros(1, 1, 8, 8, 8)
    coarse_fixed[..., 1:7, 1:7, 1:7] = 1.0  # interior: the pooling windows there hold 3 fine voxels per axis
    matching = truth[..., ::2, ::2, ::2] / 2
    assert term(matching, truth, coarse_fixed).item() == pytest.approx(0.0, abs=1e-2)
    assert term(truth[..., ::2, ::2, ::2], truth, coarse_fixed).item() > 0.5  # not halved: off by 0.5·j voxels
    shifted = truth[..., 1::2, ::2, ::2] / 2  # the neighbouring fine voxels: 0.25 voxel off everywhere
    assert term(shifted, truth, coarse_fixed).item() == pytest.approx(0.25, abs=1e-2)
