"""Training datasets: item k is a fixed function of k (exact resume), pairs of distinct subjects, seeded file order."""

from __future__ import annotations

import pytest
import torch

from cir_monai.data import RandomPairDataset
from cir_monai.data.pairs import PairConfig
from cir_monai.data.synthesis import random_subject
from cir_monai.data.synthetic import phantom
from cir_monai.data.training import FilePairDataset
from cir_monai.workflows import subject_config


@pytest.fixture(scope="module")
def template():
    image = torch.zeros(1, 1, 16, 20, 16)
    image[..., 4:12, 5:15, 4:12] = 0.8
    label = (image > 0).long() * 2
    return image, label


def test_item_k_is_the_same_in_a_new_dataset(template):
    """A resumed run builds a new dataset: it must give the same pair at the same k."""
    first, second = RandomPairDataset(*template, pool_size=4), RandomPairDataset(*template, pool_size=4)
    for k in (0, 7, 123):
        a, b = first[k], second[k]
        assert a.keys() == {"fixed", "moving", "fixed_label", "moving_label"}
        assert all(torch.equal(a[key], b[key]) for key in a)
        assert a["fixed"].shape == (1, 16, 20, 16)
        assert not torch.equal(a["fixed"], a["moving"])  # two distinct subjects


def test_pool_size_must_allow_a_pair(template):
    with pytest.raises(ValueError, match="pool_size must be >= 2"):
        RandomPairDataset(*template, pool_size=1)


def test_file_pairs_follow_a_seeded_order_per_epoch():
    pairs = [{"fixed": f"f{i}", "moving": f"m{i}"} for i in range(5)]

    def identity(pair):
        return {"fixed": torch.tensor([float(pair["fixed"][1:])]), "moving": torch.zeros(1)}

    data = FilePairDataset(pairs, identity, seed=3)
    epoch0 = [int(data[k]["fixed"]) for k in range(5)]
    epoch1 = [int(data[k]["fixed"]) for k in range(5, 10)]
    assert sorted(epoch0) == sorted(epoch1) == [0, 1, 2, 3, 4]  # every pair once per epoch
    assert epoch0 == [int(FilePairDataset(pairs, identity, seed=3)[k]["fixed"]) for k in range(5)]
    assert len(data) == 5
    with pytest.raises(ValueError, match="at least one pair"):
        FilePairDataset([], identity)


def test_items_with_truth_carry_the_pairs_true_field(template):
    """``with_truth``: the same pairs (bit for bit) plus ``ddf_truth`` = :func:`pair_truth` of the two subjects."""
    from cir_monai.data.pairs import make_subject, pair_truth

    plain, supervised = RandomPairDataset(*template, pool_size=4), RandomPairDataset(*template, pool_size=4,
                                                                                     with_truth=True)
    a, b = plain[3], supervised[3]
    assert b.keys() == a.keys() | {"ddf_truth"} and all(torch.equal(a[key], b[key]) for key in a)
    assert b["ddf_truth"].shape == (3, 16, 20, 16)
    gen = torch.Generator().manual_seed(supervised.seed + 7 * 3 + 3)
    i, j = torch.randperm(4, generator=gen)[:2].tolist()
    fixed = make_subject(*template, supervised.seed + i, supervised.config)
    moving = make_subject(*template, supervised.seed + j, supervised.config, inverse=True)
    assert torch.equal(b["ddf_truth"], pair_truth(fixed["ddf"], moving["inverse"])[0])


# the subjects' settings: one smooth scale (the shipped recipe) or several (configs/scale/cpu_lite_multiscale.yaml)
SHAPE = (40, 48, 40)
STILL = {"rotation_deg": 0.0, "scale": 0.0, "translation": 0.0, "bias": 0.0, "gamma": 0.0, "noise": 0.0}


def test_a_subject_config_is_used_as_it_is():
    image, label = phantom(SHAPE)
    config = subject_config({"velocity_sigmas": [6.4, 1.6], "velocity_amplitudes": [2.0, 1.0], **STILL})
    assert config.velocity_sigmas == (6.4, 1.6) and config.velocity_amplitudes == (2.0, 1.0)
    data = RandomPairDataset(image, label, pool_size=2, config=config, with_truth=True)
    subject = data.subject(0)
    expected = random_subject(image, label, data.seed, config, inverse=True)
    assert torch.equal(subject["ddf"], expected["ddf"])
    assert subject["ddf"].abs().amax() > 0.5  # the deformation is there (up to ~2 + 1 voxels)
    item = data[0]
    assert not torch.equal(item["fixed"], item["moving"])
    assert item["ddf_truth"].shape == (3, *SHAPE)


def test_zero_amplitudes_give_identical_subjects():
    image, label = phantom(SHAPE)
    config = subject_config({"velocity_sigmas": [6.4, 1.6], "velocity_amplitudes": [0.0, 0.0], **STILL})
    item = RandomPairDataset(image, label, pool_size=2, config=config)[0]
    torch.testing.assert_close(item["fixed"], item["moving"], atol=1e-5, rtol=0)


def test_the_default_is_the_shipped_one_scale_recipe():
    image, label = phantom(SHAPE)
    data = RandomPairDataset(image, label, pool_size=2)
    assert data.config == PairConfig()
    assert PairConfig().subject(SHAPE).velocity_sigmas == (0.1 * max(SHAPE),)


@pytest.mark.parametrize("fields, message", [
    ({"velocity_sigma": [3.0]}, "unknown field(s) ['velocity_sigma']"),
    ({"velocity_sigmas": [6.4, 3.2], "velocity_amplitudes": [1.0]},
     "velocity_sigmas and velocity_amplitudes differ in length"),
])
def test_bad_subject_settings_are_named(fields, message):
    """An unknown name is refused when the config is read; scales without amplitudes by the subject recipe's own
    check, at the first subject."""
    image, label = phantom(SHAPE)
    with pytest.raises(ValueError) as error:
        RandomPairDataset(image, label, pool_size=2, config=subject_config(fields)).subject(0)
    assert message in str(error.value)
