"""Training datasets: item k is a fixed function of k (exact resume), pairs of distinct subjects, seeded file order."""

from __future__ import annotations

import pytest
import torch

from cir_monai.data import RandomPairDataset
from cir_monai.data.training import FilePairDataset


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
