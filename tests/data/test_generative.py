"""The generative pairs: labels follow images, fields invert, seeds reproduce, contrasts differ when asked."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cir_monai.data.generative import SOURCES, SynthConfig, synth_pair
from cir_monai.data.synthetic import phantom
from cir_monai.data.training import SyntheticPairDataset

SHAPE = (40, 48, 40)


@pytest.fixture(scope="module")
def template():
    return phantom(SHAPE, seed=1)


@pytest.mark.parametrize("source", SOURCES)
def test_labels_follow_images(template, source):
    pair = synth_pair(3, SynthConfig(), *template, source=source)
    assert pair["source"] == source
    for role in ("fixed", "moving"):
        image, label = pair[role], pair[f"{role}_label"]
        assert image.shape == label.shape == (1, 1, *SHAPE)
        assert image.min() >= 0 and image.max() == pytest.approx(1.0)
        assert torch.all(image[label == 0] == 0)  # background exactly 0 where the label is background
        assert (image[label > 0] > 0).float().mean() > 0.99  # and the labelled region is imaged


def test_reproducible_from_a_seed(template):
    a = synth_pair(11, SynthConfig(), *template)
    b = synth_pair(11, SynthConfig(), *template)
    c = synth_pair(12, SynthConfig(), *template)
    for key in ("fixed", "moving", "fixed_label", "moving_label"):
        assert torch.equal(a[key], b[key])
    assert not torch.equal(a["fixed"], c["fixed"])
    dataset = SyntheticPairDataset(*template, seed=100)
    assert torch.equal(dataset[5]["moving"], dataset[5]["moving"])
    assert torch.equal(dataset[5]["fixed"], synth_pair(105, SynthConfig(), *template)["fixed"][0])


def _label_means(image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    values = [v for v in torch.unique(label).tolist() if v > 0]
    return torch.stack([image[label == v].mean() for v in values])


@pytest.mark.parametrize("same", [True, False])
def test_contrasts_differ_when_asked(template, same):
    config = dataclasses.replace(SynthConfig(), same_contrast=same, blur=0.0, bias=0.0, gamma=0.0, noise=0.0)
    pair = synth_pair(7, config, *template, source="random")
    # the same labelled anatomy in both images (same label values, independent deformations)
    assert set(torch.unique(pair["fixed_label"]).tolist()) == set(torch.unique(pair["moving_label"]).tolist())
    fixed = _label_means(pair["fixed"], pair["fixed_label"])
    moving = _label_means(pair["moving"], pair["moving_label"])
    correlation = torch.corrcoef(torch.stack([fixed, moving]))[0, 1]
    if same:
        assert correlation > 0.999
    else:
        assert correlation < 0.9


def test_variability_gives_each_subject_its_own_anatomy(template):
    plain = synth_pair(9, SynthConfig(), *template, source="random")
    varied = synth_pair(9, dataclasses.replace(SynthConfig(), variability=0.35), *template, source="random")
    # with the same seed the shared label map and deformations are the same; each subject's boundaries move
    changed = (varied["fixed_label"] != plain["fixed_label"]).float().mean().item()
    assert 0.01 < changed < 0.4, changed
    assert set(torch.unique(varied["moving_label"]).tolist()) <= set(range(SynthConfig().num_labels + 1))
    template_pair = synth_pair(9, dataclasses.replace(SynthConfig(), variability=0.35), *template, source="template")
    assert torch.equal(template_pair["fixed_label"],
                       synth_pair(9, SynthConfig(), *template, source="template")["fixed_label"])
