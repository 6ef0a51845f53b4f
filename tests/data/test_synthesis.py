"""The synthesis pieces: fields invert, affines are what they say, intensity changes keep the background 0."""

from __future__ import annotations

import math

import pytest
import torch

from cir_monai.data.generative import SynthConfig, random_label_map
from cir_monai.data.pairs import PairConfig, make_subject
from cir_monai.data.synthesis import (
    SubjectConfig,
    degrade,
    integrate_svf,
    multiscale_svf,
    random_affine_ddf,
    random_deformation,
    random_diffeomorphic_ddf,
    random_subject,
    rotation_matrix,
    smooth_noise,
    synthesize_image,
)
from cir_monai.data.synthetic import phantom
from cir_monai.metrics import jacobian_statistics
from cir_monai.networks import Warp

SHAPE = (40, 48, 40)


def test_fields_are_invertible():
    gen = torch.Generator().manual_seed(4)
    velocity = multiscale_svf(SHAPE, (16.0, 8.0), (4.0, 2.0), gen)
    forward, inverse = integrate_svf(velocity), integrate_svf(-velocity)
    residual = forward + Warp("bilinear", "border")(inverse, forward)  # x + φ(x) + φ⁻¹(x + φ(x)) - x
    inner = residual[:, :, 4:-4, 4:-4, 4:-4]
    assert forward.abs().max() > 1.0  # a real deformation (voxels)
    assert inner.abs().max() < 0.1 * forward.abs().max(), (inner.abs().max(), forward.abs().max())
    assert inner.abs().mean() < 0.02


def test_multiscale_svf_needs_one_amplitude_per_scale():
    with pytest.raises(ValueError, match="differ in length: 2 vs 1"):
        multiscale_svf(SHAPE, (16.0, 8.0), (4.0,), torch.Generator())


def test_random_ddf_is_invertible_and_seeded():
    ddf = random_diffeomorphic_ddf((24, 28, 20), max_displacement=4.0, sigma=4.0, seed=3)
    assert ddf.shape == (1, 3, 24, 28, 20) and ddf.abs().max() > 1.0
    assert jacobian_statistics(ddf)["folding_pct"].item() == 0.0
    assert torch.equal(ddf, random_diffeomorphic_ddf((24, 28, 20), 4.0, 4.0, seed=3))
    assert not torch.equal(ddf, random_diffeomorphic_ddf((24, 28, 20), 4.0, 4.0, seed=4))


def test_smooth_noise_is_scaled_per_channel():
    noise = smooth_noise((20, 24, 20), 3, sigma=3.0, generator=torch.Generator().manual_seed(0))
    assert noise.shape == (1, 3, 20, 24, 20)
    assert torch.allclose(noise.flatten(2).abs().amax(-1), torch.ones(1, 3))


def test_rotation_matrix_is_a_rotation():
    rot = rotation_matrix(torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64))
    assert torch.allclose(rot @ rot.T, torch.eye(3, dtype=torch.float64), atol=1e-12)
    assert torch.det(rot).item() == pytest.approx(1.0)
    quarter = rotation_matrix(torch.tensor([math.pi / 2], dtype=torch.float64))  # 2D: x ↦ (−y, x)
    assert torch.allclose(quarter @ torch.tensor([1.0, 0.0], dtype=torch.float64),
                          torch.tensor([0.0, 1.0], dtype=torch.float64), atol=1e-12)


