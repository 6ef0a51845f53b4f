from __future__ import annotations

import torch

from cir_monai.data import phantom, random_diffeomorphic_ddf, synthetic_pair
from cir_monai.metrics import jacobian_statistics, mean_dice


def test_random_ddf_is_invertible_and_seeded():
    ddf = random_diffeomorphic_ddf((24, 28, 20), max_displacement=4.0, sigma=4.0, seed=3)
    assert ddf.shape == (1, 3, 24, 28, 20) and ddf.abs().max() > 1.0
    assert jacobian_statistics(ddf)["folding_pct"].item() == 0.0
    assert torch.equal(ddf, random_diffeomorphic_ddf((24, 28, 20), 4.0, 4.0, seed=3))
    assert not torch.equal(ddf, random_diffeomorphic_ddf((24, 28, 20), 4.0, 4.0, seed=4))


def test_phantom_labels_and_intensities():
    image, label = phantom((32, 36, 32))
    assert set(torch.unique(label).tolist()) == {0, 1, 2, 3}
    assert image.min() == 0 and image.max() <= 1
    assert torch.all(image[label == 0] == 0)


def test_phantom_pair_is_seeded_and_misaligned():
    pair = synthetic_pair((32, 36, 32), seed=1)
    assert mean_dice(pair["moving_label"], pair["fixed_label"]).item() < 0.97  # they differ
    assert torch.equal(pair["moving"], synthetic_pair((32, 36, 32), seed=1)["moving"])
    image = pair["fixed"]
    assert image.max() == 1.0 and torch.all(image[pair["fixed_label"] == 3] > image[pair["fixed_label"] == 1].mean())
