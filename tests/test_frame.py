"""The model's frame: defaults, checks, and the resampling round trip into and out of it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from cir_monai.engines.prediction import predict_in_frame, resolve_frame
from cir_monai.frame import EMBEDDED_FRAME, OFFICIAL_FRAME, FrameResampler, model_frame
from cir_monai.io import load_network, save_checkpoint
from cir_monai.networks import CLapIRN


def test_model_frame_defaults_and_checks():
    net = CLapIRN(3, start_channels=2, lam_max=8.0)
    frame = model_frame({"spacing": 2}, net)
    assert frame["spacing"] == [2.0, 2.0, 2.0] and frame["orientation"] == "RAS"
    assert frame["lam_range"] == [0.0, 8.0] and frame["percentiles"] == [0.0, 100.0]
    assert model_frame(None, net)["spacing"] is None
    with pytest.raises(ValueError, match="unknown frame entries"):
        model_frame({"voxel": 2.0}, net)
    with pytest.raises(ValueError, match="positive"):
        model_frame({"spacing": [1.0, 0.0, 1.0]}, net)
    assert resolve_frame(net, "input")["spacing"] is None
    assert resolve_frame(net, {"spacing": 3.0}, pixdim=1.5)["spacing"] == [1.5] * 3
    with pytest.raises(ValueError, match="frame must be"):
        resolve_frame(net, "native")


def test_load_network_gives_each_kind_of_checkpoint_its_frame(tmp_path):
    net = CLapIRN(3, start_channels=2)
    save_checkpoint({"model": net.state_dict(), "network": net.config}, tmp_path / "old.pt")
    save_checkpoint({"model": net.state_dict(), "network": net.config, "frame": {"spacing": 1.25}}, tmp_path / "new.pt")
    assert load_network(tmp_path / "old.pt").frame["spacing"] == EMBEDDED_FRAME["spacing"]
    assert load_network(tmp_path / "new.pt").frame["spacing"] == [1.25] * 3
    assert OFFICIAL_FRAME["spacing"] == [1.0] * 3


def _image(shape, spacing, origin=(-40.0, -50.0, -30.0)):
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    return MetaTensor(torch.rand(1, *shape), affine=torch.as_tensor(affine))


def test_field_round_trip_converts_units_and_grid():
    image = _image((60, 70, 50), (1.0, 1.0, 1.0))
    resampler = FrameResampler(2.0)
    work = resampler.to_frame(image)
    assert all(abs(2 * w - s) <= 2 for w, s in zip(work.shape[1:], (60, 70, 50)))
    # a smooth field in voxels of the 2 mm grid: a linear ramp along x, constant along z
    x = torch.arange(work.shape[1], dtype=torch.float32).view(1, -1, 1, 1).expand(1, *work.shape[1:])
    ddf = torch.zeros(1, 3, *work.shape[1:])
    ddf[:, 0] = 0.05 * x[0]
    ddf[:, 2] = -0.75
    back = resampler.field_to_grid(ddf, work, image)
    assert back.shape == (1, 3, 60, 70, 50)
    # the same world displacement in voxels of the 1 mm grid: twice the numbers, at the same point in space
    i = torch.arange(60, dtype=torch.float64)
    j = (image.affine[0, 3] + i - work.affine[0, 3]) / 2.0  # where 1 mm voxel i sits on the 2 mm grid
    expected_x = (2.0 * 0.05 * j).float()  # 0.05·j voxels of 2 mm = 0.1·j mm = 0.1·j voxels of 1 mm
    inside = (j >= 0) & (j <= work.shape[1] - 1)
    assert inside.sum() > 50
    assert torch.allclose(back[0, 0, inside, 10, 10].float(), expected_x[inside], atol=1e-4)
    assert torch.allclose(back[0, 2], torch.full_like(back[0, 2], -1.5), atol=1e-5)
    assert torch.all(back[0, 1] == 0)


def test_no_resampling_on_the_frame_grid():
    image = _image((20, 24, 20), (2.0, 2.0, 2.0))
    resampler = FrameResampler(2.0)
    assert resampler.to_frame(image) is image
    ddf = torch.randn(1, 3, 20, 24, 20)
    assert resampler.field_to_grid(ddf, image, image) is ddf
    assert FrameResampler(None).to_frame(_image((8, 8, 8), (1.0, 1.0, 1.0))).shape == (1, 8, 8, 8)


def test_predict_on_the_foreground_box_and_continue_the_field():
    """The network sees the brain's box (plus margin), as in training; the field is padded back by replication."""
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, moving, fixed, lam):
            seen["shape"] = tuple(fixed.shape[2:])
            ddf = torch.zeros(1, 3, *fixed.shape[2:])
            ddf[:, 0] = torch.arange(fixed.shape[2], dtype=torch.float32).view(-1, 1, 1)  # varies along x
            return ddf

    image = _image((40, 44, 36), (2.0, 2.0, 2.0))
    image[:] = 0
    image[0, 10:20, 12:30, 8:16] = 1.0  # the "brain"
    resampler = FrameResampler(2.0, margin=3)
    assert resampler.foreground_box(image) == (slice(7, 23), slice(9, 33), slice(5, 19))
    ddf = predict_in_frame(Probe(), resampler, image, image, 1.0)
    assert seen["shape"] == (16, 24, 14) and ddf.shape == (1, 3, 40, 44, 36)
    assert torch.all(ddf[0, 0, :8] == 0) and torch.all(ddf[0, 0, 23:] == 15)  # replicated beyond the box
    assert torch.equal(ddf[0, 0, 7:23, 20, 10], torch.arange(16, dtype=torch.float32))
    empty = _image((8, 8, 8), (2.0, 2.0, 2.0))
    empty[:] = 0
    assert resampler.foreground_box(empty) == (slice(None),) * 3
