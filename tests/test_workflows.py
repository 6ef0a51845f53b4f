"""The bundle's dataset factories: image lists as MONAI Label gives them, paired to the atlas or among themselves."""

from __future__ import annotations

import pytest

from cir_monai.workflows import image_list_pairs


def test_images_paired_to_the_atlas():
    pairs = image_list_pairs([{"image": "a.nii.gz", "label": "a_l.nii.gz"}, "b.nii.gz"], "atlas", "atl")
    assert pairs[0] == {"fixed": "a.nii.gz", "moving": "atl/atlas_image.nii.gz", "fixed_label": "a_l.nii.gz",
                        "moving_label": "atl/atlas_label.nii.gz"}
    assert pairs[1] == {"fixed": "b.nii.gz", "moving": "atl/atlas_image.nii.gz"}  # no label: no label pair


def test_images_paired_among_themselves():
    pairs = image_list_pairs(["a", "b", "c"], "pairs")
    assert len(pairs) == 6 and {(p["fixed"], p["moving"]) for p in pairs} == {
        (x, y) for x in "abc" for y in "abc" if x != y}


@pytest.mark.parametrize("data, pairing, message", [
    ([{"label": "x"}], "atlas", "training item 0 has no 'image'"),
    (["a"], "pairs", "at least 2 images"),
    (["a"], "random", "pairing must be 'atlas' or 'pairs'"),
])
def test_bad_image_lists_are_named(data, pairing, message):
    with pytest.raises(ValueError, match=message):
        image_list_pairs(data, pairing, "atl")
