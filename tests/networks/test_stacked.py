"""StackedCLapIRN: the pair as one 2-channel input (the bundle's and TorchScript's form) is CLapIRN itself."""

from __future__ import annotations

import pytest
import torch

from cir_monai.networks import CLapIRN, StackedCLapIRN


def test_stacked_input_gives_the_same_field_and_keys():
    torch.manual_seed(0)
    net = CLapIRN(spatial_dims=3, start_channels=2).eval()
    stacked = StackedCLapIRN(spatial_dims=3, start_channels=2, lam=4.0).eval()
    stacked.load_state_dict(net.state_dict())  # same parameters, same keys
    g = torch.Generator().manual_seed(1)
    moving, fixed = torch.rand(1, 1, 20, 24, 20, generator=g), torch.rand(1, 1, 20, 24, 20, generator=g)
    image = torch.cat([moving, fixed], dim=1)  # channel 0 moving, channel 1 fixed
    with torch.no_grad():
        assert torch.equal(stacked(image, 1.0), net(moving, fixed, 1.0))
        assert torch.equal(stacked(image), net(moving, fixed, 4.0))  # λ defaults to the one built in
        assert not torch.equal(stacked(image), stacked(torch.cat([fixed, moving], dim=1)))  # the order matters


@pytest.mark.parametrize("image, shape", [(torch.zeros(1, 1, 8, 8, 8), "(1, 1, 8, 8, 8)"),
                                          (torch.zeros(2, 8, 8, 8), "(2, 8, 8, 8)"), ([1, 2], "list")])
def test_a_wrong_input_is_named(image, shape):
    net = StackedCLapIRN(spatial_dims=3, start_channels=2)
    with pytest.raises(ValueError, match=r"image must be \(B, 2, \*spatial\).*got "
                       + shape.replace("(", r"\(").replace(")", r"\)")):
        net(image)
