"""The network as TorchScript (cir_monai.networks.scripting): the eager field at sizes other than the traced one,
λ an input, and the eager network's input checks in front of the trace."""

from __future__ import annotations

import pytest
import torch

from cir_monai.networks import StackedCLapIRN
from cir_monai.networks.scripting import script_network


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    net = StackedCLapIRN(spatial_dims=2, start_channels=2, lam=2.0).eval()
    return net, script_network(net, trace_size=(40, 48))


@pytest.mark.parametrize("size", [(40, 48), (37, 52), (64, 24)])
def test_scripted_equals_eager_at_any_size(pair, size):
    net, scripted = pair
    image = torch.rand(1, 2, *size, generator=torch.Generator().manual_seed(1))
    lam = torch.tensor([0.5])
    with torch.no_grad():
        assert torch.allclose(scripted(image, lam), net(image, 0.5), atol=1e-4)
        assert torch.allclose(scripted(image), net(image), atol=1e-4)  # the default λ (2.0)
        assert not torch.allclose(scripted(image, torch.tensor([8.0])), scripted(image, lam), atol=1e-3)


@pytest.mark.parametrize("image, lam, message", [
    (torch.rand(1, 1, 16, 16), None, "image must be"),
    (torch.full((1, 2, 16, 16), float("nan")), None, "NaN or Inf"),
    (torch.rand(1, 2, 16, 16), torch.tensor([11.0]), r"lam must lie in \[0, 10\]"),
])
def test_scripted_refuses_bad_input_with_a_message(pair, image, lam, message):
    with pytest.raises(Exception, match=message):
        pair[1](image, lam)
