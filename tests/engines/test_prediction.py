"""The one way to run the network on a pair: the plain call, the stacked input, levels, refinement."""

from __future__ import annotations

import pytest
import torch

from cir_monai.engines.prediction import check_options, predict_field
from cir_monai.networks import CLapIRN, StackedCLapIRN
from cir_monai.refine import REFINE_GRID_FACTOR, REFINE_LR, refine_ddf


@pytest.fixture(scope="module")
def pair():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 1, 24, 24, 24, generator=g), torch.rand(1, 1, 24, 24, 24, generator=g)


def test_predict_field_is_the_network_then_its_refinement(pair):
    moving, fixed = pair
    torch.manual_seed(0)
    net = CLapIRN(3, start_channels=2).eval()
    with torch.no_grad():
        plain = net(moving, fixed, 1.0)
        assert torch.equal(predict_field(net, moving, fixed, 1.0), plain)
        coarse = predict_field(net, moving, fixed, 1.0, active_levels=1)
        assert torch.equal(coarse, net(moving, fixed, 1.0, active_levels=1)) and not torch.equal(coarse, plain)
        refined = predict_field(net, moving, fixed, 1.0, refine=3)
    assert torch.equal(refined, refine_ddf(moving, fixed, plain, 1.0, 3, lr=REFINE_LR, num_levels=net.num_levels,
                                           grid_factor=REFINE_GRID_FACTOR))
    assert (refined - plain).abs().max() > 1e-4


def test_predict_field_stacked_equals_the_plain_network(pair):
    """The stacked network (what model.ts exports) through predict_field gives the plain network's field."""
    moving, fixed = pair
    torch.manual_seed(0)
    stacked = StackedCLapIRN(3, start_channels=2).eval()
    with torch.no_grad():
        got = predict_field(stacked, moving, fixed, torch.tensor([4.0]), stacked=True)
        want = CLapIRN.forward(stacked, moving, fixed, 4.0)
    assert got.shape == (1, 3, 24, 24, 24) and torch.equal(got, want)


def test_check_options_names_the_bad_value():
    for kwargs, message in (({"refine": -1}, "refine"), ({"refine": 2.5}, "refine"), ({"ddf_units": "cm"}, "cm"),
                            ({"frame": "native"}, "native")):
        with pytest.raises(ValueError, match=message):
            check_options(**kwargs)


@pytest.fixture(scope="module")
def framed():
    """A pair of 2 mm images already on the frame grid, a small untrained network and the frame's resampler."""
    from monai.data import MetaTensor

    from cir_monai.frame import FrameResampler

    g = torch.Generator().manual_seed(1)
    affine = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0]))
    moving, fixed = (MetaTensor(torch.rand(1, 20, 22, 18, generator=g), affine=affine) for _ in range(2))
    torch.manual_seed(0)
    return moving, fixed, CLapIRN(3, start_channels=2).eval(), FrameResampler(2.0)


def test_predict_in_frame_through_the_inferer_equals_the_refine_path(framed):
    """register.yaml's inferer (a ConditionalInferer of the plain network, holding the refinement steps) gives the
    runner's field of ``refine`` steps; giving both is refused, naming the fix."""
    from cir_monai.engines.prediction import predict_in_frame
    from cir_monai.inferers import ConditionalInferer

    moving, fixed, net, resampler = framed
    with torch.no_grad():
        want = predict_in_frame(net, resampler, moving, fixed, 1.0, refine=3)
        got = predict_in_frame(net, resampler, moving, fixed, 1.0, inferer=ConditionalInferer(refine=3, stacked=False))
        plain = predict_in_frame(net, resampler, moving, fixed, 1.0)
    assert got.shape == (1, 3, 20, 22, 18) and torch.allclose(got, want, atol=1e-6)
    assert (want - plain).abs().max() > 1e-4  # the refinement did act
    with pytest.raises(ValueError, match="set the refinement steps on the inferer"):
        predict_in_frame(net, resampler, moving, fixed, 1.0, refine=3, inferer=ConditionalInferer(stacked=False))


def test_predict_in_frame_fine_steps_refine_the_field_on_the_grid(framed):
    """fine_steps continue the field brought back to ``grid`` with refine_on_grid (register --fine-steps); without
    the grid and the moving image on it, the call is refused, naming both."""
    from cir_monai.engines.prediction import predict_in_frame
    from cir_monai.refine import refine_on_grid

    moving, fixed, net, resampler = framed
    with torch.no_grad():
        frame = predict_in_frame(net, resampler, moving, fixed, 1.0, grid=fixed)
        got = predict_in_frame(net, resampler, moving, fixed, 1.0, grid=fixed, fine_steps=2, moving_on_grid=moving)
    want = refine_on_grid(moving.as_tensor()[None], fixed.as_tensor()[None], frame, 1.0, 2)
    assert torch.allclose(got, want, atol=1e-6) and (got - frame).abs().max() > 1e-4
    with pytest.raises(ValueError, match="fine_steps needs grid .* and moving_on_grid"):
        predict_in_frame(net, resampler, moving, fixed, 1.0, fine_steps=2)
