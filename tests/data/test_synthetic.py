"""The phantom and its pairs: labels and intensities as documented, seeded, misaligned."""

from __future__ import annotations

import torch

from cir_monai.data import phantom, synthetic_pair
from cir_monai.metrics import mean_dice


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
