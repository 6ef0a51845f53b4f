from __future__ import annotations

import pytest
import torch

from cir_monai.data import PairConfig, make_pair, make_subject, phantom
from cir_monai.metrics import dice_per_label, jacobian_statistics, mean_dice
from cir_monai.networks import Warp


@pytest.fixture(scope="module")
def template():
    return phantom((40, 48, 40), seed=3)


def test_subject_deformation_is_invertible_and_seeded(template):
    image, label = template
    subject = make_subject(image, label, seed=5)
    stats = jacobian_statistics(subject["ddf"])
    assert stats["folding_pct"].item() == 0.0 and stats["jac_std"].item() > 0.01
    again = make_subject(image, label, seed=5)
    assert torch.equal(subject["image"], again["image"]) and torch.equal(subject["label"], again["label"])
    assert not torch.equal(subject["image"], make_subject(image, label, seed=6)["image"])


def test_labels_follow_their_images(template):
    image, label = template
    subject = make_subject(image, label, seed=2)
    relabelled = Warp("nearest", "zeros")(label.float(), subject["ddf"]).round().long()
    scores, _ = dice_per_label(relabelled, subject["label"])
    assert torch.all(scores == 1.0)
    img = subject["image"]
    means = [img[subject["label"] == k].mean().item() for k in (1, 2, 3)]
    assert means[0] < means[1] < means[2]  # each label sits on its own tissue
    # background exactly 0 away from the brain's edge (the image is warped bilinearly, labels by nearest)
    near_brain = torch.nn.functional.max_pool3d((subject["label"] > 0).float(), 5, stride=1, padding=2) > 0
    assert torch.all(img[~near_brain] == 0) and img.max() == 1.0


def test_pair_is_reproducible_and_misaligned(template):
    image, label = template
    pair = make_pair(image, label, seed=11)
    assert set(pair) == {"fixed", "moving", "fixed_label", "moving_label"}
    assert torch.equal(pair["moving"], make_pair(image, label, seed=11)["moving"])
    assert mean_dice(pair["moving_label"], pair["fixed_label"]).item() < 0.95
    quiet = make_pair(image, label, seed=11,
                      config=PairConfig(max_displacement=0.0, rotation_deg=0, scale=0, translation=0))
    assert mean_dice(quiet["moving_label"], quiet["fixed_label"]).item() == pytest.approx(1.0)


def test_subject_inverse_undoes_its_field_and_changes_nothing_else(template):
    """``inverse``: φ⁻¹∘φ ≈ id inside the grid (the diffeomorphism's negated velocity, the affine exactly), and the
    subject's image, labels and field are bit-identical with or without it (the training pairs keep their values)."""
    image, label = template
    plain = make_subject(image, label, seed=5)
    subject = make_subject(image, label, seed=5, inverse=True)
    assert all(torch.equal(plain[key], subject[key]) for key in plain)
    ddf, inverse = subject["ddf"], subject["inverse"]
    inner = (slice(None), slice(None), *[slice(4, -4)] * 3)
    for forward, backward in ((ddf, inverse), (inverse, ddf)):
        residual = (forward + Warp("bilinear", "border")(backward, forward)).norm(dim=1)[inner[:1] + inner[2:]]
        assert residual.mean().item() < 0.05 and residual.max().item() < 0.3  # voxels; |ddf| reaches ~4
    assert ddf.norm(dim=1).max().item() > 2.0


def test_pair_truth_maps_the_moving_subject_onto_the_fixed_one(template):
    """``moving(x + u(x)) = fixed(x)``: following ``u`` then the moving subject's field lands where the fixed subject's
    field does (``u + d_m∘(id + u) = d_f``), and the moving labels warped by ``u`` match the fixed labels far better
    than unregistered (nearest-neighbour resampling twice keeps that below 1 on this small phantom)."""
    from cir_monai.data.pairs import pair_truth

    image, label = template
    fixed, moving = make_subject(image, label, seed=8), make_subject(image, label, seed=9, inverse=True)
    truth = pair_truth(fixed["ddf"], moving["inverse"])
    landing = truth + Warp("bilinear", "border")(moving["ddf"], truth) - fixed["ddf"]
    assert landing.norm(dim=1)[:, 4:-4, 4:-4, 4:-4].mean().item() < 0.05  # voxels
    warped = Warp("nearest", "zeros")(moving["label"].float(), truth).round().long()
    before, after = mean_dice(moving["label"], fixed["label"]).item(), mean_dice(warped, fixed["label"]).item()
    assert after > 0.85 and after > before + 0.1
