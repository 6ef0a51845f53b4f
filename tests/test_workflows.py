"""The bundle glue: image lists as MONAI Label gives them, paired to the atlas or among themselves; the data
named on the command line; the bundle workflows run from Python (refused overrides, atomic reports)."""

from __future__ import annotations

import pytest

from cir_monai.data import DatalistError
from cir_monai.workflows import data_pairs, evaluate, image_list_pairs, train


def test_images_paired_to_the_atlas():
    pairs = image_list_pairs([{"image": "a.nii.gz", "label": "a_l.nii.gz"}, "b.nii.gz"], "atlas", "atl")
    assert pairs[0] == {"fixed": "a.nii.gz", "moving": "atl/atlas_image.nii.gz", "fixed_label": "a_l.nii.gz",
                        "moving_label": "atl/atlas_label.nii.gz"}
    assert pairs[1] == {"fixed": "b.nii.gz", "moving": "atl/atlas_image.nii.gz"}  # no label: no label pair


def test_images_paired_among_themselves():
    pairs = image_list_pairs(["a", {"image": "b", "label": "b_l"}, "c"], "all")
    assert len(pairs) == 6 and {(p["fixed"], p["moving"]) for p in pairs} == {
        (x, y) for x in "abc" for y in "abc" if x != y}
    assert all(len(p) == 2 for p in pairs)  # one side labelled: no labels, so the items batch alike
    assert image_list_pairs(["a", "b"], "pairs") == image_list_pairs(["a", "b"], "all")  # a synonym


@pytest.mark.parametrize("data, pairing, message", [
    ([{"label": "x"}], "atlas", "image entry 0 needs an 'image' path"),
    (["a"], "all", "at least 2 images"),
    (["a"], "random", "pairing must be 'all' or 'atlas'"),
])
def test_bad_image_lists_are_named(data, pairing, message):
    with pytest.raises(DatalistError, match=message):
        image_list_pairs(data, pairing, "atl")


def test_data_pairs_reads_a_datalist_and_names_a_missing_one(tmp_path):
    with pytest.raises(DatalistError, match=f"data source not found: {tmp_path / 'nope'}"):
        data_pairs(tmp_path / "nope", "test")
    (tmp_path / "one.json").write_text('{"images": [{"image": "a.nii.gz"}], "pairing": "all"}')
    with pytest.raises(DatalistError, match=r"one.json: pairing 'all' needs at least 2 images, got 1"):
        data_pairs(tmp_path / "one.json", "test")


@pytest.mark.parametrize("run, kwargs, message", [
    (evaluate, {"ckpt_path": "x.pt"}, "use --model instead of --ckpt_path"),
    (evaluate, {"eval_dir": "x"}, "use --out instead of --eval_dir"),
    (train, {"output_dir": "x"}, "use --out instead of --output_dir"),
    (train, {"init_from": None, "train#trainer#lrr": 1}, "unknown option --train#trainer#lrr"),
    (evaluate, {"eval_lamz": [1]}, "unknown option --eval_lamz"),
    (evaluate, {"lams": [1, 12]}, r"lam values must lie in \[0, 10\]"),
])
def test_workflows_refuse_overrides_before_any_work(run, kwargs, message, tmp_path):
    out = tmp_path / "runs" / "out"  # a parent made for the output is removed again
    with pytest.raises((ValueError, KeyError), match=message):
        run(out=out, **kwargs)
    assert not out.exists() and not list(tmp_path.iterdir())
