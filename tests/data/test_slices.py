"""Axial slice pairs for the 2D reproduction (cir_monai.data.slices)."""

from __future__ import annotations

import pytest
import torch

from cir_monai.data.slices import axial_band, axial_slice, slice_pairs
from cir_monai.data.training import SlicePairDataset


def ball(shape=(12, 14, 10), radius=4.5):
    """A label ball centred in ``shape``: its axial areas peak at the centre and fall towards the caps."""
    grid = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float32) - (n - 1) / 2 for n in shape],
                                      indexing="ij"))
    return (grid.pow(2).sum(0) <= radius**2).long()


def test_axial_band_keeps_the_slices_with_most_foreground():
    label = ball()
    areas = (label > 0).sum(dim=(0, 1))
    band = axial_band(label[None, None], 0.5)
    assert band == [z for z in range(10) if areas[z] >= 0.5 * areas.max()]
    assert band == list(range(band[0], band[-1] + 1)) and 0 < len(band) < 10  # contiguous, caps dropped
    assert axial_band(label, 1.0) == [z for z in range(10) if areas[z] == areas.max()]
    with pytest.raises(ValueError, match="no foreground"):
        axial_band(torch.zeros(4, 4, 4))
    with pytest.raises(ValueError, match="min_fraction"):
        axial_band(label, 0.0)


def test_axial_slice_cuts_both_sides_at_one_index_and_drops_the_3d_field():
    item = {"fixed": torch.rand(1, 4, 5, 6), "moving": torch.rand(1, 4, 5, 6), "ddf_truth": torch.rand(3, 4, 5, 6)}
    cut = axial_slice(item, 2)
    assert set(cut) == {"fixed", "moving"}
    assert torch.equal(cut["fixed"], item["fixed"][..., 2]) and torch.equal(cut["moving"], item["moving"][..., 2])


class Volumes(torch.utils.data.Dataset):
    generated = True

    def __len__(self):
        return 100

    def __getitem__(self, k):
        z = torch.arange(6, dtype=torch.float32).expand(1, 3, 4, 6)  # voxel value = its axial index
        return {"fixed": z + 100 * k, "moving": z.clone()}


def test_slice_dataset_items_are_a_function_of_k():
    data = SlicePairDataset(Volumes(), band=[2, 3, 4], seed=7)
    assert data.generated and len(data) == 100
    first = [data[k]["moving"][0, 0, 0].item() for k in range(30)]
    assert first == [data[k]["moving"][0, 0, 0].item() for k in range(30)]  # the same again (exact resume)
    assert set(first) == {2.0, 3.0, 4.0}  # only band indices, each drawn
    assert all(data[k]["fixed"][0, 0, 0].item() == 100 * k + first[k] for k in range(30))  # one index per pair
    assert [SlicePairDataset(Volumes(), [2, 3, 4], seed=8)[k]["moving"][0, 0, 0].item() for k in range(30)] != first
    with pytest.raises(ValueError, match="at least one axial index"):
        SlicePairDataset(Volumes(), band=[])


def test_slice_pairs_spreads_slices_over_each_pairs_band():
    label = ball()[None, None].float()
    pair = {"fixed": label.clone(), "moving": label.clone(), "fixed_label": label, "moving_label": label}
    band = axial_band(label)
    assert band == [2, 3, 4, 5, 6, 7]
    out = slice_pairs([pair, pair], per_pair=3)  # positions 0, 2.5 → 2 (round half to even), 5 of the band
    assert [(s["pair"], s["slice"]) for s in out] == [(0, 2), (0, 4), (0, 7), (1, 2), (1, 4), (1, 7)]
    assert out[0]["fixed"].shape == (1, 1, 12, 14)
    assert len(slice_pairs([pair], per_pair=50)) == len(band)  # no slice twice