def test_random_affine_ddf_is_its_matrix_about_the_centre():
    shape = (9, 11, 7)
    matrix, ddf = random_affine_ddf(shape, PairConfig(rotation_deg=10.0, scale=0.1, translation=0.0),
                                    torch.Generator().manual_seed(2))
    assert ddf.shape == (1, 3, *shape)
    assert not torch.allclose(matrix, torch.eye(3, dtype=torch.float64))
    centre = tuple((s - 1) // 2 for s in shape)  # odd sides: the centre is a voxel, and it does not move
    assert ddf[0, :, centre[0], centre[1], centre[2]].abs().max() < 1e-5
    corner = torch.zeros(3, dtype=torch.float64) - torch.tensor([(s - 1) / 2 for s in shape], dtype=torch.float64)
    expected = matrix @ corner - corner  # the displacement of voxel (0, 0, 0)
    assert torch.allclose(ddf[0, :, 0, 0, 0].double(), expected, atol=1e-5)


def test_degrade_keeps_the_background_and_the_contrast_order():
    gen = torch.Generator().manual_seed(0)
    image = torch.zeros(1, 1, 16, 16, 16)
    image[..., 4:12, 4:12, 4:12] = 0.5
    image[..., 6:10, 6:10, 6:10] = 1.0
    plain = degrade(image, 1.0, torch.zeros(1), 0.0, gen)
    assert torch.equal(plain, image)  # gamma 1, no bias, no noise: the image itself (already max 1)
    changed = degrade(image, 2.0, 0.2 * torch.ones(1, 1, 16, 16, 16), 0.01, gen)
    assert torch.all(changed[image == 0] == 0) and changed.max() == 1.0 and changed.min() >= 0
    assert changed[image == 1.0].mean() > 2 * changed[image == 0.5].mean()  # gamma 2: 0.5 → ~0.25 of the max
    again = degrade(image, 2.0, 0.2 * torch.ones(1, 1, 16, 16, 16), 0.01, torch.Generator().manual_seed(0))
    first = degrade(image, 2.0, 0.2 * torch.ones(1, 1, 16, 16, 16), 0.01, torch.Generator().manual_seed(0))
    assert torch.equal(again, first)  # the noise comes from the generator passed in


def test_image_intensities_follow_labels_without_artefacts():
    config = SynthConfig(blur=0.0, bias=0.0, gamma=0.0, noise=0.0)
    label = random_label_map(SHAPE, config, torch.Generator().manual_seed(0))
    means = torch.linspace(0.0, 1.0, int(label.max()) + 1)
    image = synthesize_image(label, torch.Generator().manual_seed(1), config, means=means)
    expected = means[label] / means[label].max()
    assert torch.allclose(image, expected, atol=1e-6)  # one intensity per label, nothing else
    assert 1 < len(torch.unique(label)) <= config.num_labels + 1


@pytest.mark.parametrize("shape, sigma", [((20, 24, 18), 2.0), ((20, 24, 18), 6.0), ((30, 40), 3.3), ((12, 9), 5.0)])
def test_gaussian_smooth_is_monais_gaussian_filter(shape, sigma):
    """The banded-matrix Gaussian gives MONAI's GaussianFilter (kernel longer than the axis included) to 1e-6."""
    from monai.networks.layers import GaussianFilter

    from cir_monai.data.synthesis import gaussian_smooth

    x = torch.randn(1, 2, *shape, generator=torch.Generator().manual_seed(3))
    expected = GaussianFilter(len(shape), sigma=sigma)(x)
    assert (gaussian_smooth(x, sigma) - expected).abs().max() <= 1e-6 * expected.abs().max()


def test_coarse_integration_with_affine_inverts():
    """The recipe's inverse on the coarse-integration path (the held-out groups' and the generator's settings, here
    with an affine too): ``φ⁻¹ ∘ φ`` is the identity to interpolation error inside the grid."""
    config = SubjectConfig(velocity_sigmas=(6.4, 3.2), velocity_amplitudes=(4.0, 2.0), random_amplitudes=True,
                           integration_factor=2, rotation_deg=5.0, scale=0.05, translation=2.0)
    gen = torch.Generator().manual_seed(3)
    ddf, inverse = random_deformation(SHAPE, config, gen, inverse=True)
    residual = (ddf + Warp("bilinear", "border")(inverse, ddf)).norm(dim=1)[:, 6:-6, 6:-6, 6:-6]
    assert ddf.norm(dim=1).mean() > 1.0  # a deformation worth inverting
    assert residual.mean() < 0.05 and residual.amax() < 0.5, (residual.mean(), residual.amax())
    again, _ = random_deformation(SHAPE, config, torch.Generator().manual_seed(3))
    assert torch.equal(ddf, again)


def test_subject_recipe_checks_its_settings_and_keeps_the_label_type():
    with pytest.raises(ValueError, match="differ in length"):
        random_deformation(SHAPE, SubjectConfig(velocity_sigmas=(4.0, 2.0), velocity_amplitudes=(1.0,)),
                           torch.Generator())
    image, label = phantom(SHAPE, seed=0)
    subject = random_subject(image, label.to(torch.int16), seed=4)
    assert subject["label"].dtype == torch.int16 and "inverse" not in subject
    moved = Warp("bilinear", "zeros")(image, subject["ddf"])
    assert torch.all(subject["image"][moved <= 1e-3] == 0)  # background exactly 0 (method.md §4)
    # the embedded pairs' settings are the recipe's with one velocity component over a tenth of the largest side
    assert PairConfig().subject(SHAPE).velocity_sigmas == (0.1 * 48,)


def test_embedded_subjects_keep_the_values_of_their_own_recipe():
    """``make_subject`` (the embedded pairs, the shipped weights' training pool) through the one recipe gives what the
    embedded pairs' own recipe gave before it (commit ec9fffe): regression values, sums over a phantom subject, 1e-6
    relative (float rounding of other threads; any change to the recipe's draws moves them by far more)."""
    image, label = phantom((40, 48, 36), seed=0)
    subject = make_subject(image, label, seed=7, inverse=True)
    expected = {"image": (8340.523982400213, 8340.523982400213), "ddf": (60364.39798970753, 263325.71295724204),
                "label": (28123.0, 28123.0), "inverse": (-56719.07173612178, 263318.35849874583)}
    for key, (total, absolute) in expected.items():
        values = subject[key].double()
        assert values.sum().item() == pytest.approx(total, rel=1e-6), key
        assert values.abs().sum().item() == pytest.approx(absolute, rel=1e-6), key
