from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from cir_monai.data import DatalistError, load_pairs, pairs_from_images


def write(path, shape=(8, 9, 10), value=1.0, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.full(shape, value, np.float32), np.eye(4) if affine is None else affine), str(path))
    return path


def test_explicit_pairs_relative_to_the_json(tmp_path):
    for name in ("a", "b", "a_seg", "b_seg"):
        write(tmp_path / "data" / f"{name}.nii.gz")
    datalist = tmp_path / "data" / "list.json"
    datalist.write_text(json.dumps({"test": [{"fixed": "a.nii.gz", "moving": "b.nii.gz", "fixed_label": "a_seg.nii.gz",
                                              "moving_label": "b_seg.nii.gz"}]}))
    pairs = load_pairs(datalist)
    assert pairs == [{k: str(tmp_path / "data" / f"{v}.nii.gz") for k, v in
                      dict(fixed="a", moving="b", fixed_label="a_seg", moving_label="b_seg").items()}]
    with pytest.raises(DatalistError, match="no 'validation' list"):
        load_pairs(datalist, split="validation")


@pytest.mark.parametrize("pairing,expected", [("all", 6), ("atlas", 2)])
def test_image_list_with_pairing(tmp_path, pairing, expected):
    images = [{"image": str(write(tmp_path / f"s{i}.nii.gz"))} for i in range(3)]
    datalist = tmp_path / "images.json"
    datalist.write_text(json.dumps({"images": images, "pairing": pairing}))
    pairs = load_pairs(datalist)
    assert len(pairs) == expected
    if pairing == "atlas":
        assert all(p["fixed"] == images[0]["image"] for p in pairs)


def test_atlas_given_separately(tmp_path):
    images = [{"image": str(write(tmp_path / f"s{i}.nii.gz")), "label": str(write(tmp_path / f"l{i}.nii.gz"))}
              for i in range(2)]
    atlas = {"image": str(write(tmp_path / "atlas.nii.gz")), "label": str(write(tmp_path / "atlas_seg.nii.gz"))}
    datalist = tmp_path / "atlas.json"
    datalist.write_text(json.dumps({"images": images, "pairing": "atlas", "atlas": atlas}))
    pairs = load_pairs(datalist)
    assert [p["moving"] for p in pairs] == [i["image"] for i in images]
    assert all(p["fixed_label"] == atlas["label"] for p in pairs)


def test_the_atlas_can_be_the_moving_image():
    """Atlas segmentation (the bundle) warps the atlas onto each image; one-sided labels are kept as given."""
    images = ["s0.nii.gz", {"image": "s1.nii.gz", "label": "l1.nii.gz"}]
    atlas = {"image": "atlas.nii.gz", "label": "atlas_seg.nii.gz"}
    pairs = pairs_from_images(images, "atlas", atlas, atlas_moves=True)
    assert pairs == [{"fixed": "s0.nii.gz", "moving": "atlas.nii.gz", "moving_label": "atlas_seg.nii.gz"},
                     {"fixed": "s1.nii.gz", "moving": "atlas.nii.gz", "fixed_label": "l1.nii.gz",
                      "moving_label": "atlas_seg.nii.gz"}]
    assert pairs_from_images(images, "atlas", atlas)[1]["fixed"] == "atlas.nii.gz"


def test_learn2reg_oasis_layout(tmp_path):
    for i in (1, 2, 3):
        write(tmp_path / "imagesTr" / f"OASIS_000{i}_0000.nii.gz")
        write(tmp_path / "labelsTr" / f"OASIS_000{i}_0000.nii.gz")
    content = {
        "training": [{"image": f"./imagesTr/OASIS_000{i}_0000.nii.gz", "label": f"./labelsTr/OASIS_000{i}_0000.nii.gz"}
                     for i in (1, 2, 3)],
        "registration_val": [{"fixed": "./imagesTr/OASIS_0002_0000.nii.gz",
                              "moving": "./imagesTr/OASIS_0001_0000.nii.gz"}],
    }
    (tmp_path / "OASIS_dataset.json").write_text(json.dumps(content))
    val = load_pairs(tmp_path, split="validation")
    assert len(val) == 1 and val[0]["moving_label"] == str(tmp_path / "labelsTr" / "OASIS_0001_0000.nii.gz")
    assert len(load_pairs(tmp_path, split="training")) == 6  # all ordered pairs of the training images


def test_neurite_oasis_layout(tmp_path):
    for i in (1, 2, 4):
        folder = tmp_path / f"OASIS_OAS1_000{i}_MR1"
        write(folder / "aligned_norm.nii.gz")
        write(folder / "aligned_seg35.nii.gz")
    atlas_pairs = load_pairs(tmp_path)
    assert len(atlas_pairs) == 2 and all("OAS1_0001" in p["fixed"] for p in atlas_pairs)
    assert len(load_pairs(tmp_path, pairing="all")) == 6


def test_missing_file(tmp_path):
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps([{"fixed": str(write(tmp_path / "a.nii.gz")), "moving": "nope.nii.gz"}]))
    with pytest.raises(DatalistError, match=r"pair 0 moving file not found: .*nope.nii.gz"):
        load_pairs(datalist)


def test_label_shape_differs(tmp_path):
    datalist = tmp_path / "list.json"
    pair = {"fixed": str(write(tmp_path / "a.nii.gz")), "moving": str(write(tmp_path / "b.nii.gz")),
            "moving_label": str(write(tmp_path / "b_seg.nii.gz", shape=(8, 9, 11)))}
    datalist.write_text(json.dumps([pair]))
    with pytest.raises(DatalistError, match=r"b_seg.nii.gz: label shape \(8, 9, 11\) differs from its image "
                                            r".*b.nii.gz shape \(8, 9, 10\)"):
        load_pairs(datalist)


def test_4d_image(tmp_path):
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps([{"fixed": str(write(tmp_path / "a.nii.gz", shape=(8, 9, 10, 3))),
                                     "moving": str(write(tmp_path / "b.nii.gz"))}]))
    with pytest.raises(DatalistError, match=r"a.nii.gz: fixed is a 4D series of 3 volumes \(shape \(8, 9, 10, 3\)\): "
                                            r"give one 3D volume"):
        load_pairs(datalist)


def test_empty_list_and_bad_sources(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"test": []}))
    with pytest.raises(DatalistError, match=r"empty.json: no registration pairs found \(empty list\)"):
        load_pairs(empty)
    notjson = tmp_path / "x.json"
    notjson.write_text("{not json")
    with pytest.raises(DatalistError, match="x.json: not valid JSON"):
        load_pairs(notjson)
    text = tmp_path / "t.nii.gz"
    text.write_text("hello")
    listed = tmp_path / "l.json"
    listed.write_text(json.dumps([{"fixed": str(text), "moving": str(text)}]))
    with pytest.raises(DatalistError, match="t.nii.gz: cannot be read as an image"):
        load_pairs(listed)
    with pytest.raises(DatalistError, match="data source not found"):
        load_pairs(tmp_path / "nothing")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(DatalistError, match="no known layout"):
        load_pairs(tmp_path / "emptydir")
