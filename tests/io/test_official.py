"""Parity with the authors' cLapIRN: their weights, our network, their outputs."""

from __future__ import annotations

import pytest
import torch

from cir_monai.conventions import normalized_to_voxel_ddf
from cir_monai.io.official import infer_official_config, load_official_checkpoint
from cir_monai.metrics import jacobian_statistics
from cir_monai.networks import Warp

TOL = 1e-4  # voxels, max abs difference


@pytest.fixture(scope="module")
def lite(reference_dir):
    return load_official_checkpoint(reference_dir / "official_clapirn_lite_oasis.pth")


def test_detects_layouts(reference_dir):
    expected = {
        "official_clapirn_lite_oasis.pth": dict(spatial_dims=3, start_channels=4, lite=True),
        "official_layout_full_sc7_random.pth": dict(spatial_dims=3, start_channels=7, lite=False),
        "official_layout_2d_sc8_random.pth": dict(spatial_dims=2, start_channels=8, lite=False),
    }
    for name, config in expected.items():
        state = torch.load(reference_dir / name, map_location="cpu", weights_only=True)
        assert infer_official_config(state) == dict(config, num_blocks=5, conditioning="distributed")


@pytest.mark.parametrize("code", [0.0, 0.1, 0.4, 1.0])
def test_lite_released_weights_parity(lite, parity, parity_metrics, code):
    with torch.no_grad():
        ddf = lite(parity["moving_3d"], parity["fixed_3d"], lam=10.0 * code)
    reference = normalized_to_voxel_ddf(parity[f"lite_field_{code}"])
    assert (ddf - reference).abs().max() <= TOL
    warped = Warp()(parity["moving_3d"], ddf)
    assert (warped - parity[f"lite_warped_{code}"]).abs().max() <= 1e-4
    stats = jacobian_statistics(ddf)
    ref = parity_metrics[f"lite_{code}"]
    assert stats["jac_mean"].item() == pytest.approx(ref["jac_det_forward_mean"], abs=1e-4)
    assert stats["jac_std"].item() == pytest.approx(ref["jac_det_forward_std"], abs=1e-4)
    assert stats["folding_pct"].item() == pytest.approx(ref["jac_det_forward_pct_negative"], abs=1e-4)
    assert ddf.abs().max().item() == pytest.approx(ref["max_abs_voxel_disp"], abs=1e-4)


def test_lite_training_mode_level_fields(lite, parity):
    lite.train()
    try:
        with torch.no_grad():
            out = lite(parity["moving_3d"], parity["fixed_3d"], lam=4.0)
    finally:
        lite.eval()
    for level, produced in enumerate(out.levels, start=1):
        reference = normalized_to_voxel_ddf(parity[f"lite_train_lvl{level}_field_0.4"])
        assert produced.ddf.shape == reference.shape
        assert (produced.ddf - reference).abs().max() <= TOL


@pytest.mark.parametrize(
    "filename,key,dims",
    [("official_layout_full_sc7_random.pth", "full", "3d"), ("official_layout_2d_sc8_random.pth", "2d", "2d")],
)
@pytest.mark.parametrize("code", [0.1, 0.7])
def test_random_layout_parity(reference_dir, parity, filename, key, dims, code):
    net = load_official_checkpoint(reference_dir / filename)
    with torch.no_grad():
        ddf = net(parity[f"moving_{dims}"], parity[f"fixed_{dims}"], lam=10.0 * code)
    reference = normalized_to_voxel_ddf(parity[f"{key}_field_{code}"])
    assert (ddf - reference).abs().max() <= TOL


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_official_checkpoint(tmp_path / "nope.pth")


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello")
    with pytest.raises(ValueError, match="notes.pth is not a readable checkpoint"):
        load_official_checkpoint(path)


def test_foreign_state_dict(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3)}, path)
    with pytest.raises(ValueError, match=r"resnet.pth is not an official cLapIRN checkpoint: missing tensors"):
        load_official_checkpoint(path)


def test_truncated_official_state_dict(tmp_path, reference_dir):
    state = torch.load(reference_dir / "official_clapirn_lite_oasis.pth", map_location="cpu", weights_only=True)
    state.pop("model_lvl2.up.weight")
    path = tmp_path / "broken.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(ValueError, match=r"broken.pth .*missing \['levels.1.up.weight'\]"):
        load_official_checkpoint(path)
